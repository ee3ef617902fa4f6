// The two life-cycle tables (lifecycle.hpp). Edit a row here and in
// docs/design.md together: tests/unit/lifecycle_test.cpp compares them.
#include "ota/device/lifecycle.hpp"

#include <string>

namespace ota::agent {

namespace cp = ota::campaign;

std::string_view stage_name(Stage s) {
  switch (s) {
    case Stage::kNone: return "none";
    case Stage::kWriting: return "writing";
    case Stage::kWritten: return "written";
    case Stage::kTrial: return "trial";
  }
  return "none";
}

std::string_view install_event_name(InstallEvent e) {
  switch (e) {
    case InstallEvent::kBegin: return "begin";
    case InstallEvent::kResume: return "resume";
    case InstallEvent::kCheckpoint: return "checkpoint";
    case InstallEvent::kVerified: return "verified";
    case InstallEvent::kTrialBegun: return "trial-begun";
    case InstallEvent::kTrialFound: return "trial-found";
    case InstallEvent::kAbandon: return "abandon";
    case InstallEvent::kNotBooted: return "not-booted";
    case InstallEvent::kCommit: return "commit";
    case InstallEvent::kRollBack: return "roll-back";
    case InstallEvent::kFellBack: return "fell-back";
    case InstallEvent::kRevert: return "revert";
  }
  return "unknown";
}

const std::vector<InstallTransition>& install_table() {
  using S = Stage;
  using E = InstallEvent;
  static const std::vector<InstallTransition> table = {
      {S::kNone, E::kBegin, S::kWriting, "save the record (bundle, target = the slot not running) before the first bank write"},
      {S::kWriting, E::kResume, S::kWriting, "skip to the last checkpoint in the bundle stream"},
      {S::kWriting, E::kCheckpoint, S::kWriting, "sync the target bank, then save the resume point"},
      {S::kWriting, E::kVerified, S::kWritten, "sync the target bank, then save"},
      {S::kWriting, E::kAbandon, S::kNone, "save; the running bank was never opened for writing"},
      {S::kWritten, E::kResume, S::kWritten, "hash the target bank again; a mismatch abandons"},
      {S::kWritten, E::kTrialBegun, S::kTrial, "one environment store (boot the target once), then save, then reboot"},
      {S::kWritten, E::kTrialFound, S::kTrial, "save (a cut fell between the environment store and the record)"},
      {S::kWritten, E::kAbandon, S::kNone, "save"},
      {S::kTrial, E::kNotBooted, S::kTrial, "nothing: the trial stays pending (exit 45)"},
      {S::kTrial, E::kCommit, S::kNone, "environment: clear the trial; then save the bank's version, the security floor and the result"},
      {S::kTrial, E::kRollBack, S::kNone, "environment: boot the old slot; save the result; reboot if the trial slot runs"},
      {S::kTrial, E::kFellBack, S::kNone, "save the result (the bootloader already boots the old slot)"},
      {S::kNone, E::kRevert, S::kWritten, "hash the previous bank against the hash recorded at install, then save the record (payload (revert), target = the previous slot)"},
  };
  return table;
}

Result<Stage> next_stage(Stage from, InstallEvent e) {
  for (const auto& t : install_table())
    if (t.from == from && t.event == e) return t.to;
  return fail(ErrorCode::kIllegalTransition, "install stage " + std::string(stage_name(from)) + ": event " +
                                                 std::string(install_event_name(e)) + " is not allowed");
}

Status advance(Stage& stage, InstallEvent e) {
  OTA_TRY_ASSIGN(auto n, next_stage(stage, e));
  stage = n;
  return ok();
}

std::string_view campaign_event_name(CampaignEvent e) {
  switch (e) {
    case CampaignEvent::kWaveClosed: return "wave-closed";
    case CampaignEvent::kNotForDevice: return "not-for-device";
    case CampaignEvent::kWaveOpen: return "wave-open";
    case CampaignEvent::kRetry: return "retry";
    case CampaignEvent::kInstalled: return "installed";
    case CampaignEvent::kInstallFailed: return "install-failed";
    case CampaignEvent::kAbort: return "abort";
    case CampaignEvent::kRebootFailed: return "reboot-failed";
    case CampaignEvent::kCommitted: return "committed";
    case CampaignEvent::kRolledBack: return "rolled-back";
    case CampaignEvent::kRevert: return "revert";
    case CampaignEvent::kRevertRefused: return "revert-refused";
    case CampaignEvent::kDefer: return "defer";
  }
  return "unknown";
}

const std::vector<CampaignTransition>& campaign_table() {
  using P = cp::Phase;
  using E = CampaignEvent;
  static const std::vector<CampaignTransition> table = {
      {P::kIdle, E::kWaveClosed, P::kWaiting, "save the record, report waiting"},
      {P::kIdle, E::kNotForDevice, P::kSkipped, "save the record (done), report skipped"},
      {P::kIdle, E::kWaveOpen, P::kDownloading, "save the record (current campaign) and report, then install"},
      {P::kIdle, E::kAbort, P::kAborted, "save the record (done), report aborted"},
      {P::kWaiting, E::kWaveClosed, P::kWaiting, "nothing (already reported)"},
      {P::kWaiting, E::kNotForDevice, P::kSkipped, "save the record (done), report skipped"},
      {P::kWaiting, E::kWaveOpen, P::kDownloading, "save the record (current campaign) and report, then install"},
      {P::kWaiting, E::kAbort, P::kAborted, "save the record (done), report aborted"},
      {P::kIdle, E::kDefer, P::kDeferred, "save the record, report deferred with the reason and until when"},
      {P::kWaiting, E::kDefer, P::kDeferred, "save the record, report deferred with the reason and until when"},
      {P::kDeferred, E::kDefer, P::kDeferred, "report again only when the reason changed; look again at the time it names"},
      {P::kDeferred, E::kWaveOpen, P::kDownloading, "save the record (current campaign) and report, then install (resumes a written image)"},
      {P::kDeferred, E::kWaveClosed, P::kDeferred, "nothing (a pause holds it too; an image written early stays written)"},
      {P::kDeferred, E::kNotForDevice, P::kSkipped, "abandon an image written early, save the record (done), report skipped (the bundle is older than the policy's maximum age)"},
      {P::kDeferred, E::kAbort, P::kAborted, "abandon an image written early, save the record (done), report aborted"},
      {P::kDownloading, E::kWaveOpen, P::kDownloading, "install again (resumes from the checkpoint)"},
      {P::kDownloading, E::kWaveClosed, P::kDownloading, "nothing is installed until the wave is open again (an install already writing goes on under a pause)"},
      {P::kDownloading, E::kRetry, P::kDownloading, "report the failure as an event; read the newest control again before the retry"},
      {P::kDownloading, E::kInstalled, P::kRebooting, "save the record, report rebooting, drain the outbox, reboot"},
      {P::kDownloading, E::kNotForDevice, P::kSkipped, "abandon the install, save the record (done), report skipped"},
      {P::kDownloading, E::kInstallFailed, P::kFailed, "abandon the install, save the record (done), report failed"},
      {P::kDownloading, E::kAbort, P::kAborted, "abandon the install, save the record (done), report aborted"},
      {P::kDownloading, E::kDefer, P::kDeferred, "written and verified early, no trial begun: save the record, report deferred until a window opens"},
      {P::kRebooting, E::kRebootFailed, P::kRebooting, "nothing is committed; report, ask for the reboot again"},
      {P::kRebooting, E::kCommitted, P::kSucceeded, "save the record (done), report succeeded (the final result)"},
      {P::kRebooting, E::kRolledBack, P::kRolledBack, "save the record (done), report rolled-back, reboot into the old slot"},
      {P::kSucceeded, E::kRevert, P::kReverting, "save the record (current campaign, not done), then the agent's revert (written, trial begun), report reverting, reboot"},
      {P::kReverting, E::kRevert, P::kReverting, "the agent's revert again (a restart before its trial began: resumes at written)"},
      {P::kReverting, E::kRevertRefused, P::kRevertFailed, "save the record (done), report revert-failed with the reason; the new image runs"},
      {P::kReverting, E::kRebootFailed, P::kReverting, "nothing is committed; report, ask for the reboot again"},
      {P::kReverting, E::kCommitted, P::kReverted, "save the record (done), report reverted (the previous image runs)"},
      {P::kReverting, E::kRolledBack, P::kRevertFailed, "save the record (done), report revert-failed, reboot into the new image"},
  };
  return table;
}

Result<cp::Phase> next_phase(cp::Phase from, CampaignEvent e) {
  for (const auto& t : campaign_table())
    if (t.from == from && t.event == e) return t.to;
  return fail(ErrorCode::kIllegalTransition, "campaign phase " + std::string(cp::phase_name(from)) + ": event " +
                                                 std::string(campaign_event_name(e)) + " is not allowed");
}

Status advance(cp::Phase& phase, CampaignEvent e) {
  OTA_TRY_ASSIGN(auto n, next_phase(phase, e));
  phase = n;
  return ok();
}

}  // namespace ota::agent
