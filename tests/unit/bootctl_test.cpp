// Boot control over MemoryEnvironment: defaults, the three transitions (one
// store each), U-Boot's bootcount rules through simulate_boot, and strict
// parsing of the variables.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ota/device/boot.hpp"
#include "ota/testing/memory_environment.hpp"
#include "ota/testing/power_cut.hpp"

namespace ota::boot {
namespace {

std::string describe(const Error& e) {
  return std::string(error_code_name(e.code)) + ": " + e.message;
}

#define ASSERT_OK(expr)                                             \
  do {                                                              \
    auto ota_r_ = (expr);                                           \
    ASSERT_TRUE(ota_r_) << #expr << ": " << describe(ota_r_.error()); \
  } while (0)

BootState must_state(Environment& env) {
  auto st = BootControl(env).state();
  EXPECT_TRUE(st) << describe(st.error());
  return st ? *st : BootState{};
}

Slot must_boot(Environment& env) {
  auto slot = simulate_boot(env);
  EXPECT_TRUE(slot) << describe(slot.error());
  return slot ? *slot : Slot::kA;
}

// An environment whose reads or writes fail, for error propagation.
class BrokenEnvironment final : public Environment {
 public:
  bool fail_read = false;
  Result<Vars> read() override {
    if (fail_read) return fail(ErrorCode::kIo, "cannot read flash");
    return Vars{{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "0"}};
  }
  Status write(const std::map<std::string, std::optional<std::string>>&) override {
    return fail(ErrorCode::kIo, "cannot write flash");
  }
};

TEST(BootControl, MissingVariablesReadAsDefaults) {
  MemoryEnvironment env;
  BootState st = must_state(env);
  EXPECT_EQ(st.boot_slot, Slot::kA);
  EXPECT_FALSE(st.upgrade_available);
  EXPECT_EQ(st.bootcount, 0u);
  EXPECT_EQ(st.bootlimit, 3u);
  EXPECT_EQ(env.stores, 0u);
  // A boot without a trial reads defaults and records the slot it booted
  // (the simulator's boot evidence) once; the next boot stores nothing.
  EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(env.stores, 1u);
  EXPECT_EQ(env.vars, (Vars{{"ota_booted", "a"}}));
  EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(env.stores, 1u);
}

TEST(BootControl, ReadsEveryVariable) {
  MemoryEnvironment env;
  env.vars = {{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "2"}, {"bootlimit", "7"},
              {"bootcmd", "run distro_bootcmd"}};
  BootState st = must_state(env);
  EXPECT_EQ(st.boot_slot, Slot::kB);
  EXPECT_TRUE(st.upgrade_available);
  EXPECT_EQ(st.bootcount, 2u);
  EXPECT_EQ(st.bootlimit, 7u);
}

TEST(BootControl, BeginTrialIsOneStoreOfThreeVariables) {
  MemoryEnvironment env;
  env.vars = {{"bootcmd", "run x"}, {"bootcount", "9"}, {"bootlimit", "5"}};
  ASSERT_OK(BootControl(env).begin_trial(Slot::kB));
  EXPECT_EQ(env.stores, 1u);
  Vars want = {{"bootcmd", "run x"}, {"bootcount", "0"}, {"bootlimit", "5"}, {"ota_slot", "b"},
               {"upgrade_available", "1"}};
  EXPECT_EQ(env.vars, want);
}

TEST(BootControl, CommitIsOneStoreThatClearsTheTrial) {
  MemoryEnvironment env;
  BootControl bc(env);
  ASSERT_OK(bc.begin_trial(Slot::kB));
  ASSERT_EQ(must_boot(env), Slot::kB);
  ASSERT_EQ(env.vars["bootcount"], "1");
  std::uint64_t before = env.stores;
  ASSERT_OK(bc.commit());
  EXPECT_EQ(env.stores, before + 1);
  EXPECT_EQ(env.vars["ota_slot"], "b");
  EXPECT_EQ(env.vars["upgrade_available"], "0");
  EXPECT_EQ(env.vars["bootcount"], "0");
}

TEST(BootControl, RollbackIsOneStoreBackToTheOtherSlot) {
  MemoryEnvironment env;
  BootControl bc(env);
  ASSERT_OK(bc.begin_trial(Slot::kB));
  ASSERT_EQ(must_boot(env), Slot::kB);
  std::uint64_t before = env.stores;
  ASSERT_OK(bc.rollback());
  EXPECT_EQ(env.stores, before + 1);
  BootState st = must_state(env);
  EXPECT_EQ(st.boot_slot, Slot::kA);
  EXPECT_FALSE(st.upgrade_available);
  EXPECT_EQ(st.bootcount, 0u);
  // The boot into the old slot stores only the new boot evidence.
  EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(env.stores, before + 2);
  EXPECT_EQ(env.vars.at("ota_booted"), "a");
}

TEST(BootControl, RollbackSwitchesOnEveryCall) {
  MemoryEnvironment env;
  BootControl bc(env);
  ASSERT_OK(bc.rollback());
  EXPECT_EQ(env.vars["ota_slot"], "b");
  ASSERT_OK(bc.rollback());
  EXPECT_EQ(env.vars["ota_slot"], "a");
  EXPECT_EQ(env.stores, 2u);
}

TEST(BootSimulation, CommittedTrialKeepsBootingTheNewSlot) {
  MemoryEnvironment env;
  BootControl bc(env);
  ASSERT_OK(bc.begin_trial(Slot::kB));
  ASSERT_EQ(env.stores, 1u);
  // First boot of the new slot: the count is stored before the OS runs.
  EXPECT_EQ(must_boot(env), Slot::kB);
  EXPECT_EQ(env.stores, 2u);
  EXPECT_EQ(must_state(env).bootcount, 1u);
  // The health check passes and the OS commits.
  ASSERT_OK(bc.commit());
  EXPECT_EQ(env.stores, 3u);
  for (int boot = 0; boot < 10; ++boot) EXPECT_EQ(must_boot(env), Slot::kB) << "boot " << boot;
  EXPECT_EQ(env.stores, 3u) << "boots without a trial store nothing";
  BootState st = must_state(env);
  EXPECT_EQ(st.boot_slot, Slot::kB);
  EXPECT_FALSE(st.upgrade_available);
  EXPECT_EQ(st.bootcount, 0u);
}

// The new slot never commits (its health check fails or it hangs and is
// reset): the reboot loop ends when bootcount exceeds bootlimit.
class BootLimit : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(BootLimit, UncommittedTrialFallsBackAfterLimitPlusOneBoots) {
  const std::uint32_t limit = GetParam();
  MemoryEnvironment env;
  env.vars["bootlimit"] = std::to_string(limit);
  BootControl bc(env);
  ASSERT_OK(bc.begin_trial(Slot::kB));
  ASSERT_EQ(env.stores, 1u);
  for (std::uint32_t boot = 1; boot <= limit; ++boot) {
    EXPECT_EQ(must_boot(env), Slot::kB) << "boot " << boot;
    EXPECT_EQ(env.stores, 1u + boot) << "one store (the count) per trial boot";
    EXPECT_EQ(env.vars["bootcount"], std::to_string(boot));
    EXPECT_EQ(env.vars["upgrade_available"], "1");
  }
  // Boot limit+1: the count is stored, then altbootcmd stores the fallback.
  EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(env.stores, 1u + limit + 2u);
  BootState st = must_state(env);
  EXPECT_EQ(st.boot_slot, Slot::kA);
  EXPECT_FALSE(st.upgrade_available);
  EXPECT_EQ(st.bootcount, 0u);
  EXPECT_EQ(st.bootlimit, limit);
  const std::uint64_t after = env.stores;
  for (int boot = 0; boot < 5; ++boot) EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(env.stores, after);
}

INSTANTIATE_TEST_SUITE_P(Limits, BootLimit, ::testing::Values(1u, 3u, 5u, 1000u));

TEST(BootSimulation, TrialOfSlotAFallsBackToB) {
  MemoryEnvironment env;
  env.vars = {{"ota_slot", "b"}, {"bootlimit", "1"}};
  ASSERT_OK(BootControl(env).begin_trial(Slot::kA));
  EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(must_boot(env), Slot::kB);
  EXPECT_EQ(env.vars["ota_slot"], "b");
}

TEST(BootSimulation, DefaultLimitIsThree) {
  MemoryEnvironment env;
  ASSERT_OK(BootControl(env).begin_trial(Slot::kB));
  std::vector<Slot> booted;
  for (int i = 0; i < 5; ++i) booted.push_back(must_boot(env));
  EXPECT_EQ(booted, (std::vector<Slot>{Slot::kB, Slot::kB, Slot::kB, Slot::kA, Slot::kA}));
}

// A power cut between the count store and the fallback store of the boot
// that exceeds the limit: the next boot counts again and falls back then.
TEST(BootSimulation, PowerCutBeforeFallbackStoreFallsBackOnNextBoot) {
  MemoryEnvironment env;
  env.vars = {{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "4"}, {"bootlimit", "3"}};
  EXPECT_EQ(must_boot(env), Slot::kA);
  EXPECT_EQ(env.stores, 2u);
  EXPECT_EQ(env.vars["bootcount"], "0");
}

// Even at the largest limit, a count stored before a cut stays readable.
TEST(BootSimulation, CountSaturatesAtLargestLimitPlusOne) {
  MemoryEnvironment env;
  env.vars = {{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "1001"}, {"bootlimit", "1000"}};

  class CutAfterFirstStore final : public Environment {
   public:
    explicit CutAfterFirstStore(MemoryEnvironment& inner) : inner_(inner) {}
    Result<Vars> read() override { return inner_.read(); }
    Status write(const std::map<std::string, std::optional<std::string>>& changes) override {
      if (inner_.stores > 0) return fail(ErrorCode::kIo, "power cut");
      return inner_.write(changes);
    }

   private:
    MemoryEnvironment& inner_;
  } cut(env);

  auto slot = simulate_boot(cut);
  ASSERT_FALSE(slot);
  EXPECT_EQ(env.vars["bootcount"], "1001");
  EXPECT_EQ(must_boot(env), Slot::kA);
}

TEST(BootSimulation, EveryTransitionIsExactlyOneStore) {
  MemoryEnvironment env;
  BootControl bc(env);
  ASSERT_OK(bc.begin_trial(Slot::kB));
  EXPECT_EQ(env.stores, 1u) << "begin_trial";
  ASSERT_OK(bc.state());
  EXPECT_EQ(env.stores, 1u) << "state";
  ASSERT_OK(simulate_boot(env));
  EXPECT_EQ(env.stores, 2u) << "trial boot within the limit";
  ASSERT_OK(bc.commit());
  EXPECT_EQ(env.stores, 3u) << "commit";
  ASSERT_OK(bc.rollback());
  EXPECT_EQ(env.stores, 4u) << "rollback";
  ASSERT_OK(simulate_boot(env));
  EXPECT_EQ(env.stores, 5u) << "boot without a trial, into another slot than the last: records ota_booted";
  ASSERT_OK(simulate_boot(env));
  EXPECT_EQ(env.stores, 5u) << "boot without a trial into the same slot";
}

TEST(BootControl, AcceptsBoundaryValues) {
  MemoryEnvironment env;
  env.vars = {{"bootcount", "1001"}, {"bootlimit", "1000"}};
  BootState st = must_state(env);
  EXPECT_EQ(st.bootcount, 1001u);
  EXPECT_EQ(st.bootlimit, 1000u);
  env.vars = {{"bootcount", "007"}, {"bootlimit", "1"}, {"upgrade_available", "0"}};
  st = must_state(env);
  EXPECT_EQ(st.bootcount, 7u);
  EXPECT_EQ(st.bootlimit, 1u);
}

struct BadValue {
  std::string name;
  std::string value;
};

void PrintTo(const BadValue& b, std::ostream* os) { *os << b.name << "='" << b.value << "'"; }

class BootMalformedValue : public ::testing::TestWithParam<BadValue> {};

TEST_P(BootMalformedValue, IsRefusedByEveryReaderAndNothingIsStored) {
  const BadValue& bad = GetParam();
  MemoryEnvironment env;
  env.vars = {{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "1"}, {"bootlimit", "3"}};
  env.vars[bad.name] = bad.value;
  const Vars before = env.vars;
  BootControl bc(env);

  auto st = bc.state();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kMalformed) << describe(st.error());
  EXPECT_NE(st.error().message.find(bad.name), std::string::npos) << st.error().message;
  EXPECT_EQ(st.error().message.rfind("boot state: ", 0), 0u) << st.error().message;

  auto slot = simulate_boot(env);
  ASSERT_FALSE(slot);
  EXPECT_EQ(slot.error().code, ErrorCode::kMalformed);

  auto rb = bc.rollback();
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.error().code, ErrorCode::kMalformed);

  EXPECT_EQ(env.stores, 0u);
  EXPECT_EQ(env.vars, before);
}

INSTANTIATE_TEST_SUITE_P(
    Values, BootMalformedValue,
    ::testing::Values(BadValue{"ota_slot", "c"}, BadValue{"ota_slot", ""}, BadValue{"ota_slot", "A"},
                      BadValue{"ota_slot", "a "}, BadValue{"upgrade_available", "2"},
                      BadValue{"upgrade_available", ""}, BadValue{"upgrade_available", "yes"},
                      BadValue{"upgrade_available", "01"}, BadValue{"bootcount", "3x"},
                      BadValue{"bootcount", ""}, BadValue{"bootcount", "-1"}, BadValue{"bootcount", "+3"},
                      BadValue{"bootcount", " 3"}, BadValue{"bootcount", "0x3"}, BadValue{"bootcount", "1002"},
                      BadValue{"bootcount", "99999999999999999999999"}, BadValue{"bootlimit", "0"},
                      BadValue{"bootlimit", "1001"}, BadValue{"bootlimit", "3x"}, BadValue{"bootlimit", ""},
                      BadValue{"bootlimit", std::string("3\0", 2)}),
    [](const ::testing::TestParamInfo<BadValue>& p) { return "Case" + std::to_string(p.index); });

TEST(BootControl, CommitAndBeginTrialOverwriteMalformedValues) {
  MemoryEnvironment env;
  env.vars = {{"upgrade_available", "junk"}, {"bootcount", "3x"}};
  ASSERT_OK(BootControl(env).commit());
  EXPECT_EQ(must_state(env).bootcount, 0u);
  env.vars["ota_slot"] = "z";
  ASSERT_OK(BootControl(env).begin_trial(Slot::kA));
  EXPECT_EQ(must_state(env).boot_slot, Slot::kA);
}

TEST(BootMemoryEnvironment, WriteSetsAndDeletesInOneStore) {
  MemoryEnvironment env;
  env.vars = {{"keep", "1"}, {"drop", "2"}};
  ASSERT_OK(env.write({{"drop", std::nullopt}, {"new", "3"}, {"absent", std::nullopt}}));
  EXPECT_EQ(env.stores, 1u);
  EXPECT_EQ(env.vars, (Vars{{"keep", "1"}, {"new", "3"}}));
  ASSERT_OK(env.write({}));
  EXPECT_EQ(env.stores, 1u) << "an empty change set stores nothing";
}

TEST(BootMemoryEnvironment, RejectsBadNamesWithoutStoring) {
  for (const std::string& name : {std::string(""), std::string("a=b"), std::string("a\nb"), std::string("a\0b", 3)}) {
    MemoryEnvironment env;
    auto st = env.write({{"good", "1"}, {name, "x"}});
    ASSERT_FALSE(st) << "name '" << name << "'";
    EXPECT_EQ(st.error().code, ErrorCode::kUsage);
    EXPECT_EQ(env.stores, 0u);
    EXPECT_TRUE(env.vars.empty()) << "nothing applied";
  }
  MemoryEnvironment env;
  auto st = env.write({{"k", std::string("a\0b", 3)}});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUsage);
  // U-Boot keeps multi-line values (scripts), so memory does too.
  ASSERT_OK(env.write({{"script", "echo 1\necho 2"}}));
}

TEST(BootControl, PropagatesEnvironmentErrorsWithContext) {
  BrokenEnvironment env;
  BootControl bc(env);
  auto begin = bc.begin_trial(Slot::kB);
  ASSERT_FALSE(begin);
  EXPECT_EQ(begin.error().code, ErrorCode::kIo);
  EXPECT_EQ(begin.error().message, "begin trial of slot b: cannot write flash");
  auto commit = bc.commit();
  ASSERT_FALSE(commit);
  EXPECT_EQ(commit.error().message, "commit: cannot write flash");
  auto boot = simulate_boot(env);
  ASSERT_FALSE(boot);
  EXPECT_EQ(boot.error().message, "boot: store bootcount: cannot write flash");
  env.fail_read = true;
  auto st = bc.state();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_EQ(st.error().message, "boot state: cannot read flash");
  auto rb = bc.rollback();
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.error().message, "rollback: cannot read flash");
}

}  // namespace
}  // namespace ota::boot
