// ota-agent end to end through the real binaries: ota builds and signs a
// bundle; ota-agent installs it into file banks, with a JSON file as the boot
// environment and `ota-agent simulate-boot` applying U-Boot's bootcount rules
// as the reboot; the health check is a real command (true, false, a hang).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/random.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::run_process;

const std::string kOta = OTA_CLI_PATH;
const std::string kAgent = OTA_AGENT_PATH;
constexpr std::size_t kBank = 1 << 20;

class AgentCli : public testing::Test {
 protected:
  void SetUp() override {
    ::setenv("SOURCE_DATE_EPOCH", "1780000000", 1);
    base_ = test::structured_bytes(150'000, 900);
    image_ = test::with_insertion(test::with_random_edits(base_, 150, 901), 60'000, test::random_bytes(4000, 902));
    test::write_bytes(path("base.img"), base_);
    test::write_bytes(path("new.img"), image_);
    Bytes a(kBank, 0), b(kBank, 0);
    std::copy(base_.begin(), base_.end(), a.begin());
    test::write_bytes(path("bank-a"), a);
    test::write_bytes(path("bank-b"), b);
    ASSERT_EQ(ota({"keygen", "-o", path("k")}).exit_code, 0);
    ASSERT_EQ(ota({"root", "init", "--key", path("k.pub"), "--threshold", "1", "--expires", "2099-01-01", "-o",
                   path("root.json"), "-q"})
                  .exit_code,
              0);
    ASSERT_EQ(ota({"root", "sign", path("root.json"), "--key", path("k.key")}).exit_code, 0);
    write_config({"true"}, 5);
  }

  std::string path(const std::string& n) const { return dir_.file(n); }

  test::ProcessResult ota(std::vector<std::string> args) {
    args.insert(args.begin(), kOta);
    return run_process(args);
  }
  test::ProcessResult agent(std::vector<std::string> args) {
    args.insert(args.begin(), {kAgent, "-c", path("agent.json")});
    auto r = run_process(args);
    EXPECT_FALSE(r.crashed()) << r.err;
    return r;
  }
  nlohmann::json status() {
    auto r = agent({"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  void write_config(std::vector<std::string> health, int timeout) {
    nlohmann::json c = {{"device_id", "dev-1"},
                        {"hardware_id", "board"},
                        {"banks", {{"a", path("bank-a")}, {"b", path("bank-b")}}},
                        {"boot", {{"backend", "file"}, {"file", path("bootenv.json")}}},
                        {"trust_root", path("root.json")},
                        {"state_dir", path("state")},
                        {"health_check", {{"command", health}, {"timeout_s", timeout}}}};
    std::ofstream(path("agent.json")) << c.dump(2);
  }

  void build(const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board",
                                  "--base", path("base.img"), "--key", path("k.key"), "-q", "-o", path(out)};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = ota(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  Bytes bank_b_image() {
    Bytes b = test::read_bytes(path("bank-b"));
    return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(image_.size()));
  }

  test::TempDir dir_;
  Bytes base_, image_;
};

TEST_F(AgentCli, InstallTrialHealthCheckCommit) {
  build("fw.otb");
  auto r = agent({"install", "file://" + path("fw.otb"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["delta"], true);
  EXPECT_EQ(bank_b_image(), image_);
  auto s = status();
  EXPECT_EQ(s["boot"]["slot"], "b");
  EXPECT_EQ(s["boot"]["trial"], true);
  EXPECT_EQ(s["install"]["stage"], "trial");
  r = agent({"simulate-boot"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "booted slot b\n");
  r = agent({"boot-check"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  s = status();
  EXPECT_EQ(s["last_result"], "installed 1.1.0");
  EXPECT_EQ(s["boot"]["trial"], false);
  EXPECT_EQ(s["banks"]["b"]["version"], "1.1.0");
  EXPECT_EQ(agent({"simulate-boot"}).out, "booted slot b\n");
  // The active bank was never written.
  Bytes a = test::read_bytes(path("bank-a"));
  EXPECT_EQ(Bytes(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(base_.size())), base_);
}

TEST_F(AgentCli, FailingOrHangingHealthCheckRollsBack) {
  build("fw.otb");
  for (auto health : {std::vector<std::string>{"false"}, std::vector<std::string>{"sleep", "30"}}) {
    write_config(health, 1);
    ASSERT_EQ(agent({"install", path("fw.otb"), "-q"}).exit_code, 0);
    EXPECT_EQ(agent({"simulate-boot"}).out, "booted slot b\n");
    ASSERT_EQ(agent({"boot-check"}).exit_code, 0);
    auto s = status();
    const std::string last = s["last_result"];
    EXPECT_NE(last.find("rolled-back 1.1.0: health check failed"), std::string::npos) << last;
    if (health[0] == "sleep") {
      EXPECT_NE(last.find("timed out"), std::string::npos) << last;
    }
    EXPECT_EQ(agent({"simulate-boot"}).out, "booted slot a\n");
  }
}

TEST_F(AgentCli, RebootLoopFallsBackToTheOldBank) {
  build("fw.otb");
  ASSERT_EQ(agent({"install", path("fw.otb"), "-q"}).exit_code, 0);
  std::vector<std::string> boots;
  for (int i = 0; i < 4; ++i) boots.push_back(agent({"simulate-boot"}).out);
  EXPECT_EQ(boots, (std::vector<std::string>{"booted slot b\n", "booted slot b\n", "booted slot b\n",
                                             "booted slot a\n"}));
  ASSERT_EQ(agent({"boot-check"}).exit_code, 0);
  const std::string last = status()["last_result"];
  EXPECT_NE(last.find("fell back"), std::string::npos) << last;
}

TEST_F(AgentCli, RejectedBundlesWriteNothing) {
  build("fw.otb");
  // A corrupted byte in the delta (one chunk): exit 26, no byte of it in bank b.
  Bytes t = test::read_bytes(path("fw.otb"));
  t[t.size() - 2048] ^= 0x01;
  test::write_bytes(path("t.otb"), t);
  EXPECT_EQ(agent({"install", path("t.otb")}).exit_code, 26);
  EXPECT_EQ(test::read_bytes(path("bank-b")), Bytes(kBank, 0));
  // Wrong hardware; expired (built in May 2026 to expire in June: the agent's
  // clock is the real one); unsigned: each refused before a payload byte.
  auto r = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "other", "--key", path("k.key"),
                "-q", "-o", path("other.otb")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(agent({"install", path("other.otb")}).exit_code, 27);
  r = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--expires", "2026-06-01",
           "--key", path("k.key"), "-q", "-o", path("exp.otb")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(agent({"install", path("exp.otb")}).exit_code, 25);
  r = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "-q", "-o",
           path("unsigned.otb")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(agent({"install", path("unsigned.otb")}).exit_code, 22);
  EXPECT_EQ(test::read_bytes(path("bank-b")), Bytes(kBank, 0));
  EXPECT_EQ(status()["boot"]["slot"], "a");
}

TEST_F(AgentCli, HttpIsNotYetSupportedAndSaysSo) {
  auto r = agent({"install", "http://127.0.0.1:9/fw.otb"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("HTTP"), std::string::npos);
}

}  // namespace
}  // namespace ota
