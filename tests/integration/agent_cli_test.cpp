// ota-agent end to end through the real binaries: ota builds and signs a
// bundle; ota-agent installs it into file banks, with a JSON file as the boot
// environment and `ota-agent simulate-boot` applying U-Boot's bootcount rules
// as the reboot; the health check is a real command (true, false, a hang).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ota/device/fetch.hpp"
#include "support/nginx.hpp"
#include "support/random.hpp"
#include "support/spawned.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::run_process;

std::string text_of(const Bytes& b) { return std::string(b.begin(), b.end()); }
Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

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

  void write_config(std::vector<std::string> health, int timeout, int retries = 8) {
    nlohmann::json c = {{"device_id", "dev-1"},
                        {"hardware_id", "board"},
                        {"banks", {{"a", path("bank-a")}, {"b", path("bank-b")}}},
                        {"boot", {{"backend", "file"}, {"file", path("bootenv.json")}}},
                        {"trust_root", path("root.json")},
                        {"state_dir", path("state")},
                        {"health_check", {{"command", health}, {"timeout_s", timeout}}},
                        {"download", {{"retries", retries}, {"stall_timeout_s", 20}}}};
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

// mqtt.broker as the nodes of one cluster (issue 18) and failover_after_s, parsed strictly.
TEST_F(AgentCli, BrokerListAndFailoverSettingsAreParsedStrictly) {
  auto with = [&](const nlohmann::json& mqtt) {
    write_config({"true"}, 5);
    std::ifstream in(path("agent.json"));
    auto c = nlohmann::json::parse(in);
    c["mqtt"] = mqtt;
    std::ofstream(path("agent.json")) << c.dump(2);
  };
  const nlohmann::json two = nlohmann::json::array({"mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1884"});
  with({{"broker", two}, {"fleet", "f"}, {"failover_after_s", 3}});
  auto r = agent({"status", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json seventeen = nlohmann::json::array();
  for (int i = 0; i < 17; ++i) seventeen.push_back("mqtt://127.0.0.1:" + std::to_string(2000 + i));
  for (const auto& bad : {nlohmann::json{{"broker", nlohmann::json::array()}, {"fleet", "f"}},
                          nlohmann::json{{"broker", seventeen}, {"fleet", "f"}},
                          nlohmann::json{{"broker", {"mqtt://127.0.0.1:1883", 7}}, {"fleet", "f"}},
                          nlohmann::json{{"broker", {"mqtt://a:1,mqtt://b:2"}}, {"fleet", "f"}},
                          nlohmann::json{{"broker", {""}}, {"fleet", "f"}},
                          nlohmann::json{{"broker", two}, {"fleet", "f"}, {"failover_after_s", 0}},
                          nlohmann::json{{"broker", two}, {"fleet", "f"}, {"failover_after_s", 3601}},
                          nlohmann::json{{"broker", two}, {"fleet", "f"}, {"failover_after_s", "10"}}}) {
    with(bad);
    r = agent({"status", "--json"});
    EXPECT_EQ(r.exit_code, 20) << bad.dump() << ": " << r.err;
    EXPECT_NE((r.out + r.err).find("mqtt."), std::string::npos) << bad.dump() << ": " << r.out << r.err;
  }
}

// health_signals (regression campaigns): an optional counter command, parsed strictly.
TEST_F(AgentCli, HealthSignalsSettingsAreParsedStrictly) {
  auto with = [&](const nlohmann::json& hs) {
    std::ifstream in(path("agent.json"));
    auto c = nlohmann::json::parse(in);
    c["health_signals"] = hs;
    std::ofstream(path("agent.json")) << c.dump(2);
  };
  with({{"counter_command", {"/bin/sh", "-c", "echo 3"}}, {"timeout_s", 5}});
  auto r = agent({"status", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const auto& bad : {nlohmann::json{{"counter_command", {"/bin/sh"}}, {"interval_s", 5}},
                          nlohmann::json{{"timeout_s", 5}},
                          nlohmann::json{{"counter_command", {"/bin/sh"}}, {"timeout_s", 0}},
                          nlohmann::json{{"counter_command", "echo 3"}}, nlohmann::json::array()}) {
    write_config({"true"}, 5);
    with(bad);
    r = agent({"status", "--json"});
    EXPECT_NE(r.exit_code, 0) << bad.dump();
    EXPECT_NE((r.out + r.err).find("health_signals"), std::string::npos) << bad.dump() << ": " << r.out << r.err;
  }
}

TEST_F(AgentCli, FailingOrHangingHealthCheckRollsBack) {
  build("fw.otb");
  for (auto health : {std::vector<std::string>{"false"}, std::vector<std::string>{"sleep", "30"},
                      std::vector<std::string>{"sh", "-c", "kill -SEGV $$"}}) {
    write_config(health, 1);
    ASSERT_EQ(agent({"install", path("fw.otb"), "-q"}).exit_code, 0);
    EXPECT_EQ(agent({"simulate-boot"}).out, "booted slot b\n");
    auto bc = agent({"boot-check", "--json"});
    ASSERT_EQ(bc.exit_code, 42) << bc.err;  // rolled back
    EXPECT_EQ(nlohmann::json::parse(bc.out)["error"]["name"], "rolled_back");
    auto s = status();
    const std::string last = s["last_result"];
    EXPECT_NE(last.find("rolled-back 1.1.0: health check failed"), std::string::npos) << last;
    if (health[0] == "sleep") {
      EXPECT_NE(last.find("timed out"), std::string::npos) << last;
    }
    if (health[0] == "sh") {
      EXPECT_NE(last.find("killed by signal"), std::string::npos) << last;  // a crashing health check
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
  ASSERT_EQ(agent({"boot-check"}).exit_code, 42);
  const std::string last = status()["last_result"];
  EXPECT_NE(last.find("fell back"), std::string::npos) << last;
}

// Issue 14: boot-check right after install, with no boot in between, must not
// commit the image that never ran; the bank that runs is never written.
TEST_F(AgentCli, BootCheckBeforeTheTrialBootedCommitsNothing) {
  build("fw.otb");
  ASSERT_EQ(agent({"install", path("fw.otb"), "-q"}).exit_code, 0);
  auto r = agent({"boot-check", "--json"});
  EXPECT_EQ(r.exit_code, 45) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["error"]["name"], "trial_not_booted") << r.out;
  auto s = status();
  EXPECT_EQ(s["running_slot"], "a");
  EXPECT_EQ(s["boot"]["trial"], true);
  EXPECT_EQ(s["install"]["stage"], "trial");
  EXPECT_NE(s["last_result"], "installed 1.1.0");
  // Asked again, the same: nothing changes until the trial slot really boots.
  EXPECT_EQ(agent({"boot-check"}).exit_code, 45);
  // Another install now would write the bank that runs the trial's fallback:
  // refused while the trial is pending.
  r = agent({"install", path("fw.otb"), "-q"});
  EXPECT_NE(r.exit_code, 0);
  Bytes a = test::read_bytes(path("bank-a"));
  EXPECT_EQ(Bytes(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(base_.size())), base_);
  EXPECT_EQ(bank_b_image(), image_);
  // The boot happens: now the trial runs, and boot-check commits it.
  EXPECT_EQ(agent({"simulate-boot"}).out, "booted slot b\n");
  ASSERT_EQ(agent({"boot-check"}).exit_code, 0);
  s = status();
  EXPECT_EQ(s["running_slot"], "b");
  EXPECT_EQ(s["boot"]["trial"], false);
  EXPECT_EQ(s["last_result"], "installed 1.1.0");
  // The next install goes to bank a, the one not running; bank b is untouched.
  const Bytes third = test::random_bytes(90'000, 903);
  test::write_bytes(path("third.img"), third);
  ASSERT_EQ(ota({"build", "--image", path("third.img"), "--version", "1.2.0", "--hw", "board", "--key", path("k.key"),
                 "-q", "-o", path("fw3.otb")})
                .exit_code,
            0);
  ASSERT_EQ(agent({"install", path("fw3.otb"), "-q"}).exit_code, 0);
  a = test::read_bytes(path("bank-a"));
  EXPECT_EQ(Bytes(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(third.size())), third);
  EXPECT_EQ(bank_b_image(), image_);
  EXPECT_EQ(status()["install"]["stage"], "trial");
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

TEST_F(AgentCli, DeltaOnlyBundleNeedsItsBase) {
  build("d.otb", {"--no-full"});
  auto listing = run_process({"tar", "tf", path("d.otb")});
  EXPECT_EQ(listing.out.find("full"), std::string::npos) << listing.out;
  // Another base in bank a: no payload applies (exit 43), nothing written.
  Bytes a = test::read_bytes(path("bank-a"));
  a[10] ^= 0xff;
  test::write_bytes(path("bank-a"), a);
  // (The agent tried the only delta while checking its base, then read the
  // bundle again: bank b may hold that attempt, never marked bootable.)
  EXPECT_EQ(agent({"install", path("d.otb")}).exit_code, 43);
  EXPECT_EQ(status()["boot"]["slot"], "a");
  EXPECT_EQ(agent({"simulate-boot"}).out, "booted slot a\n");
  // The right base, on a fresh device (the state caches bank a's hash).
  a[10] ^= 0xff;
  test::write_bytes(path("bank-a"), a);
  std::filesystem::remove_all(path("state"));
  auto r = agent({"install", path("d.otb"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["delta"], true);
  EXPECT_EQ(bank_b_image(), image_);
  // A second install while the trial is pending: exit 41.
  EXPECT_EQ(agent({"install", path("d.otb")}).exit_code, 41);
  EXPECT_EQ(ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--no-full", "-q", "-o",
                 path("x.otb")})
                .exit_code,
            2);
}

// ---- over HTTP, from a real nginx on a loopback port ----

class AgentHttp : public AgentCli {
 protected:
  void SetUp() override {
    if (test::find_nginx().empty()) GTEST_SKIP() << "nginx is not installed (scripts/install-deps.sh)";
    AgentCli::SetUp();
  }
  // Serves a bundle; /slow/ stalls after half of it.
  void serve(const std::string& name) {
    const Bytes b = test::read_bytes(path(name));
    size_ = b.size();
    ::mkdir(path("srv").c_str(), 0755);
    server_ = std::make_unique<test::Nginx>(path("srv"), size_ / 2, 1);
    ASSERT_TRUE(server_->running()) << server_->error_log();
    test::write_bytes(server_->www() + "/" + name, b);
  }
  nlohmann::json install(const std::string& url, int expect = 0) {
    auto r = agent({"install", url, "--json"});
    EXPECT_EQ(r.exit_code, expect) << r.err;
    return nlohmann::json::parse(r.out.empty() ? "{}" : r.out);
  }
  // A 900 KB image (no delta applies): zstd frames of 32 KiB of image, a
  // checkpoint each, checked in 4 KiB chunks. The first attempt gets only the
  // first half of the bundle (the server's copy ends there, as a download cut
  // off at 50%): it fails, its checkpoints stay; the second run fetches the
  // head and what follows the last checkpoint.
  void cut_off_at_half_then_resume(std::uint64_t seed, std::vector<std::string> build_args) {
    const Bytes big = test::random_bytes(900'000, seed);
    test::write_bytes(path("big.img"), big);
    std::vector<std::string> args{"build", "--image", path("big.img"), "--version", "1.1.0", "--hw", "board", "--key",
                                  path("k.key"), "--frame-size", "32768", "--chunk-size", "4096", "-q", "-o", path("fw.otb")};
    args.insert(args.end(), build_args.begin(), build_args.end());
    auto b = ota(args);
    ASSERT_EQ(b.exit_code, 0) << b.err;
    serve("fw.otb");
    const Bytes whole = test::read_bytes(path("fw.otb"));
    test::write_bytes(server_->www() + "/half.otb", Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(size_ / 2)));
    auto r = agent({"install", server_->url("half.otb"), "-q"});
    EXPECT_EQ(r.exit_code, 20) << r.err;  // truncated
    auto s = status();
    EXPECT_EQ(s["install"]["stage"], "writing");
    EXPECT_GT(s["install"]["new_bytes_checkpointed"].get<std::uint64_t>(), big.size() / 3);
    auto doc = install(server_->url("fw.otb"));
    EXPECT_EQ(doc["resumed"], true);
    Bytes bank = test::read_bytes(path("bank-b"));
    EXPECT_EQ(Bytes(bank.begin(), bank.begin() + static_cast<std::ptrdiff_t>(big.size())), big);
    const std::uint64_t fetched = doc["bytes_fetched"];
    EXPECT_LT(fetched, size_ * 6 / 10) << "the resumed install fetched " << fetched << " of " << size_;
  }

  std::unique_ptr<test::Nginx> server_;
  std::uint64_t size_ = 0;
};

TEST_F(AgentHttp, DeltaInstallFetchesTheHeadAndTheDeltaOnly) {
  // Stored, the full image (150 KB) is longer than a gap the reader reads over (64 KiB).
  build("fw.otb", {"--no-compress"});
  serve("fw.otb");
  auto doc = install(server_->url("fw.otb"));
  EXPECT_EQ(doc["delta"], true);
  EXPECT_EQ(bank_b_image(), image_);
  // The full image before the delta was jumped over with a Range request.
  const std::uint64_t fetched = doc["bytes_fetched"];
  EXPECT_LT(fetched, size_ / 2) << "fetched " << fetched << " of " << size_;
  bool ranged = false;
  for (const auto& e : server_->access_log()) ranged |= e.status == 206 && e.range.rfind("\"bytes=", 0) == 0;
  EXPECT_TRUE(ranged) << "no Range request in the access log";
}

TEST_F(AgentHttp, DroppedConnectionResumesWithARangeRequest) {
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--key", path("k.key"),
                "--no-compress", "-q", "-o", path("fw.otb")});  // the full image only, stored
  ASSERT_EQ(b.exit_code, 0) << b.err;
  serve("fw.otb");
  // The server stalls after half the bundle; then every connection drops.
  std::thread cut([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    server_->kill_workers();
  });
  auto doc = install(server_->url("slow/fw.otb"));
  cut.join();
  EXPECT_EQ(doc["delta"], false);
  EXPECT_GE(doc["retries"].get<int>(), 1);
  EXPECT_EQ(bank_b_image(), image_);
  const std::uint64_t fetched = doc["bytes_fetched"];
  EXPECT_LE(fetched, size_ + size_ / 20) << "fetched " << fetched << " for a bundle of " << size_;
  std::uint64_t resumed_at = 0;
  for (const auto& e : server_->access_log())
    if (e.status == 206) resumed_at = std::max<std::uint64_t>(resumed_at, std::stoull(e.range.substr(7)));
  EXPECT_GE(resumed_at, size_ * 45 / 100) << "the retry did not continue where the transfer stopped";
}

TEST_F(AgentHttp, InstallCutOffAtHalfResumesFromItsCheckpointWithoutRefetching) {
  cut_off_at_half_then_resume(903, {});
}

// kill -9 in the middle of a transfer: the next run reads what the first
// fetched from the download spool and fetches only the rest, from the same URL.
TEST_F(AgentHttp, AKilledInstallFetchesOnlyWhatItNeverHad) {
  const Bytes big = test::random_bytes(900'000, 904);
  test::write_bytes(path("big.img"), big);
  auto b = ota({"build", "--image", path("big.img"), "--version", "1.1.0", "--hw", "board", "--key", path("k.key"),
                "--frame-size", "262144", "--chunk-size", "16384", "-q", "-o", path("fw.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  // /slow/ at 150 KB/s from the first byte: the transfer takes about six seconds.
  const Bytes bundle = test::read_bytes(path("fw.otb"));
  size_ = bundle.size();
  ::mkdir(path("srv").c_str(), 0755);
  server_ = std::make_unique<test::Nginx>(path("srv"), 0, 150'000);
  ASSERT_TRUE(server_->running()) << server_->error_log();
  test::write_bytes(server_->www() + "/fw.otb", bundle);
  const std::string url = server_->url("slow/fw.otb");
  {
    test::Spawned first({kAgent, "-c", path("agent.json"), "install", url, "-q"}, path("first.log"));
    // Wait until the spool holds most of the first half, then kill.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < until) {
      struct stat st {};
      if (::stat(path("state/download.spool").c_str(), &st) == 0 &&
          static_cast<std::uint64_t>(st.st_blocks) * 512 >= size_ * 4 / 10)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(first.wait(std::chrono::milliseconds(0)), -1) << "the first attempt ended on its own";
    first.kill9();
  }
  auto doc = install(url);
  EXPECT_EQ(bank_b_image().size(), image_.size());
  Bytes bank = test::read_bytes(path("bank-b"));
  EXPECT_EQ(Bytes(bank.begin(), bank.begin() + static_cast<std::ptrdiff_t>(big.size())), big);
  // The second run skips what the first wrote (up to its last checkpoint)
  // and reads what the first fetched past it from the spool.
  const std::uint64_t from_spool = doc["bytes_from_spool"], fetched = doc["bytes_fetched"];
  EXPECT_TRUE(doc["resumed"].get<bool>());
  EXPECT_GT(from_spool, 0u);
  EXPECT_LE(fetched, size_ * 6 / 10) << "fetched " << fetched << " of " << size_;
  // Both runs together: the bundle once, and the bytes in flight at the kill.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // nginx logs a response once it is closed
  std::uint64_t sent = 0;
  for (const auto& e : server_->access_log()) sent += e.bytes;
  EXPECT_LE(sent, size_ + size_ / 20) << "the server sent " << sent << " bytes for a bundle of " << size_;
  struct stat st {};
  EXPECT_NE(::stat(path("state/download.spool").c_str(), &st), 0) << "the spool is removed after the install";
}

TEST_F(AgentHttp, ServerErrorsAreExit40AndWriteNothing) {
  build("fw.otb");
  serve("fw.otb");
  auto r = agent({"install", server_->url("missing.otb")});
  EXPECT_EQ(r.exit_code, 40);
  EXPECT_NE(r.err.find("HTTP 404"), std::string::npos) << r.err;
  write_config({"true"}, 5, /*retries=*/1);
  const int closed = test::free_loopback_port();
  r = agent({"install", "http://user:secret@127.0.0.1:" + std::to_string(closed) + "/fw.otb"});
  EXPECT_EQ(r.exit_code, 40) << r.err;
  EXPECT_EQ(r.err.find("secret"), std::string::npos) << "the password leaked: " << r.err;
  EXPECT_EQ(agent({"install", "ftp://127.0.0.1/fw.otb"}).exit_code, 2);
  EXPECT_EQ(test::read_bytes(path("bank-b")), Bytes(kBank, 0));
}

TEST_F(AgentHttp, RejectedBundleOverHttpWritesNothing) {
  auto r = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "other", "--key", path("k.key"),
                "-q", "-o", path("other.otb")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  serve("other.otb");
  EXPECT_EQ(agent({"install", server_->url("other.otb")}).exit_code, 27);
  EXPECT_EQ(test::read_bytes(path("bank-b")), Bytes(kBank, 0));
  // Not a payload byte was sent: the requests covered the manifest and the
  // signature block, which end where the payload's tar header begins.
  std::uint64_t sent = 0;
  for (const auto& e : server_->access_log()) sent += e.bytes;
  const Bytes m = test::read_bytes(path("other.otb"));
  std::uint64_t head = 0;  // manifest and signature members with their headers and padding
  for (int member = 0; member < 2; ++member) {
    const std::string size_field(reinterpret_cast<const char*>(m.data() + head + 124), 11);
    const std::uint64_t sz = std::stoull(size_field, nullptr, 8);
    head += 512 + (sz + 511) / 512 * 512;
  }
  EXPECT_LE(sent, head) << "the server sent " << sent << " bytes; the head is " << head;
}

}  // namespace
}  // namespace ota

namespace ota {
namespace {

// Every command of both binaries answers --help with an example (issue 6).
// Redirects (security review, issue 14): a transfer that starts as https
// follows redirects to https only; http may go to http or https. A real
// nginx on loopback with a plain server and a TLS one (a self-signed
// certificate made by openssl here).
TEST(FetchRedirects, HttpsNeverFollowsARedirectToHttp) {
  if (test::find_nginx().empty()) GTEST_SKIP() << "nginx is not installed (scripts/install-deps.sh)";
  test::TempDir dir;
  const std::string d = dir.path();
  const std::string cert = d + "/tls.crt", key = d + "/tls.key";
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '" + key +
                          "' -out '" + cert + "' -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                          ">'" + d + "/openssl.log' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  const int tls_port = test::free_loopback_port();
  const std::string tls = "127.0.0.1:" + std::to_string(tls_port);
  std::filesystem::create_directories(d + "/srv");
  const std::string plain_extra =
      "    location = /again { return 302 /file.bin; }\n"
      "    location = /up { return 302 https://" + tls + "/file.bin; }\n";
  const std::string tls_server = "  server {\n    listen " + tls + " ssl;\n    ssl_certificate " + cert +
                                 ";\n    ssl_certificate_key " + key + ";\n    root " + d + "/srv/www;\n" +
                                 "    location = /down { return 302 http://127.0.0.1:@PORT@/file.bin; }\n"
                                 "    location = /stay { return 302 https://" + tls + "/file.bin; }\n  }\n";
  test::Nginx server(d + "/srv", 1 << 20, 1, plain_extra, tls_server);
  ASSERT_TRUE(server.running()) << server.error_log();
  std::ofstream(server.www() + "/file.bin") << "payload bytes";
  for (int i = 0; i < 200 && !test::port_accepts(tls_port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  fetch::Options o;
  o.ca_file = cert;
  o.retries = 0;
  auto read_all = [&](const std::string& url) -> Result<std::string> {
    auto r = fetch::open(url, o);
    if (!r) return fail(r.error());
    std::string out;
    std::uint8_t buf[256];
    for (;;) {
      auto n = (*r)->read(MutableByteSpan(buf, sizeof buf));
      if (!n) return fail(n.error());
      if (*n == 0) return out;
      out.append(reinterpret_cast<const char*>(buf), *n);
    }
  };
  const std::string https = "https://" + tls;
  auto direct = read_all(https + "/file.bin");
  ASSERT_TRUE(direct) << direct.error().message << server.error_log();
  EXPECT_EQ(*direct, "payload bytes");
  auto stay = read_all(https + "/stay");  // https -> https
  ASSERT_TRUE(stay) << stay.error().message;
  EXPECT_EQ(*stay, "payload bytes");
  auto again = read_all(server.url("again"));  // http -> http
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, "payload bytes");
  auto up = read_all(server.url("up"));  // http -> https
  ASSERT_TRUE(up) << up.error().message;
  EXPECT_EQ(*up, "payload bytes");

  // (Both servers write the one access log.)
  auto file_requests = [&] {
    int n = 0;
    for (const auto& e : server.access_log()) n += e.uri == "/file.bin" ? 1 : 0;
    return n;
  };
  // nginx logs a request after the response is sent: wait for the four above.
  for (int i = 0; i < 20 && file_requests() < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int before = file_requests();
  ASSERT_EQ(before, 4) << "direct, stay, again and up each fetch /file.bin once";
  auto down = read_all(https + "/down");  // https -> http: refused
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, ErrorCode::kFetch);
  EXPECT_NE(down.error().message.find("refused a redirect from https"), std::string::npos) << down.error().message;
  // The redirect was not followed: no request for the file over http.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(file_requests(), before) << "a request followed the redirect";
}

// ---- encrypted bundles, SBOMs and security advisories, through the binaries ----

class EncryptedCli : public AgentCli {
 protected:
  void SetUp() override {
    AgentCli::SetUp();
    ASSERT_EQ(ota({"keygen", "--encryption", "-o", path("dev")}).exit_code, 0);
    ASSERT_EQ(ota({"keygen", "--encryption", "-o", path("other")}).exit_code, 0);
  }
  // The agent's config with a "decryption" section (null: none).
  void with_decryption(const nlohmann::json& d) {
    nlohmann::json c = nlohmann::json::parse(text_of(test::read_bytes(path("agent.json"))));
    if (d.is_null()) c.erase("decryption");
    else c["decryption"] = d;
    std::ofstream(path("agent.json")) << c.dump(2);
  }
};

TEST_F(EncryptedCli, KeysBuildVerifyInspectAndInstallWithTheKeyFromAFileOrACommand) {
  struct stat st {};
  ASSERT_EQ(::stat(path("dev.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  build("fw.otb", {"--encrypt-to", path("dev.pub"), "--encryption-block", "16384"});
  // Inspect names the recipients; the image is nowhere in clear.
  auto in = ota({"inspect", path("fw.otb"), "--json"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  auto doc = nlohmann::json::parse(in.out);
  ASSERT_TRUE(doc["manifest"]["encryption"].is_object());
  EXPECT_EQ(doc["manifest"]["encryption"]["block_size"], 16384);
  const auto dev_id = nlohmann::json::parse(ota({"inspect", path("fw.otb"), "--json"}).out)["manifest"]["encryption"]["recipients"][0];
  EXPECT_EQ(dev_id.get<std::string>().size(), 64u);
  for (const auto& p : doc["manifest"]["payloads"]) EXPECT_TRUE(p["plain"].is_object());
  const Bytes bundle = test::read_bytes(path("fw.otb"));
  EXPECT_EQ(std::search(bundle.begin(), bundle.end(), image_.begin() + 70'000, image_.begin() + 70'064), bundle.end());

  // verify: the ciphertext without the key; the plaintext with it; another key is exit 31.
  auto v = ota({"verify", path("fw.otb"), "--trust", path("root.json"), "--json"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(nlohmann::json::parse(v.out)["plaintext"]["checked"], false);
  v = ota({"verify", path("fw.otb"), "--trust", path("root.json"), "--decryption-key", path("dev.key"), "--json"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(nlohmann::json::parse(v.out)["plaintext"]["checked"], true);
  v = ota({"verify", path("fw.otb"), "--trust", path("root.json"), "--decryption-key", path("other.key")});
  EXPECT_EQ(v.exit_code, 31) << v.err;

  // The agent: no key, then a key the bundle is not for: exit 31, nothing written.
  auto r = agent({"install", "file://" + path("fw.otb")});
  EXPECT_EQ(r.exit_code, 31) << r.err;
  EXPECT_NE(r.err.find("no decryption key is configured"), std::string::npos) << r.err;
  with_decryption({{"key", path("other.key")}});
  r = agent({"install", "file://" + path("fw.otb")});
  EXPECT_EQ(r.exit_code, 31) << r.err;
  EXPECT_NE(r.err.find("not one of them"), std::string::npos) << r.err;
  EXPECT_EQ(bank_b_image(), Bytes(image_.size(), 0));
  // A key command that fails is exit 31 too, and says which.
  with_decryption({{"command", {"false"}}});
  r = agent({"install", "file://" + path("fw.otb")});
  EXPECT_EQ(r.exit_code, 31) << r.err;
  EXPECT_NE(r.err.find("decryption.command"), std::string::npos) << r.err;
  // The key printed by a command (a TPM or secure element's tool), then from its file.
  with_decryption({{"command", {"cat", path("dev.key")}}, {"timeout_s", 5}});
  r = agent({"install", "file://" + path("fw.otb"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["delta"], true);
  EXPECT_EQ(bank_b_image(), image_);
  EXPECT_EQ(r.err.find(text_of(test::read_bytes(path("dev.key"))).substr(0, 40)), std::string::npos);
}

TEST_F(EncryptedCli, DecryptionSettingsAreParsedStrictly) {
  build("fw.otb");
  for (const auto& bad : {nlohmann::json{{"key", path("dev.key")}, {"command", {"cat"}}}, nlohmann::json::object(),
                          nlohmann::json{{"key", 7}}, nlohmann::json{{"command", nlohmann::json::array()}},
                          nlohmann::json{{"key", path("dev.key")}, {"timeout_s", 0}},
                          nlohmann::json{{"key", path("dev.key")}, {"other", 1}}}) {
    with_decryption(bad);
    auto r = agent({"install", "file://" + path("fw.otb")});
    EXPECT_EQ(r.exit_code, 20) << bad.dump() << ": " << r.err;
    EXPECT_NE(r.err.find("decryption"), std::string::npos) << r.err;
  }
  // A plain bundle installs whatever key is configured.
  with_decryption({{"key", path("dev.key")}});
  ASSERT_EQ(agent({"install", "file://" + path("fw.otb")}).exit_code, 0);
}

TEST_F(EncryptedCli, AnSbomAndAnAdvisoryAreShownAndExtracted) {
  const std::string sbom = std::string(OTA_SOURCE_DIR) + "/tests/data/sbom/fw.spdx.json";
  build("fw.otb", {"--sbom", sbom, "--security-advisory", "Fixes a heap overflow in the TLS stack.", "--advisory-id",
                   "CVE-2026-1234", "--advisory-id", "DSA-5555-1", "--encrypt-to", path("dev.pub")});
  auto in = ota({"inspect", path("fw.otb"), "--json"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  auto doc = nlohmann::json::parse(in.out);
  EXPECT_EQ(doc["manifest"]["security"]["ids"], nlohmann::json({"CVE-2026-1234", "DSA-5555-1"}));
  EXPECT_EQ(doc["sbom"]["encrypted"], true) << "encrypted: the SBOM needs the key";
  in = ota({"inspect", path("fw.otb"), "--decryption-key", path("dev.key"), "--json"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  doc = nlohmann::json::parse(in.out);
  EXPECT_EQ(doc["sbom"]["format"], "spdx");
  EXPECT_EQ(doc["sbom"]["components"], 2);
  in = ota({"inspect", path("fw.otb"), "--decryption-key", path("dev.key")});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  EXPECT_NE(in.out.find("security update: CVE-2026-1234, DSA-5555-1"), std::string::npos) << in.out;
  EXPECT_NE(in.out.find("spdx SPDX-2.3 for board-fw-1.1.0, 2 components"), std::string::npos) << in.out;
  ASSERT_EQ(ota({"inspect", path("fw.otb"), "--decryption-key", path("dev.key"), "--sbom-out", path("out.json")}).exit_code, 0);
  EXPECT_EQ(test::read_bytes(path("out.json")), test::read_bytes(sbom));
  ASSERT_EQ(ota({"verify", path("fw.otb"), "--trust", path("root.json"), "-q"}).exit_code, 0);
  // The agent installs the image and never the SBOM.
  with_decryption({{"key", path("dev.key")}});
  auto r = agent({"install", "file://" + path("fw.otb"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(bank_b_image(), image_);
  // Refused at build time: a malformed SBOM (exit 20), an advisory without ids (exit 2), a bad id (exit 2).
  test::write_bytes(path("bad.json"), bytes_of("{\"spdxVersion\": \"SPDX-2.3\"}"));
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--sbom", path("bad.json"),
                "-q", "-o", path("x.otb")});
  EXPECT_EQ(b.exit_code, 20) << b.err;
  b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--security-advisory", "x",
           "-q", "-o", path("x.otb")});
  EXPECT_EQ(b.exit_code, 2) << b.err;
  b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--security-advisory", "x",
           "--advisory-id", "CVE-1", "-q", "-o", path("x.otb")});
  EXPECT_EQ(b.exit_code, 2) << b.err;
}

TEST_F(AgentHttp, AnEncryptedInstallCutOffAtHalfResumesWithoutRefetching) {
  ASSERT_EQ(ota({"keygen", "--encryption", "-o", path("dev")}).exit_code, 0);
  nlohmann::json c = nlohmann::json::parse(text_of(test::read_bytes(path("agent.json"))));
  c["decryption"] = {{"key", path("dev.key")}};
  std::ofstream(path("agent.json")) << c.dump(2);
  // A resume decrypts from its block's start: blocks as small as the chunks.
  cut_off_at_half_then_resume(905, {"--encrypt-to", path("dev.pub"), "--encryption-block", "4096"});
}

TEST(Help, EveryCommandHasAnExample) {
  const std::vector<std::vector<std::string>> commands = {
      {kOta}, {kOta, "diff"}, {kOta, "patch"}, {kOta, "keygen"}, {kOta, "root"}, {kOta, "root", "init"},
      {kOta, "root", "sign"}, {kOta, "root", "rotate"}, {kOta, "root", "verify"}, {kOta, "root", "show"},
      {kOta, "build"}, {kOta, "sign"}, {kOta, "verify"}, {kOta, "inspect"}, {kOta, "publish"}, {kOta, "campaign"},
      {kOta, "campaign", "run"}, {kOta, "campaign", "status"}, {kOta, "campaign", "pause"},
      {kOta, "campaign", "resume"}, {kOta, "campaign", "abort"}, {kOta, "device"}, {kOta, "device", "provision"}, {kAgent}, {kAgent, "install"}, {kAgent, "status"},
      {kAgent, "boot-check"}, {kAgent, "commit"}, {kAgent, "rollback"}, {kAgent, "simulate-boot"}, {kAgent, "run"}};
  for (auto argv : commands) {
    std::string name;
    for (const auto& a : argv) {
      if (!name.empty()) name.push_back(' ');
      name.append(a, a.find_last_of('/') + 1);
    }
    argv.push_back("--help");
    auto r = test::run_process(argv);
    EXPECT_EQ(r.exit_code, 0) << name << r.err;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << name << ":\n" << r.out;
  }
}

}  // namespace
}  // namespace ota
