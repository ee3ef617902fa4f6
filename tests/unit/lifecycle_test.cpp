// The life-cycle tables (ota/device/lifecycle.hpp): every listed transition walks,
// every (state, event) pair the table does not list is refused with
// kIllegalTransition and changes nothing, and docs/design.md draws exactly
// these tables.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "ota/device/lifecycle.hpp"

namespace ota {
namespace {

using agent::CampaignEvent;
using agent::InstallEvent;
using agent::Stage;
namespace cp = ota::campaign;

const Stage kStages[] = {Stage::kNone, Stage::kWriting, Stage::kWritten, Stage::kTrial};
const InstallEvent kInstallEvents[] = {
    InstallEvent::kBegin,      InstallEvent::kResume,   InstallEvent::kCheckpoint, InstallEvent::kVerified,
    InstallEvent::kTrialBegun, InstallEvent::kTrialFound, InstallEvent::kAbandon,  InstallEvent::kNotBooted,
    InstallEvent::kCommit,     InstallEvent::kRollBack, InstallEvent::kFellBack,   InstallEvent::kRevert};
const cp::Phase kPhases[] = {cp::Phase::kIdle,      cp::Phase::kWaiting,    cp::Phase::kDownloading,
                             cp::Phase::kRebooting, cp::Phase::kSucceeded,  cp::Phase::kRolledBack,
                             cp::Phase::kFailed,    cp::Phase::kAborted,    cp::Phase::kSkipped,
                             cp::Phase::kReverting, cp::Phase::kReverted,   cp::Phase::kRevertFailed,
                             cp::Phase::kDeferred};
const CampaignEvent kCampaignEvents[] = {
    CampaignEvent::kWaveClosed, CampaignEvent::kNotForDevice, CampaignEvent::kWaveOpen,     CampaignEvent::kRetry,
    CampaignEvent::kInstalled,  CampaignEvent::kInstallFailed, CampaignEvent::kAbort,       CampaignEvent::kRebootFailed,
    CampaignEvent::kCommitted,  CampaignEvent::kRolledBack,    CampaignEvent::kRevert,      CampaignEvent::kRevertRefused,
    CampaignEvent::kDefer};

TEST(InstallLifecycle, EveryListedTransitionWalks) {
  std::set<std::pair<int, int>> seen;
  for (const auto& t : agent::install_table()) {
    EXPECT_TRUE(seen.insert({static_cast<int>(t.from), static_cast<int>(t.event)}).second)
        << "two rows for " << agent::stage_name(t.from) << " + " << agent::install_event_name(t.event);
    Stage s = t.from;
    ASSERT_TRUE(agent::advance(s, t.event));
    EXPECT_EQ(s, t.to);
    EXPECT_FALSE(t.effect.empty());
  }
}

TEST(InstallLifecycle, EveryOtherEventInEveryStageIsRefusedAndChangesNothing) {
  std::size_t legal = 0, refused = 0;
  for (Stage from : kStages) {
    for (InstallEvent e : kInstallEvents) {
      bool listed = false;
      for (const auto& t : agent::install_table()) listed = listed || (t.from == from && t.event == e);
      Stage s = from;
      auto st = agent::advance(s, e);
      if (listed) {
        ++legal;
        EXPECT_TRUE(st);
        continue;
      }
      ++refused;
      ASSERT_FALSE(st) << agent::stage_name(from) << " + " << agent::install_event_name(e);
      EXPECT_EQ(st.error().code, ErrorCode::kIllegalTransition);
      EXPECT_NE(st.error().message.find(std::string(agent::install_event_name(e))), std::string::npos);
      EXPECT_EQ(s, from) << "a refused event changed the stage";
    }
  }
  EXPECT_EQ(legal, agent::install_table().size());
  EXPECT_GT(refused, 0u);
}

TEST(InstallLifecycle, EveryStageIsReachableAndLeadsBackToNone) {
  // From none, every stage is reachable; from every stage, none is.
  for (Stage target : kStages) {
    std::set<Stage> reach{Stage::kNone};
    for (int i = 0; i < 8; ++i)
      for (const auto& t : agent::install_table())
        if (reach.count(t.from)) reach.insert(t.to);
    EXPECT_TRUE(reach.count(target)) << agent::stage_name(target);
    std::set<Stage> back{target};
    for (int i = 0; i < 8; ++i)
      for (const auto& t : agent::install_table())
        if (back.count(t.from)) back.insert(t.to);
    EXPECT_TRUE(back.count(Stage::kNone)) << agent::stage_name(target);
  }
  // Only a trial can be committed, and only out of a trial is a commit possible.
  for (const auto& t : agent::install_table())
    if (t.event == InstallEvent::kCommit) {
      EXPECT_EQ(t.from, Stage::kTrial);
    }
}

TEST(CampaignLifecycle, EveryListedTransitionWalks) {
  std::set<std::pair<int, int>> seen;
  for (const auto& t : agent::campaign_table()) {
    EXPECT_TRUE(seen.insert({static_cast<int>(t.from), static_cast<int>(t.event)}).second);
    cp::Phase p = t.from;
    ASSERT_TRUE(agent::advance(p, t.event));
    EXPECT_EQ(p, t.to);
  }
}

TEST(CampaignLifecycle, EveryOtherEventInEveryPhaseIsRefusedAndFinalPhasesTakeNone) {
  for (cp::Phase from : kPhases) {
    for (CampaignEvent e : kCampaignEvents) {
      bool listed = false;
      for (const auto& t : agent::campaign_table()) listed = listed || (t.from == from && t.event == e);
      cp::Phase p = from;
      auto st = agent::advance(p, e);
      EXPECT_EQ(static_cast<bool>(st), listed) << cp::phase_name(from) << " + " << agent::campaign_event_name(e);
      if (!listed) {
        EXPECT_EQ(st.error().code, ErrorCode::kIllegalTransition);
        EXPECT_EQ(p, from);
      }
      // A final result is said once: no event leaves a final phase, but for
      // the revert of a committed campaign (revert on abort), which leads to
      // another final result, said once too.
      if (cp::is_final(from) && !(from == cp::Phase::kSucceeded && e == CampaignEvent::kRevert)) {
        EXPECT_FALSE(listed) << cp::phase_name(from) << " + " << agent::campaign_event_name(e);
      }
    }
  }
  // Success is reached only from rebooting: a device reports success only after the boot check.
  for (const auto& t : agent::campaign_table())
    if (t.to == cp::Phase::kSucceeded) {
      EXPECT_EQ(t.from, cp::Phase::kRebooting);
    }
  // A revert starts only from a committed campaign, and reverted is reached
  // only from reverting: after the boot check of the previous image.
  for (const auto& t : agent::campaign_table()) {
    if (t.event == CampaignEvent::kRevert) {
      EXPECT_TRUE(t.from == cp::Phase::kSucceeded || t.from == cp::Phase::kReverting);
    }
    if (t.to == cp::Phase::kReverted) {
      EXPECT_EQ(t.from, cp::Phase::kReverting);
    }
  }
  // The rollout policy holds a device only before its trial: deferred is
  // entered from idle, waiting, downloading (written early) or deferred.
  for (const auto& t : agent::campaign_table())
    if (t.event == CampaignEvent::kDefer) {
      EXPECT_TRUE(t.from == cp::Phase::kIdle || t.from == cp::Phase::kWaiting || t.from == cp::Phase::kDownloading ||
                  t.from == cp::Phase::kDeferred)
          << cp::phase_name(t.from);
      EXPECT_EQ(t.to, cp::Phase::kDeferred);
    }
  // From reverting, every way out ends final (the revert is done once).
  for (const auto& t : agent::campaign_table())
    if (t.from == cp::Phase::kReverting && t.to != cp::Phase::kReverting) {
      EXPECT_TRUE(cp::is_final(t.to)) << agent::campaign_event_name(t.event);
    }
}

std::string markdown_install() {
  std::ostringstream o;
  o << "| from | event | to | effect |\n|---|---|---|---|\n";
  for (const auto& t : agent::install_table())
    o << "| " << agent::stage_name(t.from) << " | " << agent::install_event_name(t.event) << " | "
      << agent::stage_name(t.to) << " | " << t.effect << " |\n";
  return o.str();
}

std::string markdown_campaign() {
  std::ostringstream o;
  o << "| from | event | to | effect |\n|---|---|---|---|\n";
  for (const auto& t : agent::campaign_table())
    o << "| " << cp::phase_name(t.from) << " | " << agent::campaign_event_name(t.event) << " | "
      << cp::phase_name(t.to) << " | " << t.effect << " |\n";
  return o.str();
}

TEST(Lifecycle, DesignDocDrawsTheTablesOfTheCode) {
  std::ifstream in(std::string(OTA_SOURCE_DIR) + "/docs/design.md");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  EXPECT_NE(doc.find(markdown_install()), std::string::npos) << "docs/design.md should hold:\n" << markdown_install();
  EXPECT_NE(doc.find(markdown_campaign()), std::string::npos) << "docs/design.md should hold:\n" << markdown_campaign();
}

}  // namespace
}  // namespace ota
