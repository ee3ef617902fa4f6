// The agent daemon: the device side of the campaign protocol
// (docs/protocol.md, "Device"). Connects, subscribes to its fleet's
// campaigns, installs when its wave opens, reports every step.
//
// Contract:
// - On start (every boot) it first settles a pending trial (Agent::boot_check)
//   and reports the outcome for the campaign that caused it.
// - A campaign document is acted on only after verify_document() accepted
//   it; a (campaign revision, control revision) pair older than one already
//   accepted is rejected as stale (kept on disk, so a replay after a reboot
//   is rejected too). A running control must also be fresh
//   (campaign::check_control_fresh): a device that missed an abort never
//   installs from a replayed older "running" document once it expired. A
//   retry after a failed download acts on the newest document accepted
//   since, checked for freshness again.
// - Root updates in a campaign document (Document::roots) are walked and
//   saved (agent::persist_trust) before the campaign is verified under them.
// - Rejected documents are reported as events but never written to disk
//   (junk on the broker costs no flash), once per document text.
// - The trial is judged on the boot evidence (Agent::boot_check): when the
//   device still runs the old slot after a "reboot" (the reboot command
//   failed, or returned without rebooting), nothing is committed; the daemon
//   reports it and asks for the reboot again after retry_delay_s.
// - Each campaign is acted on once: its record (on disk, written before the
//   first bank write) says whether it is in progress or done; a redelivered
//   or replayed document never starts a second install. An install cut by a
//   power loss resumes from its checkpoint when the document comes again.
// - The bundle must be the one the campaign names (its manifest hash),
//   checked before any payload byte.
// - Paused: devices that have not started wait. Aborted: devices that have
//   not started skip it; an install in progress stops and keeps the old
//   image. A trial already begun is settled by the health check as usual.
// - Revert on abort (a campaign with revert_on_abort): the install records
//   the running image before its trial (Device::record_previous); when the
//   campaign is aborted after the device committed it, the record says
//   reverting, the agent reverts (Agent::revert: the previous bank verified,
//   its trial begun) and the device reboots into it; the boot check commits
//   it (reverted) or rolls back to the new image (revert-failed). A previous
//   image not recorded or no longer verifying: revert-failed with the reason,
//   nothing switched. Once: reverted and revert-failed are final.
// - Reports (sequence number, boot session) go to a durable, bounded outbox
//   on disk and leave it only when the broker acknowledged them; they are
//   sent again after every reconnect. The retained state is republished on
//   every connect (a broker may have lost it). The last will marks the
//   device offline for this boot session.
// - With a device key (DaemonOptions::device_key), every report is signed
//   (campaign::sign_report) and carries the receipt (booted slot, image
//   hash). A sequence number is durable before any report carrying it leaves
//   the device: reports kept in the outbox are saved with it, and for reports
//   never written there (rejection events, which cost no flash each) a block
//   of numbers is reserved on disk at every start (and again when used up),
//   so a number is never signed twice, across reboots too.
// - Health signals (a campaign with a regression section, docs/protocol.md
//   "Regression gates"): once the device committed the campaign (it hears
//   the document after the reboot), or while it waits in the campaign (the
//   control group), it observes for the campaign's observe_s: every
//   interval_s it runs the health check and the counter, and reports the
//   signals (health failures, unexpected reboots, counter increase, seconds
//   observed) with its phase. Counted in the campaign record (durable): a
//   start of the daemon not preceded by a reboot it asked for is an
//   unexpected reboot. A control-group device whose wave opens drops its
//   control signals; once it committed it observes anew as updated.
// - The daemon never reads operator commands: it obeys only control
//   documents signed by the campaign's controller key.
#pragma once

#include <chrono>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ota/device/agent.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/release/keys.hpp"
#include "ota/core/error.hpp"
#include "ota/device/fetch.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/device/storage.hpp"

namespace ota::agent {

struct DaemonOptions {
  std::string device_id;
  std::string fleet;
  // Signs every report (identity.hpp); null: bare reports (unsigned campaigns only).
  std::shared_ptr<const keys::SecretKey> device_key;
  mqtt::Options mqtt;     // the daemon sets the client id (default: device id) and the will
  fetch::Options fetch;
  // Opens the broker connection of one boot session (the will names the
  // session, so each session connects anew). Default: mqtt::connect.
  std::function<Result<std::unique_ptr<mqtt::Client>>(const mqtt::Options&)> connect;
  // Opens a bundle source (default: fetch::open).
  OpenSource open_source;
  // After the reboot command returned success, how long to wait for the
  // system to stop the daemon before calling it a failed reboot.
  int reboot_wait_s = 120;
  std::size_t outbox_limit = 256;  // reports kept while offline (oldest progress events go first)
  int retry_delay_s = 10;          // after a failed download, before trying again
  // The controller's requests for the device's state (sync_topic) are answered
  // at most this often.
  std::chrono::milliseconds sync_interval{10000};
  // The rollout policy a campaign signs (campaign::Policy), evaluated here:
  // the zone a policy saying "local" means ("UTC" or an IANA name); a check
  // per condition name (nullopt: holds, go on; else why it defers; no
  // function, or an unknown name: not checked); how often a deferred
  // campaign is looked at again (at the latest; sooner when the window or
  // the delay ends); and the clock windows and delays are judged by
  // (default: the device's now; tests drive it).
  std::string timezone = "UTC";
  std::function<Result<std::optional<std::string>>(const std::string& condition)> check_condition;
  int policy_recheck_s = 60;
  std::function<trust::Time()> policy_clock;
  // Security updates (a campaign with an advisory, copied from the signed
  // manifest) are not held by the install windows (rollout.security_updates
  // "anytime" in agent.json); start delays and conditions still hold them.
  bool security_updates_anytime = false;
  // Regression campaigns: a counter the device reads at every observation
  // (crashes, a service's restarts; health_signals.counter_command); its
  // increases are reported. Null: no counter.
  std::function<Result<std::uint64_t>()> counter;
  const volatile bool* stop = nullptr;
  std::function<void(const std::string&)> log;
};

// device: the Agent's side effects (the daemon calls its reboot after it has
// reported; the Agent never reboots by itself); state: the same store the
// Agent uses.
class Daemon {
 public:
  Daemon(Device device, storage::StateStore& state, DaemonOptions o);
  ~Daemon();
  // Runs until *stop; errors only when the device itself fails (state store,
  // boot environment), never for a bad message or an unreachable broker.
  Status run();
  // Runs one boot session, as run() does, and returns at its end: when it
  // asked for a reboot (true) or when *stop (false). For simulators and
  // tests: the caller "reboots", opens the device again as a boot would, and
  // runs a new Daemon.
  Result<bool> run_session();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ota::agent
