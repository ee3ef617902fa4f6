// The campaign daemon (ota/device/daemon.hpp) on fakes: an in-process broker
// (tests/support/fake_mqtt.hpp), a bundle served from memory, simulated banks
// and state store under a PowerCut, and the bootloader simulator as the
// reboot. Each phase of the campaign table, the paths that used to brick or
// mistrust (a reboot that did not happen, a revocation after a restart, a
// replayed or stale control), and a power cut at every write of the daemon's
// own records, the agent's and the boot environment's.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <functional>
#include <thread>

#include "ota/device/agent.hpp"
#include "ota/release/bundle.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/device/daemon.hpp"
#include "ota/testing/memory_environment.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/device_sim.hpp"
#include "support/fake_mqtt.hpp"
#include "support/power_cuts.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

namespace cp = ota::campaign;
using boot::Slot;
using storage::LossMode;
using storage::PowerCut;
using namespace std::chrono_literals;

constexpr std::uint64_t kBankSize = 128 * 1024;
constexpr char kFleet[] = "meters";
constexpr char kDevice[] = "dev-1";
constexpr char kUrl[] = "mem://bundle.otb";

using test::CutEnvironment;
using test::prefix;

// A bundle served from memory, counting what was read.
class MemSource final : public fetch::SourceReader {
 public:
  explicit MemSource(const Bytes& b) : in_(b) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto n = in_.read(out);
    if (n) stats_.bytes_received += *n;
    return n;
  }
  Result<std::uint64_t> skip(std::uint64_t n) override { return in_.skip(n); }
  const fetch::Stats& stats() const override { return stats_; }

 private:
  MemoryReader in_;
  fetch::Stats stats_;
};

Bytes bank_with(const Bytes& image) { return test::bank_with(image, kBankSize); }

// What survives of a device between boots.
struct Disk {
  Bytes a, b;
  std::map<std::string, Bytes> records;
  boot::Vars env;
};

class DaemonTest : public testing::Test {
 protected:
  void SetUp() override {
    base_ = test::structured_bytes(40 * 1024, 700);
    image_ = test::with_insertion(test::with_random_edits(base_, 100, 701), 9'000, test::random_bytes(2000, 702));
    test::write_bytes(dir_.file("base.img"), base_);
    test::write_bytes(dir_.file("new.img"), image_);
    anchor_ = test::root_envelope(test::make_root(1, test::at("2100-01-01"), 1, keys_.ptrs({0})), keys_.ptrs({0}));
    const std::string text = trust::encode_envelope(anchor_);
    test::write_bytes(dir_.file("root.json"), Bytes(text.begin(), text.end()));
    bundle_ = make_bundle(0);
    disk_ = Disk{bank_with(base_), Bytes(kBankSize, 0), {}, {{"ota_slot", "a"}}};
  }

  Bytes make_bundle(std::size_t signer, std::optional<manifest::Security> security = {}) {
    auto o = test::small_bundle(dir_.file("new.img"), {dir_.file("base.img")}, "1.1.0", {"board"});
    o.security = std::move(security);
    return test::signed_bundle(o, keys_.ptrs({signer}), &manifest_hash_);
  }

  cp::Campaign campaign(const std::string& id = "c1") {
    cp::Campaign c;
    c.id = id;
    c.fleet = kFleet;
    c.revision = 1;
    c.created = now_ - 60;
    c.expires = now_ + 86400;
    c.manifest_hash = manifest_hash_;
    c.version = "1.1.0";
    c.hardware = {"board"};
    c.url = kUrl;
    c.bundle_size = bundle_.size();
    c.waves = {10000};
    c.controller = controller_.public_key();
    c.control_ttl_s = 900;
    return c;
  }

  cp::Control control(const cp::Campaign& c, std::uint64_t rev, cp::RunState s = cp::RunState::kRunning,
                      std::uint32_t wave = 0) {
    cp::Control k{c.id, c.revision, rev, wave, s, now_, "", 0};
    cp::stamp_control(c, k, now_);
    return k;
  }

  std::string document(const cp::Campaign& c, const cp::Control& k, std::vector<std::size_t> signers = {0},
                       std::vector<trust::Envelope> roots = {}) {
    trust::Envelope ce;
    ce.payload_type = std::string(cp::kCampaignType);
    ce.payload = cp::encode_campaign(c);
    std::vector<const keys::SecretKey*> s;
    for (auto i : signers) s.push_back(keys_.ptr(i));
    ce.signatures = test::sign_all(s, cp::kCampaignType, ce.payload);
    return cp::encode_document({ce, cp::sign_control(k, controller_), std::move(roots)});
  }

  void put(const std::string& id, const std::string& doc) {
    broker_.publish(mqtt::Message{cp::campaign_topic(kFleet, id), doc, 1, true, 0, {}});
  }

  // One boot of the device over disk_, under `power`.
  struct Device {
    Device(const Disk& d, PowerCut&& pc)
        : power(std::move(pc)), bank_a(d.a, power), bank_b(d.b, power), state(power, d.records), env(d.env, power) {}
    PowerCut power;
    storage::SimulatedBank bank_a, bank_b;
    storage::SimulatedStateStore state;
    CutEnvironment env;
    std::optional<trust::TrustStore> trust;
    Disk survivors() { return Disk{bank_a.survivors(), bank_b.survivors(), state.records(), env.vars()}; }
  };

  std::unique_ptr<Device> boot(PowerCut pc = PowerCut()) {
    auto d = std::make_unique<Device>(disk_, std::move(pc));
    auto t = agent::load_trust(d->state, dir_.file("root.json"));
    EXPECT_TRUE(t) << t.error().message;
    d->trust.emplace(std::move(*t));
    return d;
  }

  agent::Daemon daemon(Device& d) {
    agent::Device ad;
    ad.banks[0] = &d.bank_a;
    ad.banks[1] = &d.bank_b;
    ad.state = &d.state;
    ad.env = &d.env;
    ad.trust = &*d.trust;
    ad.hardware_id = "board";
    ad.now = [this] { return now_; };
    ad.health_check = [this] { return healthy_ ? ok() : fail(ErrorCode::kIo, "health check failed"); };
    ad.reboot = reboot_command_;
    agent::DaemonOptions o;
    o.device_id = kDevice;
    o.fleet = kFleet;
    o.retry_delay_s = 1;
    o.reboot_wait_s = 1;
    o.sync_interval = sync_interval_;
    o.policy_recheck_s = 1;
    o.policy_clock = [this] { return policy_now_ ? policy_now_.load() : now_; };
    o.check_condition = [this](const std::string& name) -> Result<std::optional<std::string>> {
      std::lock_guard<std::mutex> lock(conditions_mu_);
      auto it = conditions_.find(name);
      return it == conditions_.end() ? std::optional<std::string>{} : it->second;
    };
    o.stop = &stop_;
    o.security_updates_anytime = security_updates_anytime_;
    o.device_key = device_key_;
    o.counter = counter_;
    o.connect = [this](const mqtt::Options& mo) -> Result<std::unique_ptr<mqtt::Client>> { return broker_.connect(mo); };
    o.open_source = [this](const std::string& url, const fetch::Options&) -> Result<std::unique_ptr<fetch::SourceReader>> {
      ++opens_;
      if (url != kUrl) return fail(ErrorCode::kFetch, "no such bundle " + url);
      if (fetch_failures_ > 0) {
        --fetch_failures_;
        return fail(ErrorCode::kFetch, "connection refused");
      }
      return std::unique_ptr<fetch::SourceReader>(std::make_unique<MemSource>(bundle_));
    };
    return agent::Daemon(ad, d.state, o);
  }

  // One boot session: returns whether it asked for a reboot; stops it once
  // `until` holds (or after `limit`), as a SIGTERM would.
  Result<bool> session(agent::Daemon& d, const std::function<bool()>& until, std::chrono::milliseconds limit = 10s) {
    stop_ = false;
    std::atomic<bool> done{false};
    std::thread watch([&] {
      const auto end = std::chrono::steady_clock::now() + limit;
      while (!done && !(until && until()) && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(2ms);
      stop_ = true;
    });
    auto r = d.run_session();
    done = true;
    watch.join();
    return r;
  }

  // The bootloader starts the device: the slot it boots, the environment it leaves.
  Slot reboot() {
    boot::MemoryEnvironment env;
    env.vars = disk_.env;
    auto slot = boot::simulate_boot(env);
    EXPECT_TRUE(slot) << slot.error().message;
    disk_.env = env.vars;
    return slot ? *slot : Slot::kA;
  }

  // Where each cut point of an enumeration starts: a fresh broker holding
  // `doc` as c1, and the disk as `from`.
  void start_over(const std::string& doc, const Disk& from) {
    broker_.reset();
    put("c1", doc);
    disk_ = from;
  }

  std::vector<cp::Report> reports(const std::string& topic_kind = "events") {
    std::vector<cp::Report> out;
    for (const auto& m : broker_.log()) {
      if (m.topic != "ota/" + std::string(kFleet) + "/devices/" + kDevice + "/" + topic_kind) continue;
      if (auto r = cp::read_report_unverified(m.payload)) out.push_back(*r);
    }
    return out;
  }
  std::size_t count(cp::Phase p, const std::string& campaign_id = "c1") {
    std::set<std::uint64_t> seqs;  // a report sent again keeps its sequence number
    for (const auto& r : reports())
      if (r.phase == p && r.campaign == campaign_id) seqs.insert(r.seq);
    return seqs.size();
  }
  std::size_t rejections(ErrorCode code) {
    std::size_t n = 0;
    for (const auto& r : reports()) n += r.code == static_cast<int>(code) && r.reason.find("rejected") != std::string::npos;
    return n;
  }

  test::Keyring keys_{2};
  keys::SecretKey controller_ = test::test_key(9);
  test::TempDir dir_;
  Bytes base_, image_, bundle_;
  Digest manifest_hash_{};
  trust::Envelope anchor_;
  Disk disk_;
  test::FakeBroker broker_;
  trust::Time now_ = test::at("2026-06-01");
  volatile bool stop_ = false;
  bool healthy_ = true;
  bool security_updates_anytime_ = false;
  std::function<Status()> reboot_command_;  // the device's reboot; none by default
  int opens_ = 0;
  int fetch_failures_ = 0;
  // The rollout policy's clock (0: now_) and the device's condition checks (absent: go on).
  std::atomic<trust::Time> policy_now_{0};
  std::mutex conditions_mu_;
  std::map<std::string, std::optional<std::string>> conditions_;
  std::shared_ptr<const keys::SecretKey> device_key_;  // signs reports when set
  std::function<Result<std::uint64_t>()> counter_;      // health signals' counter; none by default
  std::chrono::milliseconds sync_interval_{10000};      // answers to sync requests
};

TEST_F(DaemonTest, EveryPhaseFromWaitingToSucceededAndTheUpdateHappensOnce) {
  const cp::Campaign c = [&] {
    auto x = campaign();
    x.waves = {1, 10000};  // dev-1's bucket is past 0.01 %: the second wave
    return x;
  }();
  ASSERT_EQ(cp::wave_of(c, kDevice), 1u);
  put("c1", document(c, control(c, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return count(cp::Phase::kWaiting) == 1; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 0) << "nothing is fetched before the wave opens";
  put("c1", document(c, control(c, 2, cp::RunState::kRunning, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r) << "asks for the reboot into the trial";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kDownloading), 1u);
  EXPECT_EQ(count(cp::Phase::kRebooting), 1u);
  EXPECT_EQ(prefix(disk_.a, base_.size()), base_) << "the running bank was written";
  ASSERT_EQ(reboot(), Slot::kB);
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return count(cp::Phase::kSucceeded) == 1; });
    ASSERT_TRUE(r) << r.error().message;
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kSucceeded), 1u);
  EXPECT_EQ(prefix(disk_.b, image_.size()), image_);
  EXPECT_EQ(disk_.env.at("upgrade_available"), "0");
  // Redelivered after the update: acted on once, never again.
  put("c1", document(c, control(c, 2, cp::RunState::kRunning, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    const int before = opens_;
    ASSERT_TRUE(session(d, nullptr, 500ms));
    EXPECT_EQ(opens_, before);
  }
  EXPECT_EQ(count(cp::Phase::kSucceeded), 1u);
}

// Paced: the wave is open, but the device starts only once the control's
// admit bound passes its position; a later control with the bound past it
// starts the install.
TEST_F(DaemonTest, APacedDeviceWaitsInItsOpenWaveUntilTheControlLetsItIn) {
  auto c = campaign();
  cp::Pace pace;
  pace.devices_per_minute = 10;
  pace.full_size = bundle_.size();
  c.pace = pace;
  const std::uint64_t pos = cp::position(c.id, kDevice);
  auto held = control(c, 1);
  held.admit = pos;  // everyone before it, not it
  put("c1", document(c, held));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return count(cp::Phase::kWaiting) == 1; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 0) << "nothing is fetched before the device is let in";
  bool said = false;
  for (const auto& rep : reports())
    said = said || (rep.phase == cp::Phase::kWaiting && rep.reason.find("paced") != std::string::npos);
  EXPECT_TRUE(said);
  auto in = control(c, 2);
  in.admit = pos + 1;
  put("c1", document(c, in));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r) << "let in: installs and asks for the reboot";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 1);
  EXPECT_EQ(count(cp::Phase::kRebooting), 1u);
}

// ---- The rollout policy (campaign::Policy), evaluated by the device ----

std::string last_reason(const std::vector<cp::Report>& rs, cp::Phase p) {
  std::string why;
  for (const auto& r : rs)
    if (r.phase == p) why = r.reason;
  return why;
}

TEST_F(DaemonTest, AnInstallWindowDefersTheDeviceUntilItOpensThenItInstalls) {
  auto c = campaign();
  cp::Policy pol;
  pol.windows = {*cp::parse_window("mon 02:00-03:00")};
  c.policy = pol;
  put("c1", document(c, control(c, 1)));
  const trust::Time mon_0100 = 1780275600;  // 2026-06-01T01:00:00Z, a Monday
  policy_now_ = mon_0100;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return count(cp::Phase::kDeferred) == 1; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 0) << "nothing is fetched outside the window";
  const std::string why = last_reason(reports(), cp::Phase::kDeferred);
  EXPECT_NE(why.find("outside the install windows (UTC)"), std::string::npos) << why;
  EXPECT_NE(why.find("2026-06-01T02:00:00Z"), std::string::npos) << why;
  EXPECT_TRUE(std::all_of(disk_.b.begin(), disk_.b.end(), [](std::uint8_t x) { return x == 0; }));
  // Started again, still outside: deferred, nothing fetched; the window
  // opens while it runs and the device installs without a new document.
  {
    auto dev = boot();
    auto d = daemon(*dev);
    std::thread opener([&] {
      std::this_thread::sleep_for(700ms);
      policy_now_ = mon_0100 + 3600 + 30;
    });
    auto r = session(d, nullptr);
    opener.join();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r) << "installed in the window: asks for the reboot";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 1);
  EXPECT_EQ(count(cp::Phase::kRebooting), 1u);
}

// A security update (the manifest's advisory, copied into the campaign) on a
// device configured with rollout.security_updates "anytime": the windows do
// not hold it. Without the setting it waits for the window like any other;
// a campaign that claims an advisory its bundle's manifest does not carry is
// refused.
TEST_F(DaemonTest, ASecurityUpdateIsNotHeldByTheWindowsWhenTheDeviceTakesThemAnytime) {
  const manifest::Security sec{"Fixes a heap overflow.", {"CVE-2026-1234"}};
  bundle_ = make_bundle(0, sec);
  auto c = campaign();
  cp::Policy pol;
  pol.windows = {*cp::parse_window("mon 02:00-03:00")};
  c.policy = pol;
  c.advisory = sec;
  put("c1", document(c, control(c, 1)));
  policy_now_ = 1780275600;  // 2026-06-01T01:00:00Z, outside the window
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return count(cp::Phase::kDeferred) == 1; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r);
  }
  EXPECT_EQ(opens_, 0) << "without the setting a security update waits for the window";
  security_updates_anytime_ = true;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r) << "installed outside the window: asks for the reboot";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 1);
  EXPECT_EQ(prefix(disk_.b, image_.size()), image_);
}

TEST_F(DaemonTest, ACampaignClaimingAnAdvisoryItsManifestLacksIsRefused) {
  security_updates_anytime_ = true;
  auto c = campaign();  // bundle_ has no security field
  cp::Policy pol;
  pol.windows = {*cp::parse_window("mon 02:00-03:00")};
  c.policy = pol;
  c.advisory = manifest::Security{"Not true.", {"CVE-2026-9999"}};
  put("c1", document(c, control(c, 1)));
  policy_now_ = 1780275600;
  auto dev = boot();
  auto d = daemon(*dev);
  auto r = session(d, [&] { return count(cp::Phase::kFailed) >= 1; });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(*r);
  const std::string why = last_reason(reports(), cp::Phase::kFailed);
  EXPECT_NE(why.find("disagree on the security advisory"), std::string::npos) << why;
  const Bytes b = dev->bank_b.survivors();  // one copy: begin() and end() of the same bytes
  EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; }));
}

TEST_F(DaemonTest, DownloadEarlyWritesTheImageNowAndSwitchesBanksOnlyInTheWindow) {
  auto c = campaign();
  cp::Policy pol;
  pol.windows = {*cp::parse_window("mon 02:00-03:00")};
  pol.download_early = true;
  c.policy = pol;
  put("c1", document(c, control(c, 1)));
  const trust::Time mon_0100 = 1780275600;
  policy_now_ = mon_0100;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return last_reason(reports(), cp::Phase::kDeferred).find("written") != std::string::npos; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r) << "no reboot outside the window";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 1);
  EXPECT_EQ(prefix(disk_.b, image_.size()), image_) << "written and verified early";
  EXPECT_NE(disk_.env.count("upgrade_available") ? disk_.env.at("upgrade_available") : "0", "1") << "no trial begun";
  EXPECT_EQ(reboot(), Slot::kA) << "the bootloader still boots the old slot";
  // Restarted outside the window: still held, nothing fetched again.
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, nullptr, 1500ms));
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 1);
  // In the window: the bank is checked again and the trial begins.
  policy_now_ = mon_0100 + 3600;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kRebooting), 1u);
  ASSERT_EQ(reboot(), Slot::kB);
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kSucceeded) == 1; }));
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kSucceeded), 1u);
}

TEST_F(DaemonTest, AStartDelayIsDrawnOnceAndAConditionDefersUntilItClears) {
  auto c = campaign();
  cp::Policy pol;
  pol.start_delay_s = 600;
  pol.defer_on = {"busy", "metered"};
  c.policy = pol;
  put("c1", document(c, control(c, 1)));
  const trust::Time t0 = now_;
  std::string first;
  for (int boot_no = 0; boot_no < 2; ++boot_no) {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kDeferred) == static_cast<std::size_t>(boot_no + 1); }));
    disk_ = dev->survivors();
    const std::string why = last_reason(reports(), cp::Phase::kDeferred);
    EXPECT_NE(why.find("start delay until"), std::string::npos) << why;
    if (boot_no == 0) first = why;
    else EXPECT_EQ(why, first) << "the delay is drawn once and kept across restarts";
  }
  EXPECT_EQ(opens_, 0);
  // Past the delay, a condition holds ("metered" is not configured on this device: not checked).
  policy_now_ = t0 + 601;
  {
    std::lock_guard<std::mutex> lock(conditions_mu_);
    conditions_["busy"] = std::string("exited with status 1");
  }
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return last_reason(reports(), cp::Phase::kDeferred).find("condition busy") != std::string::npos; }));
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 0);
  // The condition clears while the daemon runs: it installs.
  {
    auto dev = boot();
    auto d = daemon(*dev);
    std::thread clear([&] {
      std::this_thread::sleep_for(700ms);
      std::lock_guard<std::mutex> lock(conditions_mu_);
      conditions_.erase("busy");
    });
    auto r = session(d, nullptr);
    clear.join();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 1);
}

TEST_F(DaemonTest, ABundleOlderThanThePolicysMaximumAgeIsSkippedAndNothingIsWritten) {
  auto c = campaign();
  cp::Policy pol;
  pol.max_age_s = 86400;
  c.policy = pol;
  put("c1", document(c, control(c, 1)));
  policy_now_ = test::at("2099-01-01");
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kSkipped) == 1; }));
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kSkipped), 1u);
  EXPECT_NE(last_reason(reports(), cp::Phase::kSkipped).find("maximum age"), std::string::npos);
  EXPECT_TRUE(std::all_of(disk_.b.begin(), disk_.b.end(), [](std::uint8_t x) { return x == 0; }));
}

TEST_F(DaemonTest, WithADeviceKeyEveryReportIsSignedWithAReceiptAndNoNumberIsSignedTwice) {
  device_key_ = std::make_shared<const keys::SecretKey>(test::test_key(21));
  auto c = campaign();
  c.waves = {10000};
  put("c1", document(c, control(c, 1)));
  for (int boot_no = 0; boot_no < 3; ++boot_no) {
    auto dev = boot();
    auto d = daemon(*dev);
    // A junk document each session: a rejection event, never kept in the outbox.
    put("junk", "{\"junk\":" + std::to_string(boot_no) + "}");
    auto r = session(d, [&] { return count(cp::Phase::kSucceeded) == 1; }, boot_no == 0 ? 10s : 2s);
    ASSERT_TRUE(r) << r.error().message;
    disk_ = dev->survivors();
    if (*r) {
      ASSERT_EQ(reboot(), Slot::kB);
    }
  }
  ASSERT_EQ(count(cp::Phase::kSucceeded), 1u);
  cp::Registry reg;
  reg.fleet = kFleet;
  reg.devices[kDevice] = device_key_->public_key();
  std::map<std::uint64_t, std::string> by_seq;
  std::size_t n = 0;
  for (const auto& m : broker_.log()) {
    if (m.topic.find("/devices/") == std::string::npos || m.topic.find("availability") != std::string::npos) continue;
    // Every report verifies against the registered key.
    auto j = cp::judge_report(reg, c, kDevice, m.payload, {});
    ASSERT_TRUE(j.drop == cp::Drop::kNone || j.drop == cp::Drop::kOtherCampaign) << cp::drop_name(j.drop) << ": " << j.why;
    ++n;
    // A number sent twice is the same report sent again, never another one.
    auto [it, fresh] = by_seq.emplace(j.report.seq, cp::encode_report(j.report));
    if (!fresh) {
      EXPECT_EQ(it->second, cp::encode_report(j.report)) << "sequence number " << j.report.seq << " signed twice";
    }
    if (j.report.phase == cp::Phase::kSucceeded) {
      EXPECT_EQ(j.report.slot, "b");
      ASSERT_TRUE(j.report.image_hash);
      EXPECT_EQ(*j.report.image_hash, content_hash(image_));
      EXPECT_EQ(j.report.version, c.version);
    }
  }
  EXPECT_GE(n, 6u);
}

TEST_F(DaemonTest, ARebootThatDidNotHappenCommitsNothingAndIsAskedForAgain) {
  const cp::Campaign c = campaign();
  put("c1", document(c, control(c, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r && *r);
    disk_ = dev->survivors();
  }
  // The reboot command failed (or returned early): the daemon starts again on slot a.
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r) << "asks for the reboot again";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kSucceeded), 0u) << "committed a trial that never booted";
  std::size_t not_booted = 0;
  for (const auto& r : reports()) not_booted += r.code == static_cast<int>(ErrorCode::kTrialNotBooted);
  EXPECT_GE(not_booted, 1u);
  EXPECT_EQ(disk_.env.at("upgrade_available"), "1") << "the trial must stay pending";
  EXPECT_EQ(prefix(disk_.a, base_.size()), base_);
  // Now it boots: the trial is judged and committed.
  ASSERT_EQ(reboot(), Slot::kB);
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kSucceeded) == 1; }));
  }
  EXPECT_EQ(count(cp::Phase::kSucceeded), 1u);
}

// run() with a reboot command: one that fails, one that returns without
// rebooting, and none at all each end the run with reboot_pending (44) and
// leave the trial pending for the next start.
TEST_F(DaemonTest, RunEndsWithRebootPendingWhenTheRebootDoesNotHappen) {
  const cp::Campaign c = campaign();
  put("c1", document(c, control(c, 1)));
  int calls = 0;
  const std::vector<std::pair<std::string, std::function<Status()>>> commands{
      {"fails", [&] { ++calls; return fail(ErrorCode::kIo, "reboot exited with status 1"); }},
      {"returns", [&] { ++calls; return ok(); }},
      {"none", nullptr}};
  for (const auto& [what, command] : commands) {
    SCOPED_TRACE(what);
    reboot_command_ = command;
    auto dev = boot();
    auto d = daemon(*dev);
    stop_ = false;
    auto st = d.run();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kRebootPending) << st.error().message;
    disk_ = dev->survivors();
    EXPECT_EQ(disk_.env.at("upgrade_available"), "1") << "the trial must stay pending";
    EXPECT_EQ(prefix(disk_.a, base_.size()), base_);
  }
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(count(cp::Phase::kSucceeded), 0u);
  EXPECT_EQ(count(cp::Phase::kDownloading), 1u) << "installed once, then only asked for the reboot";
  ASSERT_EQ(reboot(), Slot::kB);
  auto dev = boot();
  auto d = daemon(*dev);
  ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kSucceeded) == 1; }));
  EXPECT_EQ(count(cp::Phase::kSucceeded), 1u);
}

TEST_F(DaemonTest, AFailedHealthCheckRollsBackAndRebootsIntoTheOldSlot) {
  const cp::Campaign c = campaign();
  put("c1", document(c, control(c, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, nullptr));
    disk_ = dev->survivors();
  }
  ASSERT_EQ(reboot(), Slot::kB);
  healthy_ = false;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r) << "reboots into the old slot";
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kRolledBack), 1u);
  EXPECT_EQ(disk_.env.at("ota_slot"), "a");
}

TEST_F(DaemonTest, ARevocationCarriedByACampaignSurvivesARestart) {
  // Root v2 revokes key 0 and trusts key 1; it comes with campaign c1 (signed by key 1).
  const auto v2 = test::root_envelope(
      test::make_root(2, test::at("2100-01-01"), 1, keys_.ptrs({1}), {keys_.id(0)}), keys_.ptrs({0, 1}));
  cp::Campaign c1 = campaign("c1");
  c1.hardware = {"other-board"};  // nothing to install: only the root matters here
  put("c1", document(c1, control(c1, 1), {1}, {v2}));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kSkipped) == 1; }));
    EXPECT_EQ(dev->trust->root().version, 2u);
    disk_ = dev->survivors();
  }
  ASSERT_TRUE(disk_.records.count(agent::kTrustRecord)) << "the root update was not saved";
  // After a restart the device still knows: a campaign signed by the revoked key is refused.
  const cp::Campaign c2 = campaign("c2");
  put("c2", document(c2, control(c2, 1), {0}));
  {
    auto dev = boot();
    EXPECT_EQ(dev->trust->root().version, 2u);
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return rejections(ErrorCode::kKeyRevoked) >= 1; }, 3s));
    disk_ = dev->survivors();
  }
  EXPECT_GE(rejections(ErrorCode::kKeyRevoked), 1u);
  EXPECT_EQ(opens_, 0) << "the revoked key's campaign fetched a bundle";
  EXPECT_EQ(disk_.b, Bytes(kBankSize, 0));
}

TEST_F(DaemonTest, StaleOrReplayedControlInstallsNothing) {
  const cp::Campaign c = campaign();
  // Expired running control (the controller stopped signing it).
  cp::Control old = control(c, 1);
  old.issued = now_ - 2000;
  old.expires = now_ - 1000;
  put("c1", document(c, old));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return rejections(ErrorCode::kStaleCampaign) >= 1; }, 3s));
    disk_ = dev->survivors();
  }
  EXPECT_GE(rejections(ErrorCode::kStaleCampaign), 1u);
  EXPECT_EQ(opens_, 0);
  // Running control valid longer than the campaign allows.
  cp::Control longer = control(c, 1);
  longer.expires = now_ + 100000;
  put("c1", document(c, longer));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return rejections(ErrorCode::kStaleCampaign) >= 2; }, 3s));
  }
  EXPECT_EQ(opens_, 0);
  // The abort (revision 2), then a replay of the fresh running revision 1 after a restart.
  put("c1", document(c, control(c, 2, cp::RunState::kAborted)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kAborted) == 1; }));
    disk_ = dev->survivors();
  }
  put("c1", document(c, control(c, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, [&] { return rejections(ErrorCode::kStaleCampaign) >= 3; }, 3s));
    disk_ = dev->survivors();
  }
  EXPECT_EQ(opens_, 0) << "a replayed running document was acted on after an abort";
  EXPECT_EQ(disk_.b, Bytes(kBankSize, 0));
}

TEST_F(DaemonTest, RejectedDocumentsAreNeverWrittenToDisk) {
  auto dev = boot();
  auto d = daemon(*dev);
  std::uint64_t writes_before = 0;
  std::thread junk([&] {
    std::this_thread::sleep_for(300ms);
    writes_before = dev->power.writes();
    for (int i = 0; i < 50; ++i) put("c1", "{\"junk\":" + std::to_string(i) + "}");
    for (int i = 0; i < 50; ++i) put("c1", "{\"junk\":1}");
  });
  ASSERT_TRUE(session(d, [&] { return rejections(ErrorCode::kMalformed) >= 50; }, 5s));
  junk.join();
  EXPECT_EQ(rejections(ErrorCode::kMalformed), 50u) << "each distinct document is reported once";
  EXPECT_EQ(dev->power.writes(), writes_before) << "junk on the broker wrote to flash";
}

TEST_F(DaemonTest, AFailedDownloadRetriesOnTheNewestControlAndHonoursAPause) {
  const cp::Campaign c = campaign();
  fetch_failures_ = 1;
  put("c1", document(c, control(c, 1)));
  auto dev = boot();
  auto d = daemon(*dev);
  std::thread pauser([&] {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (opens_ < 1 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
    put("c1", document(c, control(c, 2, cp::RunState::kPaused)));  // before the retry is due
  });
  auto r = session(d, nullptr, 2500ms);  // the retry is due after 1 s
  pauser.join();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(*r) << "installed under a pause";
  EXPECT_EQ(opens_, 1) << "the pending retry went ahead under the pause";
  // Resumed: the retry installs.
  put("c1", document(c, control(c, 3)));
  auto r2 = session(d, nullptr, 5s);
  ASSERT_TRUE(r2) << r2.error().message;
  EXPECT_TRUE(*r2);
  EXPECT_EQ(count(cp::Phase::kRebooting), 1u);
}

// ---- power cuts: the daemon's records, the outbox, the agent and the environment ----

class DaemonPowerCut : public DaemonTest {
 protected:
  // Runs the device from disk_ through the whole campaign, booting again
  // after every session, with power cut at write n of the first boot.
  // Returns the number of writes the first boot made.
  std::uint64_t run(std::uint64_t n, LossMode mode, std::uint64_t seed) {
    std::uint64_t first_writes = 0;
    for (int boot_no = 0; boot_no < 8; ++boot_no) {
      auto dev = boot(boot_no == 0 ? PowerCut(n, mode, seed) : PowerCut());
      auto d = daemon(*dev);
      auto r = session(d, [&] { return dev->power.cut() || count(cp::Phase::kSucceeded) >= 1; }, 5s);
      if (boot_no == 0) first_writes = dev->power.writes();
      disk_ = dev->survivors();
      if (!dev->power.cut() && r && !*r && count(cp::Phase::kSucceeded) >= 1) break;
      EXPECT_EQ(prefix(disk_.a, base_.size()), base_) << "boot " << boot_no << ": the running bank changed";
      // The reboot (after a cut or after the daemon asked for it).
      if (reboot() == Slot::kB) {
        EXPECT_EQ(prefix(disk_.b, image_.size()), image_) << "booted an unverified bank";
      }
    }
    return first_writes;
  }

  // The device ended updated and reported once: one success, no failure or
  // roll-back, bank b holds the image and boots committed.
  void expect_updated_once(const std::string& where) {
    EXPECT_EQ(count(cp::Phase::kSucceeded), 1u) << where;
    EXPECT_EQ(count(cp::Phase::kFailed) + count(cp::Phase::kRolledBack), 0u) << where;
    EXPECT_EQ(prefix(disk_.b, image_.size()), image_) << where;
    EXPECT_EQ(disk_.env.at("ota_slot"), "b") << where;
    EXPECT_EQ(disk_.env.at("upgrade_available"), "0") << where;
  }
};

// Download early, cut at every write of the early download: outside the
// window the device never asks for a reboot and the old slot always boots;
// it ends with the image held written, and in the window it updates once.
TEST_F(DaemonPowerCut, DownloadEarlyCutAtEveryWriteNeverSwitchesOutsideTheWindowAndEndsUpdatedOnce) {
  auto c = campaign();
  cp::Policy pol;
  pol.windows = {*cp::parse_window("mon 02:00-03:00")};
  pol.download_early = true;
  c.policy = pol;
  const std::string doc = document(c, control(c, 1));
  const trust::Time mon_0100 = 1780275600;  // a Monday, an hour before the window
  auto held = [&] { return last_reason(reports(), cp::Phase::kDeferred).find("written") != std::string::npos; };
  auto early = [&](std::uint64_t n, LossMode mode, std::uint64_t seed) {
    policy_now_ = mon_0100;
    std::uint64_t first = 0;
    for (int boot_no = 0; boot_no < 6; ++boot_no) {
      auto dev = boot(boot_no == 0 ? PowerCut(n, mode, seed) : PowerCut());
      auto d = daemon(*dev);
      auto r = session(d, [&] { return dev->power.cut() || held(); }, 5s);
      if (boot_no == 0) first = dev->power.writes();
      disk_ = dev->survivors();
      EXPECT_FALSE(r && *r) << "boot " << boot_no << ": a reboot asked outside the window";
      EXPECT_EQ(prefix(disk_.a, base_.size()), base_) << "boot " << boot_no << ": the running bank changed";
      EXPECT_EQ(reboot(), Slot::kA) << "boot " << boot_no << ": outside the window the old slot boots";
      if (!dev->power.cut() && held()) break;
    }
    return first;
  };
  put("c1", doc);
  const Disk start = disk_;
  const std::uint64_t total = early(0, LossMode::kDropUnsynced, 1);
  ASSERT_TRUE(held());
  ASSERT_GT(total, 5u);
  RecordProperty("writes_of_an_early_download", static_cast<int>(total));
  test::for_each_cut(total, [&](const test::Cut& cut) {
    start_over(doc, start);
    early(cut.n, cut.mode, cut.n * 7919);
    EXPECT_TRUE(held()) << cut.where;
    // The window opens: the held image is checked and switched to, once.
    policy_now_ = mon_0100 + 3600;
    run(0, LossMode::kDropUnsynced, 1);
    EXPECT_EQ(count(cp::Phase::kSucceeded), 1u) << cut.where;
    EXPECT_EQ(prefix(disk_.b, image_.size()), image_) << cut.where;
    EXPECT_EQ(disk_.env.at("ota_slot"), "b") << cut.where;
  });
}

TEST_F(DaemonPowerCut, EveryWriteInThreeLossModesEndsUpdatedOnceAndReportedOnce) {
  const cp::Campaign c = campaign();
  const std::string doc = document(c, control(c, 1));
  put("c1", doc);
  const Disk start = disk_;
  const std::uint64_t total = run(0, LossMode::kDropUnsynced, 1);
  ASSERT_EQ(count(cp::Phase::kSucceeded), 1u);
  ASSERT_GT(total, 10u);
  RecordProperty("writes_of_a_campaign_boot", static_cast<int>(total));
  test::for_each_cut(total, [&](const test::Cut& cut) {
    start_over(doc, start);
    run(cut.n, cut.mode, cut.n * 7919);
    expect_updated_once(cut.where);
    EXPECT_EQ(prefix(disk_.a, base_.size()), base_) << cut.where;
  });
}

// A kill (no reboot follows: systemd restarts the daemon on the same boot) at
// every write of the installing boot: the restarted daemon must not take a
// trial it began for a failed install (DeviceSafety.KilledAtRandomPoints...
// once reported failed after a kill between the agent's trial record and the
// daemon's "rebooting").
TEST_F(DaemonPowerCut, AKillAtEveryWriteThenARestartWithoutRebootEndsUpdatedOnce) {
  const cp::Campaign c = campaign();
  const std::string doc = document(c, control(c, 1));
  put("c1", doc);
  const Disk start = disk_;
  const std::uint64_t total = run(0, LossMode::kDropUnsynced, 1);
  ASSERT_EQ(count(cp::Phase::kSucceeded), 1u);
  test::for_each_cut(total, {LossMode::kDropUnsynced}, [&](const test::Cut& cut) {
    start_over(doc, start);
    {
      auto dev = boot(PowerCut(cut.n, cut.mode, cut.n));
      auto d = daemon(*dev);
      (void)session(d, [&] { return dev->power.cut(); }, 5s);
      disk_ = dev->survivors();
    }
    // Restarted on the same boot (no simulate_boot), then as run() goes on.
    run(0, LossMode::kDropUnsynced, 1);
    expect_updated_once("killed at write " + std::to_string(cut.n) + " of " + std::to_string(total));
  });
}

// ---- revert on abort ----

class DaemonRevert : public DaemonTest {
 protected:
  cp::Campaign revert_campaign() {
    auto c = campaign();
    c.revert_on_abort = true;
    return c;
  }
  // Installs and commits c (two boots): succeeded, bank b runs.
  void install_and_commit(const cp::Campaign& c) {
    put(c.id, document(c, control(c, 1)));
    {
      auto dev = boot();
      auto d = daemon(*dev);
      ASSERT_TRUE(session(d, nullptr));
      disk_ = dev->survivors();
    }
    ASSERT_EQ(reboot(), Slot::kB);
    {
      auto dev = boot();
      auto d = daemon(*dev);
      ASSERT_TRUE(session(d, [&] { return count(cp::Phase::kSucceeded) == 1; }));
      disk_ = dev->survivors();
    }
    ASSERT_EQ(count(cp::Phase::kSucceeded), 1u);
  }
  // One boot session on disk_; returns whether it asked for a reboot.
  bool one_session(const std::function<bool()>& until, std::chrono::milliseconds limit = 10s) {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, until, limit);
    EXPECT_TRUE(r) << r.error().message;
    disk_ = dev->survivors();
    return r && *r;
  }
  const cp::Report* last(cp::Phase p) {
    reports_ = reports();
    for (auto it = reports_.rbegin(); it != reports_.rend(); ++it)
      if (it->phase == p) return &*it;
    return nullptr;
  }
  std::vector<cp::Report> reports_;
};

TEST_F(DaemonRevert, AnAbortAfterTheCommitRevertsOnceAndAReplayedAbortDoesNothing) {
  const cp::Campaign c = revert_campaign();
  install_and_commit(c);
  ASSERT_FALSE(HasFatalFailure());
  const std::string abort_doc = document(c, control(c, 2, cp::RunState::kAborted));
  put("c1", abort_doc);
  EXPECT_TRUE(one_session(nullptr)) << "asks for the reboot into the previous image";
  EXPECT_EQ(count(cp::Phase::kReverting), 1u);
  EXPECT_EQ(disk_.env.at("ota_slot"), "a");
  EXPECT_EQ(disk_.env.at("upgrade_available"), "1");
  ASSERT_EQ(reboot(), Slot::kA);
  EXPECT_FALSE(one_session([&] { return count(cp::Phase::kReverted) == 1; }));
  ASSERT_EQ(count(cp::Phase::kReverted), 1u);
  const cp::Report* r = last(cp::Phase::kReverted);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->slot, "a");
  EXPECT_EQ(r->version, "");  // the factory image
  EXPECT_EQ(disk_.env.at("ota_slot"), "a");
  EXPECT_EQ(disk_.env.at("upgrade_available"), "0");
  EXPECT_EQ(prefix(disk_.a, base_.size()), base_);
  // The same abort again (a redelivery, a replay after a reboot): nothing more.
  put("c1", abort_doc);
  EXPECT_FALSE(one_session(nullptr, 700ms));
  EXPECT_EQ(count(cp::Phase::kReverting), 1u);
  EXPECT_EQ(count(cp::Phase::kReverted), 1u);
  EXPECT_EQ(disk_.env.at("ota_slot"), "a");
  EXPECT_EQ(disk_.env.at("upgrade_available"), "0");
}

TEST_F(DaemonRevert, WithoutRevertOnAbortAnAbortAfterTheCommitKeepsTheNewImage) {
  const cp::Campaign c = campaign();
  install_and_commit(c);
  ASSERT_FALSE(HasFatalFailure());
  put("c1", document(c, control(c, 2, cp::RunState::kAborted)));
  EXPECT_FALSE(one_session(nullptr, 700ms));
  EXPECT_EQ(count(cp::Phase::kReverting) + count(cp::Phase::kRevertFailed) + count(cp::Phase::kAborted), 0u);
  EXPECT_EQ(disk_.env.at("ota_slot"), "b");
}

TEST_F(DaemonRevert, APreviousBankThatNoLongerVerifiesIsReportedAndTheNewImageStays) {
  const cp::Campaign c = revert_campaign();
  install_and_commit(c);
  ASSERT_FALSE(HasFatalFailure());
  disk_.a[100] ^= 0xFF;  // bank a overwritten since the install
  put("c1", document(c, control(c, 2, cp::RunState::kAborted)));
  EXPECT_FALSE(one_session([&] { return count(cp::Phase::kRevertFailed) == 1; }));
  ASSERT_EQ(count(cp::Phase::kRevertFailed), 1u);
  EXPECT_EQ(count(cp::Phase::kReverting), 0u);
  const cp::Report* r = last(cp::Phase::kRevertFailed);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->code, static_cast<int>(ErrorCode::kPayloadMismatch));
  EXPECT_NE(r->reason.find("no longer holds"), std::string::npos) << r->reason;
  EXPECT_EQ(r->version, "1.1.0");
  EXPECT_EQ(disk_.env.at("ota_slot"), "b");
  EXPECT_EQ(disk_.env.at("upgrade_available"), "0");
}

TEST_F(DaemonRevert, APreviousImageFailingItsHealthCheckRebootsIntoTheNewImage) {
  const cp::Campaign c = revert_campaign();
  install_and_commit(c);
  ASSERT_FALSE(HasFatalFailure());
  put("c1", document(c, control(c, 2, cp::RunState::kAborted)));
  EXPECT_TRUE(one_session(nullptr));
  ASSERT_EQ(reboot(), Slot::kA);
  healthy_ = false;
  EXPECT_TRUE(one_session(nullptr)) << "reboots into the new image";
  EXPECT_EQ(count(cp::Phase::kRevertFailed), 1u);
  const cp::Report* r = last(cp::Phase::kRevertFailed);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->code, static_cast<int>(ErrorCode::kRolledBack));
  EXPECT_NE(r->reason.find("health check failed"), std::string::npos) << r->reason;
  ASSERT_EQ(reboot(), Slot::kB);
  EXPECT_EQ(disk_.env.at("upgrade_available"), "0");
  EXPECT_EQ(prefix(disk_.b, image_.size()), image_);
  healthy_ = true;
  EXPECT_FALSE(one_session(nullptr, 700ms));
  EXPECT_EQ(count(cp::Phase::kRevertFailed), 1u) << "said once";
  EXPECT_EQ(count(cp::Phase::kReverting), 1u) << "tried once";
}

TEST_F(DaemonRevert, AnotherCampaignBeingInstalledIsLeftAloneAndTheRevertRefused) {
  const cp::Campaign c = revert_campaign();
  install_and_commit(c);
  ASSERT_FALSE(HasFatalFailure());
  // Campaign c2 (a newer version) is in progress: its download keeps failing.
  cp::Campaign c2 = campaign("c2");
  c2.version = "1.2.0";
  fetch_failures_ = 1000;
  put("c2", document(c2, control(c2, 1)));
  EXPECT_FALSE(one_session([&] { return count(cp::Phase::kDownloading, "c2") >= 1; }));
  put("c1", document(c, control(c, 2, cp::RunState::kAborted)));
  EXPECT_FALSE(one_session([&] { return count(cp::Phase::kRevertFailed) == 1; }));
  ASSERT_EQ(count(cp::Phase::kRevertFailed), 1u);
  EXPECT_EQ(count(cp::Phase::kReverting), 0u);
  const cp::Report* r = last(cp::Phase::kRevertFailed);
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r->reason.find("campaign c2 is being installed"), std::string::npos) << r->reason;
  EXPECT_EQ(disk_.env.at("ota_slot"), "b");
  EXPECT_EQ(disk_.env.at("upgrade_available"), "0");
  // c2's record is still the one in progress (its retry goes on).
  const Bytes& records = disk_.records.at("campaigns.json");
  EXPECT_NE(std::string(records.begin(), records.end()).find("\"current\":\"c2\""), std::string::npos);
}

// A power cut at every write of the boot that reverts (the daemon's record,
// the agent's record, the environment, the outbox), three loss modes: every
// boot finds a verified image, and the device ends reverted, reported once.
TEST_F(DaemonRevert, PowerCutAtEveryWriteOfTheRevertEndsRevertedOnce) {
  const cp::Campaign c = revert_campaign();
  install_and_commit(c);
  ASSERT_FALSE(HasFatalFailure());
  const std::string abort_doc = document(c, control(c, 2, cp::RunState::kAborted));
  const Disk committed = disk_;
  auto run = [&](std::uint64_t n, LossMode mode, std::uint64_t seed) {
    std::uint64_t first_writes = 0;
    for (int boot_no = 0; boot_no < 8; ++boot_no) {
      auto dev = boot(boot_no == 0 ? PowerCut(n, mode, seed) : PowerCut());
      auto d = daemon(*dev);
      auto r = session(d, [&] { return dev->power.cut() || count(cp::Phase::kReverted) >= 1; }, 5s);
      if (boot_no == 0) first_writes = dev->power.writes();
      disk_ = dev->survivors();
      if (!dev->power.cut() && r && !*r && count(cp::Phase::kReverted) >= 1) break;
      const Slot s = reboot();
      if (s == Slot::kA) {
        EXPECT_EQ(prefix(disk_.a, base_.size()), base_) << "booted an unverified bank a";
      } else {
        EXPECT_EQ(prefix(disk_.b, image_.size()), image_) << "booted an unverified bank b";
      }
    }
    return first_writes;
  };
  broker_.reset();
  put("c1", abort_doc);
  const std::uint64_t total = run(0, LossMode::kDropUnsynced, 1);
  ASSERT_EQ(count(cp::Phase::kReverted), 1u);
  ASSERT_GE(total, 4u);
  RecordProperty("writes_of_a_reverting_boot", static_cast<int>(total));
  test::for_each_cut(total, [&](const test::Cut& cut) {
    start_over(abort_doc, committed);
    run(cut.n, cut.mode, cut.n * 7919);
    EXPECT_EQ(count(cp::Phase::kReverted), 1u) << cut.where;
    EXPECT_EQ(count(cp::Phase::kRevertFailed), 0u) << cut.where;
    EXPECT_EQ(prefix(disk_.a, base_.size()), base_) << cut.where;
    EXPECT_EQ(disk_.env.at("ota_slot"), "a") << cut.where;
    EXPECT_EQ(disk_.env.at("upgrade_available"), "0") << cut.where;
  });
}

// ---- Health signals (regression campaigns) ----

// The last report of `phase` carrying signals, if any.
std::optional<cp::Signals> last_signals(const std::vector<cp::Report>& rs, cp::Phase phase) {
  std::optional<cp::Signals> s;
  for (const auto& r : rs)
    if (r.phase == phase && r.signals) s = r.signals;
  return s;
}

cp::Regression fast_regression() {
  cp::Regression g;
  g.observe_s = 3600;
  g.interval_s = 1;
  g.min_sample = 1;
  return g;
}

// After the commit the device observes: every interval the health check and
// the counter, reported with the succeeded phase; a restart in the middle
// of the observation is an unexpected reboot, and the counts survive it.
TEST_F(DaemonTest, ACommittedDeviceReportsHealthSignalsDurablyAcrossARestart) {
  auto c = campaign();
  c.regression = fast_regression();
  put("c1", document(c, control(c, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_FALSE(last_signals(reports(), cp::Phase::kDownloading)) << "no signals before the commit";
  ASSERT_EQ(reboot(), Slot::kB);
  std::uint64_t crashes = 3;
  counter_ = [&crashes]() -> Result<std::uint64_t> { return crashes; };
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return last_signals(reports(), cp::Phase::kSucceeded).has_value(); });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r);
    disk_ = dev->survivors();
  }
  EXPECT_EQ(count(cp::Phase::kSucceeded), 2u) << "the result, then one observation";
  auto first = last_signals(reports(), cp::Phase::kSucceeded);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->health_failures, 0u);
  EXPECT_EQ(first->unexpected_reboots, 0u) << "the reboot into the update was asked for";
  EXPECT_EQ(first->counter, 0u) << "the first reading is the base";
  EXPECT_FALSE(first->regressed());
  // The daemon stopped without asking for a reboot, and the health check now fails.
  healthy_ = false;
  crashes = 5;
  now_ += 120;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] {
      auto s = last_signals(reports(), cp::Phase::kSucceeded);
      return s && s->health_failures > 0;
    });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(*r);
    disk_ = dev->survivors();
  }
  auto second = last_signals(reports(), cp::Phase::kSucceeded);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->health_failures, 1u);
  EXPECT_EQ(second->unexpected_reboots, 1u) << "a start not preceded by its own reboot";
  EXPECT_EQ(second->counter, 2u) << "the counter went from 3 to 5";
  EXPECT_EQ(second->observed_s, 120);
  EXPECT_TRUE(second->regressed());
  EXPECT_EQ(prefix(disk_.b, image_.size()), image_) << "signals never touch the install";
  // Past the observation period: one last report, then nothing more.
  now_ += 3600;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    ASSERT_TRUE(session(d, nullptr, 3500ms));
    disk_ = dev->survivors();
  }
  auto last = last_signals(reports(), cp::Phase::kSucceeded);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->observed_s, 3600);
  EXPECT_EQ(last->unexpected_reboots, 2u);
  std::size_t finals = 0;
  for (const auto& r : reports()) finals += r.signals && r.signals->observed_s == 3600;
  EXPECT_EQ(finals, 1u) << "observation over: no more reports";
}

// Not updated yet: the device reports the same signals while it waits (the
// control group); when its wave opens it leaves the control group, and once
// it committed it observes anew as updated.
TEST_F(DaemonTest, AWaitingDeviceIsTheControlGroupUntilItsWaveOpens) {
  auto c = campaign();
  c.waves = {1, 10000};  // dev-1 is in the second wave
  c.regression = fast_regression();
  put("c1", document(c, control(c, 1)));
  healthy_ = false;
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] {
      auto s = last_signals(reports(), cp::Phase::kWaiting);
      return s && s->health_failures >= 2;
    });
    ASSERT_TRUE(r) << r.error().message;
    disk_ = dev->survivors();
  }
  auto control_signals = last_signals(reports(), cp::Phase::kWaiting);
  ASSERT_TRUE(control_signals);
  EXPECT_EQ(control_signals->unexpected_reboots, 0u);
  EXPECT_EQ(opens_, 0) << "observing fetches nothing";
  healthy_ = true;
  put("c1", document(c, control(c, 2, cp::RunState::kRunning, 1)));
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, nullptr);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r);
    disk_ = dev->survivors();
  }
  for (const auto& r : reports()) {
    if (r.phase == cp::Phase::kDownloading || r.phase == cp::Phase::kRebooting)
      EXPECT_FALSE(r.signals) << "control signals stay with the waiting phase";
  }
  ASSERT_EQ(reboot(), Slot::kB);
  {
    auto dev = boot();
    auto d = daemon(*dev);
    auto r = session(d, [&] { return last_signals(reports(), cp::Phase::kSucceeded).has_value(); });
    ASSERT_TRUE(r) << r.error().message;
    disk_ = dev->survivors();
  }
  auto updated = last_signals(reports(), cp::Phase::kSucceeded);
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->health_failures, 0u) << "a new observation, not the control group's";
  EXPECT_EQ(updated->unexpected_reboots, 0u);
}

// For brokers whose retained store does not span every node (a cluster): a
// document the controller sent to this device alone is acted on like the
// fleet's retained one, and a sync request makes the device say that it is
// online and its latest state again, at most every sync_interval.
TEST_F(DaemonTest, ADocumentSentToTheDeviceAloneIsActedOnAndASyncRequestRepeatsTheStateOnce) {
  const cp::Campaign c = [&] {
    auto x = campaign();
    x.waves = {1, 10000};  // dev-1 waits in the second wave
    return x;
  }();
  sync_interval_ = 1500ms;
  auto dev = boot();
  auto d = daemon(*dev);
  const std::string state = cp::state_topic(kFleet, kDevice), online = cp::availability_topic(kFleet, kDevice);
  auto sent = [&](const std::string& topic) {
    std::size_t n = 0;
    for (const auto& m : broker_.log()) n += m.topic == topic;
    return n;
  };
  std::thread controller([&] {
    std::this_thread::sleep_for(200ms);
    broker_.publish({cp::device_campaign_topic(kFleet, kDevice, "c1"), document(c, control(c, 1)), 1, false, 0, {}});
  });
  ASSERT_TRUE(session(d, [&] {
    if (count(cp::Phase::kWaiting) == 0) return false;
    const std::size_t states = sent(state), onlines = sent(online);
    for (int i = 0; i < 3; ++i) broker_.publish({cp::sync_topic(kFleet, "c1"), "{}", 1, false, 0, {}});
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(sent(state), states + 1) << "three requests within sync_interval: answered once";
    EXPECT_EQ(sent(online), onlines + 1);
    std::this_thread::sleep_for(1500ms);  // sync_interval later: answered again
    broker_.publish({cp::sync_topic(kFleet, "c1"), "{}", 1, false, 0, {}});
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(sent(state), states + 2);
    return true;
  }));
  controller.join();
  EXPECT_EQ(count(cp::Phase::kWaiting), 1u);
}

}  // namespace
}  // namespace ota
