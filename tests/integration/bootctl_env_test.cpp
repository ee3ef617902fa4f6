// Boot control over the real environments: a redundant U-Boot environment
// (two image files made by Debian's mkenvimage, read and written through
// libubootenv, cross-checked with fw_printenv/fw_setenv), and a GRUB
// environment block through grub-editenv. Every "boot" re-opens the
// environment, so what is checked is what persisted in the files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ota/device/boot.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota::boot {
namespace {

using test::TempDir;

const std::string kMkenvimage = "/usr/bin/mkenvimage";
const std::string kFwPrintenv = "/usr/bin/fw_printenv";
const std::string kFwSetenv = "/usr/bin/fw_setenv";
const std::string kGrubEditenv = "/usr/bin/grub-editenv";

constexpr std::size_t kEnvSize = 0x4000;
// Redundant image layout (U-Boot's env_t): CRC32 (4 bytes), flags (1 byte), data.
constexpr std::size_t kFlagsOffset = 4;
constexpr std::size_t kDataOffset = 5;

std::string describe(const Error& e) { return std::string(error_code_name(e.code)) + ": " + e.message; }

#define ASSERT_OK(expr)                                               \
  do {                                                                \
    auto ota_r_ = (expr);                                             \
    ASSERT_TRUE(ota_r_) << #expr << ": " << describe(ota_r_.error()); \
  } while (0)

std::string run_ok(const std::vector<std::string>& argv) {
  auto r = test::run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << argv[0] << " failed: " << r.err;
  return r.out;
}

Vars parse_listing(const std::string& text) {
  Vars vars;
  for (const auto& line : test::split_lines(text)) {
    auto eq = line.find('=');
    EXPECT_NE(eq, std::string::npos) << "line '" << line << "'";
    if (eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return vars;
}

// The variables BootControl owns, for comparisons that ignore the others.
Vars boot_vars(const Vars& all) {
  Vars out;
  for (const char* name : {"ota_slot", "upgrade_available", "bootcount", "bootlimit"}) {
    if (auto it = all.find(name); it != all.end()) out.insert(*it);
  }
  return out;
}

// One power-on: open the environment afresh, run U-Boot's rules, return the slot.
template <typename Open>
Slot boot_once(Open&& open) {
  auto env = open();
  EXPECT_TRUE(env) << describe(env.error());
  if (!env) return Slot::kA;
  auto slot = simulate_boot(**env);
  EXPECT_TRUE(slot) << describe(slot.error());
  return slot ? *slot : Slot::kA;
}

// ---------------------------------------------------------------- U-Boot

class BootUbootEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::is_executable(kMkenvimage))
      GTEST_SKIP() << "no " << kMkenvimage << " to make the U-Boot environment (apt-get install u-boot-tools)";
    const std::string input = dir_.file("env.txt");
    test::write_bytes(input, to_bytes("# made by the test\n"
                                      "bootcmd=if test ${upgrade_available} = 1; then echo trial; fi; run boot_${ota_slot}\n"
                                      "bootargs=console=ttyS0,115200 rootwait\n"
                                      "bootlimit=2\n"
                                      "ota_slot=a\n"));
    // -r: the redundant layout (a flags byte after the CRC); both copies start equal.
    for (const auto& copy : {env_a_, env_b_})
      run_ok({kMkenvimage, "-r", "-s", "0x4000", "-o", copy, input});
    test::write_bytes(config_, to_bytes("# device offset size\n" + env_a_ + " 0x0000 0x4000\n" + env_b_ +
                                        " 0x0000 0x4000\n"));
  }

  static Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

  Result<std::unique_ptr<Environment>> open() { return open_uboot_env(config_); }

  std::unique_ptr<Environment> must_open() {
    auto env = open();
    EXPECT_TRUE(env) << describe(env.error());
    return env ? std::move(*env) : nullptr;
  }

  // What Debian's fw_printenv reads with the same config, if it is installed.
  std::optional<Vars> fw_printenv() {
    if (!test::is_executable(kFwPrintenv)) return std::nullopt;
    return parse_listing(run_ok({kFwPrintenv, "-c", config_}));
  }

  TempDir dir_;
  const std::string env_a_ = dir_.file("envA");
  const std::string env_b_ = dir_.file("envB");
  const std::string config_ = dir_.file("fw_env.config");
};

TEST_F(BootUbootEnv, ReadsTheImagesMkenvimageMade) {
  Bytes a = test::read_bytes(env_a_), b = test::read_bytes(env_b_);
  ASSERT_EQ(a.size(), kEnvSize);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[kFlagsOffset], 1) << "mkenvimage -r writes flags = 1";
  auto env = must_open();
  ASSERT_TRUE(env);
  auto vars = env->read();
  ASSERT_TRUE(vars) << describe(vars.error());
  EXPECT_EQ(vars->at("bootargs"), "console=ttyS0,115200 rootwait");
  EXPECT_EQ(vars->count("upgrade_available"), 0u);
  auto st = BootControl(*env).state();
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->boot_slot, Slot::kA);
  EXPECT_FALSE(st->upgrade_available);
  EXPECT_EQ(st->bootcount, 0u);
  EXPECT_EQ(st->bootlimit, 2u);
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(*fw, *vars);
  }
}

TEST_F(BootUbootEnv, BeginTrialIsOneStoreToTheOlderCopy) {
  auto env = must_open();
  ASSERT_TRUE(env);
  Bytes a0 = test::read_bytes(env_a_), b0 = test::read_bytes(env_b_);
  ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  Bytes a1 = test::read_bytes(env_a_), b1 = test::read_bytes(env_b_);
  // Equal flags: libubootenv reads copy A and writes B with flags 2; A is untouched.
  EXPECT_EQ(a1, a0);
  ASSERT_NE(b1, b0);
  EXPECT_EQ(b1[kFlagsOffset], 2);
  // The next store goes back to A, with flags 3.
  ASSERT_OK(BootControl(*env).commit());
  Bytes a2 = test::read_bytes(env_a_), b2 = test::read_bytes(env_b_);
  EXPECT_EQ(b2, b1);
  EXPECT_EQ(a2[kFlagsOffset], 3);

  if (auto fw = fw_printenv()) {
    EXPECT_EQ(boot_vars(*fw),
              (Vars{{"ota_slot", "b"}, {"upgrade_available", "0"}, {"bootcount", "0"}, {"bootlimit", "2"}}));
    EXPECT_EQ(fw->at("bootargs"), "console=ttyS0,115200 rootwait") << "other variables are kept";
  }
}

TEST_F(BootUbootEnv, UncommittedTrialFallsBackAcrossReboots) {
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  }
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(boot_vars(*fw),
              (Vars{{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "0"}, {"bootlimit", "2"}}));
  }
  auto open_fn = [&] { return open(); };
  EXPECT_EQ(boot_once(open_fn), Slot::kB);
  EXPECT_EQ(boot_once(open_fn), Slot::kB);
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(fw->at("bootcount"), "2");
  }
  EXPECT_EQ(boot_once(open_fn), Slot::kA) << "bootlimit 2 exceeded on the third boot";
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(boot_vars(*fw),
              (Vars{{"ota_slot", "a"}, {"upgrade_available", "0"}, {"bootcount", "0"}, {"bootlimit", "2"}}));
  }
  EXPECT_EQ(boot_once(open_fn), Slot::kA);
  auto env = must_open();
  ASSERT_TRUE(env);
  auto st = BootControl(*env).state();
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->boot_slot, Slot::kA);
  EXPECT_FALSE(st->upgrade_available);
}

TEST_F(BootUbootEnv, CommittedTrialPersists) {
  auto open_fn = [&] { return open(); };
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  }
  EXPECT_EQ(boot_once(open_fn), Slot::kB);
  {
    auto env = must_open();  // the new OS, after its health check
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).commit());
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(boot_once(open_fn), Slot::kB) << "boot " << i;
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(boot_vars(*fw),
              (Vars{{"ota_slot", "b"}, {"upgrade_available", "0"}, {"bootcount", "0"}, {"bootlimit", "2"}}));
  }
}

// A store cut short by power loss leaves a copy with a bad CRC: the other
// copy, with the settings from before the store, is the environment.
TEST_F(BootUbootEnv, TornStoreLeavesTheOldSettings) {
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  }
  Bytes b = test::read_bytes(env_b_);
  b[kDataOffset + 1] ^= 0x20;
  test::write_bytes(env_b_, b);
  auto env = must_open();
  ASSERT_TRUE(env);
  auto st = BootControl(*env).state();
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->boot_slot, Slot::kA);
  EXPECT_FALSE(st->upgrade_available);
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(fw->at("ota_slot"), "a");
  }
  // The next store repairs the bad copy.
  ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  if (auto fw = fw_printenv()) {
    EXPECT_EQ(fw->at("ota_slot"), "b");
  }
}

TEST_F(BootUbootEnv, ReadsWhatFwSetenvWrote) {
  if (!test::is_executable(kFwSetenv)) GTEST_SKIP() << "no " << kFwSetenv << " (apt-get install libubootenv-tool)";
  run_ok({kFwSetenv, "-c", config_, "bootlimit", "5"});
  auto env = must_open();
  ASSERT_TRUE(env);
  auto st = BootControl(*env).state();
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->bootlimit, 5u);
  ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  auto again = must_open();
  ASSERT_TRUE(again);
  st = BootControl(*again).state();
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->bootlimit, 5u);
  EXPECT_EQ(st->boot_slot, Slot::kB);
}

TEST_F(BootUbootEnv, WriteDeletesAndRejectsBadNames) {
  auto env = must_open();
  ASSERT_TRUE(env);
  ASSERT_OK(env->write({{"bootargs", std::nullopt}, {"script", "echo 1\necho 2"}}));
  auto vars = env->read();
  ASSERT_TRUE(vars) << describe(vars.error());
  EXPECT_EQ(vars->count("bootargs"), 0u);
  EXPECT_EQ(vars->at("script"), "echo 1\necho 2");
  Bytes a = test::read_bytes(env_a_), b = test::read_bytes(env_b_);
  auto bad = env->write({{"ota_slot", "b"}, {"x=y", "1"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUsage);
  EXPECT_EQ(test::read_bytes(env_a_), a);
  EXPECT_EQ(test::read_bytes(env_b_), b);
}

TEST_F(BootUbootEnv, MissingConfigIsIoErrorNamingIt) {
  auto env = open_uboot_env(dir_.file("no-such.config"));
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code, ErrorCode::kIo);
  EXPECT_NE(env.error().message.find("no-such.config"), std::string::npos) << env.error().message;
  EXPECT_NE(env.error().message.find("libubootenv returned -"), std::string::npos) << env.error().message;
}

TEST_F(BootUbootEnv, ConfigNamingAMissingDeviceIsIoError) {
  test::write_bytes(config_, to_bytes(env_a_ + " 0x0000 0x4000\n" + dir_.file("gone") + " 0x0000 0x4000\n"));
  auto env = open();
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code, ErrorCode::kIo);
  EXPECT_NE(env.error().message.find(config_), std::string::npos) << env.error().message;
}

TEST_F(BootUbootEnv, NoValidCopyIsIoError) {
  for (const auto& copy : {env_a_, env_b_}) {
    Bytes bytes = test::read_bytes(copy);
    bytes[kDataOffset] ^= 0x01;
    test::write_bytes(copy, bytes);
  }
  auto env = open();
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code, ErrorCode::kIo);
  EXPECT_NE(env.error().message.find("valid CRC"), std::string::npos) << env.error().message;
}

// ---------------------------------------------------------------- GRUB

class BootGrubEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::is_executable(kGrubEditenv))
      GTEST_SKIP() << "no " << kGrubEditenv << " (apt-get install grub-common)";
  }

  Result<std::unique_ptr<Environment>> open() { return open_grub_env(file_, kGrubEditenv); }

  std::unique_ptr<Environment> must_open() {
    auto env = open();
    EXPECT_TRUE(env) << describe(env.error());
    return env ? std::move(*env) : nullptr;
  }

  Vars grub_list() { return parse_listing(run_ok({kGrubEditenv, file_, "list"})); }

  TempDir dir_;
  const std::string file_ = dir_.file("grubenv");
};

TEST_F(BootGrubEnv, OpenCreatesAMissingBlock) {
  auto env = must_open();
  ASSERT_TRUE(env);
  Bytes block = test::read_bytes(file_);
  EXPECT_EQ(block.size(), 1024u);
  EXPECT_EQ(std::string(block.begin(), block.begin() + 24), "# GRUB Environment Block");
  auto vars = env->read();
  ASSERT_TRUE(vars) << describe(vars.error());
  EXPECT_TRUE(vars->empty());
  auto st = BootControl(*env).state();
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->boot_slot, Slot::kA);
  EXPECT_EQ(st->bootlimit, 3u);
}

TEST_F(BootGrubEnv, OpenKeepsAnExistingBlock) {
  run_ok({kGrubEditenv, file_, "create"});
  run_ok({kGrubEditenv, file_, "set", "saved_entry=1", "bootlimit=1"});
  auto env = must_open();
  ASSERT_TRUE(env);
  auto vars = env->read();
  ASSERT_TRUE(vars) << describe(vars.error());
  EXPECT_EQ(*vars, (Vars{{"saved_entry", "1"}, {"bootlimit", "1"}}));
}

TEST_F(BootGrubEnv, OpenFindsGrubEditenvInPath) {
  auto env = open_grub_env(file_);
  ASSERT_TRUE(env) << describe(env.error());
}

TEST_F(BootGrubEnv, UncommittedTrialFallsBackAcrossReboots) {
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  }
  EXPECT_EQ(grub_list(), (Vars{{"ota_slot", "b"}, {"upgrade_available", "1"}, {"bootcount", "0"}}));
  auto open_fn = [&] { return open(); };
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(boot_once(open_fn), Slot::kB) << "boot " << i;
  EXPECT_EQ(grub_list().at("bootcount"), "3");
  EXPECT_EQ(boot_once(open_fn), Slot::kA) << "default bootlimit 3 exceeded on the fourth boot";
  EXPECT_EQ(grub_list(), (Vars{{"ota_slot", "a"}, {"upgrade_available", "0"}, {"bootcount", "0"}, {"ota_booted", "a"}}));
  EXPECT_EQ(boot_once(open_fn), Slot::kA);
}

TEST_F(BootGrubEnv, CommittedTrialPersists) {
  auto open_fn = [&] { return open(); };
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).begin_trial(Slot::kB));
  }
  EXPECT_EQ(boot_once(open_fn), Slot::kB);
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).commit());
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(boot_once(open_fn), Slot::kB) << "boot " << i;
  EXPECT_EQ(grub_list(), (Vars{{"ota_slot", "b"}, {"upgrade_available", "0"}, {"bootcount", "0"}, {"ota_booted", "b"}}));
  // And a rollback after the commit, read back by a fresh open.
  {
    auto env = must_open();
    ASSERT_TRUE(env);
    ASSERT_OK(BootControl(*env).rollback());
  }
  EXPECT_EQ(boot_once(open_fn), Slot::kA);
}

TEST_F(BootGrubEnv, SetAndUnsetInOneWrite) {
  auto env = must_open();
  ASSERT_TRUE(env);
  ASSERT_OK(env->write({{"drop", "1"}, {"keep", "2"}}));
  ASSERT_OK(env->write({{"drop", std::nullopt}, {"new", "a b\\c=d"}, {"-dash", "x"}}));
  EXPECT_EQ(grub_list(), (Vars{{"keep", "2"}, {"new", "a b\\c=d"}, {"-dash", "x"}}));
  auto vars = env->read();
  ASSERT_TRUE(vars) << describe(vars.error());
  EXPECT_EQ(*vars, grub_list());
  EXPECT_EQ(dir_.list(), std::vector<std::string>{"grubenv"}) << "no temporary copy is left behind";
  ASSERT_OK(env->write({{"keep", std::nullopt}, {"-dash", std::nullopt}}));
  EXPECT_EQ(grub_list(), (Vars{{"new", "a b\\c=d"}}));
}

// Every write (create, a set alone, an unset alone, both) edits a copy that
// is fsync'ed and renamed over the file, then fsyncs the directory
// (grub_env.cpp, store()): grub-editenv itself never edits the file in place
// (it would rename its FILE.new over FILE without any fsync). A wrapper
// around grub-editenv logs the file each command is given.
TEST_F(BootGrubEnv, EveryWriteGoesThroughACopyRenamedOverTheFile) {
  const std::string log = dir_.file("calls.log");
  const std::string wrapper = dir_.file("grub-editenv-logged");
  {
    std::ofstream w(wrapper);
    w << "#!/bin/sh\n# -- FILE COMMAND ARGS...\nprintf '%s %s\\n' \"$2\" \"$3\" >>'" << log << "'\nexec "
      << kGrubEditenv << " \"$@\"\n";
  }
  ::chmod(wrapper.c_str(), 0755);
  const std::string env_file = dir_.file("boot/grubenv");
  std::filesystem::create_directories(dir_.file("boot"));
  auto env = open_grub_env(env_file, wrapper);
  ASSERT_TRUE(env) << describe(env.error());
  ASSERT_OK((*env)->write({{"ota_slot", "b"}}));
  ASSERT_OK((*env)->write({{"ota_slot", std::nullopt}}));
  ASSERT_OK((*env)->write({{"upgrade_available", "1"}, {"gone", std::nullopt}}));
  EXPECT_EQ(parse_listing(run_ok({kGrubEditenv, env_file, "list"})), (Vars{{"upgrade_available", "1"}}));
  std::ifstream in(log);
  std::string file, command;
  std::vector<std::string> writes;
  while (in >> file >> command) {
    if (command == "list") continue;
    writes.push_back(command);
    EXPECT_NE(file, env_file) << command << " edited the environment file in place";
    EXPECT_EQ(file.rfind(env_file + ".ota-", 0), 0u) << command << " on " << file;
  }
  EXPECT_EQ(writes, (std::vector<std::string>{"create", "set", "unset", "set", "unset"}));
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_.file("boot"))) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"grubenv"}) << "a copy was left behind";
  struct stat st {};
  ASSERT_EQ(::stat(env_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(BootGrubEnv, RejectsNewlinesAndBadNamesWithoutWriting) {
  auto env = must_open();
  ASSERT_TRUE(env);
  Bytes before = test::read_bytes(file_);
  for (const auto& changes : std::vector<std::map<std::string, std::optional<std::string>>>{
           {{"ota_slot", "b"}, {"note", "line1\nline2"}},
           {{"ota_slot", "b"}, {"a=b", "1"}},
           {{"ota_slot", "b"}, {"", "1"}},
           {{"ota_slot", "b"}, {"bad\nname", std::nullopt}},
       }) {
    auto st = env->write(changes);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kUsage) << st.error().message;
  }
  EXPECT_EQ(test::read_bytes(file_), before);
}

TEST_F(BootGrubEnv, FullBlockIsIoErrorWithGrubEditenvsMessage) {
  auto env = must_open();
  ASSERT_TRUE(env);
  Bytes before = test::read_bytes(file_);
  auto st = env->write({{"big", std::string(2000, 'x')}});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_NE(st.error().message.find("too small"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find(file_), std::string::npos) << st.error().message;
  EXPECT_EQ(test::read_bytes(file_), before);
}

TEST_F(BootGrubEnv, InvalidBlockIsIoError) {
  test::write_bytes(file_, Bytes{'j', 'u', 'n', 'k'});
  auto env = open();
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code, ErrorCode::kIo);
  EXPECT_NE(env.error().message.find("invalid environment block"), std::string::npos) << env.error().message;
}

TEST_F(BootGrubEnv, MissingToolIsIoError) {
  auto by_path = open_grub_env(file_, dir_.file("no-grub-editenv"));
  ASSERT_FALSE(by_path);
  EXPECT_EQ(by_path.error().code, ErrorCode::kIo);
  auto by_name = open_grub_env(file_, "ota-test-no-such-grub-editenv");
  ASSERT_FALSE(by_name);
  EXPECT_EQ(by_name.error().code, ErrorCode::kIo);
  EXPECT_NE(by_name.error().message.find("PATH"), std::string::npos) << by_name.error().message;
  EXPECT_FALSE(test::file_exists(file_));
}

}  // namespace
}  // namespace ota::boot
