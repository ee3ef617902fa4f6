// The device's life cycle as two explicit state machines, each one table in
// code (the same tables are drawn in docs/design.md, "Life cycle", and a test
// checks the drawing against this code):
//
//  - the install stage of the agent (agent.hpp): none -> writing -> written
//    -> trial -> none (a revert: none -> written -> trial -> none), persisted in the agent's state record before anything
//    that can cross a reboot;
//  - the phase of each campaign in the daemon (daemon.hpp): idle -> waiting
//    -> downloading -> rebooting -> a final phase (succeeded may go on to
//    reverting -> reverted or revert-failed once), persisted in the daemon's
//    campaign records.
//
// Contract: every stage or phase change in the agent and the daemon goes
// through advance(), which looks the (state, event) pair up in its table. A
// pair the table does not list is refused with kIllegalTransition and the
// state is left unchanged; the caller then stops before any side effect.
// The "effect" column says what the caller does around the transition (in
// the order the code does it); it is documentation the tests hold the code
// to, not code.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "ota/fleet/campaign.hpp"
#include "ota/core/error.hpp"

namespace ota::agent {

// kWriting: payload going into the target bank (resumable); kWritten: the
// target bank holds the verified image, trial not yet begun; kTrial: the
// bootloader was told to boot the target once.
enum class Stage { kNone, kWriting, kWritten, kTrial };

enum class InstallEvent {
  kBegin,          // a verified bundle was chosen and its install record saved
  kResume,         // install() again with the bundle of the record in progress
  kCheckpoint,     // a frame is synced into the target bank
  kVerified,       // the whole image is in the target bank and hashes to the target hash
  kTrialBegun,     // the bootloader was told to boot the target once (one environment store)
  kTrialFound,     // recovery: the environment holds the trial, the record was cut before it said so
  kAbandon,        // the install stops before its trial (failure, abort, base mismatch, operator)
  kNotBooted,      // boot-check while the device still runs the old slot (no reboot yet)
  kCommit,         // the device runs the trial slot and passed the health check (or an operator committed)
  kRollBack,       // the trial failed its health check, or an operator rolled it back
  kFellBack,       // the bootloader fell back to the old slot (bootcount past bootlimit)
  kRevert,         // revert on abort: the previous bank still verifies against the hash recorded at install
};

struct InstallTransition {
  Stage from;
  InstallEvent event;
  Stage to;
  std::string_view effect;
};

std::string_view stage_name(Stage s);
std::string_view install_event_name(InstallEvent e);
const std::vector<InstallTransition>& install_table();
// The next stage, or kIllegalTransition (nothing changes).
Result<Stage> next_stage(Stage from, InstallEvent e);
// Moves `stage` by `e` (see next_stage).
Status advance(Stage& stage, InstallEvent e);

// ---- The daemon: one campaign's phase ---------------------------------------

enum class CampaignEvent {
  kWaveClosed,     // accepted, but the device's wave is not open (or the campaign is paused)
  kNotForDevice,   // another hardware, or the device already runs the version
  kWaveOpen,       // the device's wave is open and the control is fresh: install
  kRetry,          // a download failed (network, server): the same phase, tried again later
  kInstalled,      // the image is written and verified, the trial begun: reboot
  kInstallFailed,  // the install failed for good (bad bundle, no payload); the old image runs
  kAbort,          // the campaign was aborted before the trial began; the old image runs
  kRebootFailed,   // after the reboot the device still runs the old slot (reboot command failed)
  kCommitted,      // the device booted the new image and committed it
  kRolledBack,     // the trial was rolled back (health check, bootloader fallback)
  // Revert on abort (campaign::Campaign::revert_on_abort):
  kRevert,         // an abort of a campaign the device committed: switch back to the previous image
  kRevertRefused,  // the previous image was not recorded or no longer verifies: the new image stays
  // The campaign's rollout policy (campaign::Policy), evaluated by the device:
  kDefer,          // outside the install windows, in the start delay, or a condition holds (written early: waits to switch)
};

struct CampaignTransition {
  campaign::Phase from;
  CampaignEvent event;
  campaign::Phase to;
  std::string_view effect;
};

std::string_view campaign_event_name(CampaignEvent e);
const std::vector<CampaignTransition>& campaign_table();
Result<campaign::Phase> next_phase(campaign::Phase from, CampaignEvent e);
Status advance(campaign::Phase& phase, CampaignEvent e);

}  // namespace ota::agent
