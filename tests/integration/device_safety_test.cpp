// Device safety on real parts: the drills of docs/security.md's device
// promises, each through real `ota` and `ota-agent run` processes, a real
// mosquitto and a real nginx (tests/support/fleet.hpp).
//   - a key rotation and revocation carried by a campaign survives a restart
//     of the daemon, and the revoked key's campaign installs nothing;
//   - a reboot command that fails, or returns without rebooting, leaves the
//     trial pending and commits nothing;
//   - a running document replayed after an abort installs nothing, on a
//     device that saw the abort (across a restart) and on one that was
//     offline (the replay is past its expiry);
//   - kill -9 of `ota-agent run` at random points of a campaign, many times,
//     ends with the device updated once and each result reported once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/fleet.hpp"

namespace ota {
namespace {

using namespace test;

class DeviceSafety : public Fleet {
 protected:
  Json config_of(const Device& d) { return Json::parse(slurp(d.dir + "/agent.json")); }
  void set_config(const Device& d, const Json& c) { std::ofstream(d.dir + "/agent.json") << c.dump(2); }
  Json agent_status(const Device& d) {
    auto r = run_process({kAgent, "-c", d.dir + "/agent.json", "status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out.empty() ? "{}" : r.out);
  }
  // The bank that ran while the device installed: still the base image.
  bool bank_a_is_base(const Device& d) {
    Bytes a = read_bytes(d.dir + "/bank-a");
    return std::equal(base_.begin(), base_.end(), a.begin());
  }
  // The newest retained document of a campaign, as any subscriber gets it.
  std::string retained_document(const std::string& id) {
    mqtt::Options o;
    o.port = broker_->port();
    o.client_id = "test-capture-" + std::to_string(::getpid());
    auto c = mqtt::connect(o);
    if (!c) return {};
    (void)(*c)->subscribe(cp::campaign_topic(kFleet, id), 1);
    std::string doc;
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (doc.empty() && std::chrono::steady_clock::now() < end) {
      auto ev = (*c)->next(100ms);
      if (ev && ev->kind == mqtt::Event::Kind::kMessage) doc = ev->message.payload;
    }
    (*c)->stop();
    return doc;
  }
  // What an attacker holding a broker credential can do: publish retained.
  void replay(const std::string& id, const std::string& doc) {
    mqtt::Options o;
    o.port = broker_->port();
    o.client_id = "test-replayer-" + std::to_string(::getpid());
    auto c = mqtt::connect(o);
    ASSERT_TRUE(c);
    ASSERT_TRUE(mqtt::wait_connected(**c, 10s));
    ASSERT_TRUE(mqtt::publish_confirmed(**c, {cp::campaign_topic(kFleet, id), doc, 1, true, 0, {}}, 10s));
    (*c)->stop();
  }
  cp::Control control_in(const std::string& doc) {
    auto d = cp::parse_document(doc);
    EXPECT_TRUE(d.has_value());
    if (!d) return {};
    auto k = cp::parse_control(d->control.payload);
    EXPECT_TRUE(k.has_value());
    return k ? *k : cp::Control{};
  }
  // Rejection events of one device that name this error code.
  std::size_t rejections(Observer& obs, const std::string& device, ErrorCode code) {
    std::size_t n = 0;
    for (const auto& e : obs.events_of(device))
      n += e.code == static_cast<int>(code) && e.reason.find("rejected") != std::string::npos ? 1 : 0;
    return n;
  }
  // Results of one device the controller journaled in this phase.
  int journaled(const std::string& campaign, const std::string& device, const std::string& phase) {
    int n = 0;
    for (const auto& r : journal(campaign))
      n += r["type"] == "result" && r["report"]["device"] == device && r["report"]["phase"] == phase ? 1 : 0;
    return n;
  }
  std::string events(Observer& obs, const std::string& device) {
    std::string out = "events of " + device + ":\n";
    for (const auto& e : obs.events_of(device))
      out += std::string(cp::phase_name(e.phase)) + " code " + std::to_string(e.code) + " seq " + std::to_string(e.seq) +
             " campaign " + Json(e.campaign).dump(-1, ' ', false, Json::error_handler_t::replace) + " reason " +
             Json(e.reason).dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    return out;
  }
  std::string new_key(const std::string& name) {
    auto r = ota({"keygen", "-o", path(name), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out.empty() ? "{}" : r.out).value("keyid", "");
  }
};

TEST_F(DeviceSafety, ARotationCarriedByACampaignSurvivesARestartAndTheRevokedKeyInstallsNothing) {
  start_broker();
  Observer obs(broker_->port());
  // The release key is compromised: root v2 revokes it and trusts release2.
  auto shown = ota({"root", "show", path("root.json"), "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  const std::string release_id = Json::parse(shown.out)["root"]["keys"][0];
  ASSERT_FALSE(new_key("release2").empty());
  auto rot = ota({"root", "rotate", "--from", path("root.json"), "--key", path("release2.pub"), "--revoke", release_id,
                  "--expires", "2099-01-01", "-o", path("root2.json"), "-q"});
  ASSERT_EQ(rot.exit_code, 0) << rot.err;
  // Signed by a threshold of v1 (the old key) and of v2 (the new one).
  ASSERT_EQ(ota({"root", "sign", path("root2.json"), "--key", path("release.key"), "--previous", path("root.json")})
                .exit_code,
            0);
  ASSERT_EQ(ota({"root", "sign", path("root2.json"), "--key", path("release2.key"), "--previous", path("root.json")})
                .exit_code,
            0);
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--base", path("base.img"),
                "--key", path("release2.key"), "-q", "-o", path("fw-rotated.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;

  Device& d = add_device("rot", true);
  start(d);
  // The campaign carries root v2 and is signed by the new key only: the
  // device takes v2 first, then verifies the campaign and the bundle under it.
  std::vector<std::string> args{"publish",  path("fw-rotated.otb"), "--broker", broker_url(), "--fleet", kFleet,
                                "--campaign", "rotate", "--store", web_->www(), "--url",
                                "http://127.0.0.1:" + std::to_string(web_->port()), "--trust", path("root2.json"),
                                "--key", path("release2.key"), "--dir", path("campaigns"), "--root-update",
                                path("root2.json"), "--waves", "100", "-q", "--registry", path("registry.json"),
                                "--operator", path("operator.pub")};
  auto p = ota(args);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("rotate");
  ASSERT_EQ(controller_->wait(60s), 0) << logs();
  ASSERT_TRUE(eventually([&] { return obs.states()["rot"].phase == cp::Phase::kSucceeded; }, 15s)) << logs();
  EXPECT_TRUE(updated(d));

  // Power is cut; the device boots again. The root it accepted is on disk.
  d.proc->kill9();
  EXPECT_EQ(agent_status(d)["trust_root_version"], 2);
  start(d);

  // Whoever holds the revoked key (and a broker credential) publishes a
  // campaign under the old root: a full image the device would take.
  Bytes evil = random_bytes(100'000, 77);
  write_bytes(path("evil.img"), evil);
  b = ota({"build", "--image", path("evil.img"), "--version", "9.0.0", "--hw", "board", "--key", path("release.key"),
           "-q", "-o", path("fw-evil.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  p = publish("revoked", {"--waves", "100"}, "fw-evil.otb");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("revoked");
  ASSERT_TRUE(eventually([&] { return rejections(obs, "rot", ErrorCode::kKeyRevoked) >= 1; }, 20s)) << logs() << events(obs, "rot");
  std::this_thread::sleep_for(1s);
  // Nothing of it was written: the inactive bank still holds the base image,
  // the device runs 1.1.0 from bank b and trusts root v2.
  EXPECT_TRUE(bank_a_is_base(d));
  EXPECT_TRUE(updated(d));
  const Json st = agent_status(d);
  EXPECT_EQ(st["running_slot"], "b");
  EXPECT_EQ(st["banks"]["b"]["version"], "1.1.0");
  EXPECT_EQ(st["trust_root_version"], 2);
  EXPECT_NE(obs.states()["rot"].campaign, "revoked");
}

TEST_F(DeviceSafety, AFailedRebootLeavesTheTrialPendingUntilTheTrialReallyBoots) {
  start_broker();
  Observer obs(broker_->port());
  Device& d = add_device("rb", true);
  Json c = config_of(d);
  c["reboot_command"] = {"false"};
  c["reboot_wait_s"] = 2;
  set_config(d, c);
  start(d);
  auto p = publish("reboot-fails", {"--waves", "100"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("reboot-fails");

  // The reboot command fails: the daemon stops with reboot_pending (systemd
  // restarts it), the new image is written to bank b and nothing committed.
  EXPECT_EQ(d.proc->wait(60s), static_cast<int>(ErrorCode::kRebootPending)) << logs();
  auto pending = [&] {
    const Json st = agent_status(d);
    EXPECT_EQ(st["running_slot"], "a");
    EXPECT_EQ(st["boot"]["trial"], true);
    EXPECT_EQ(st["install"]["stage"], "trial");
    EXPECT_TRUE(bank_a_is_base(d));
    EXPECT_EQ(obs.count("reboot-fails", cp::Phase::kSucceeded), 0u);
  };
  pending();
  EXPECT_TRUE(updated(d));

  // Restarted on the old slot: it says the trial has not booted (45), asks
  // for the reboot again, which fails again.
  start(d);
  EXPECT_EQ(d.proc->wait(60s), static_cast<int>(ErrorCode::kRebootPending)) << logs();
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& e : obs.events_of("rb"))
          if (e.code == static_cast<int>(ErrorCode::kTrialNotBooted)) return true;
        return false;
      },
      10s))
      << logs();
  pending();

  // A reboot command that returns success without rebooting: the daemon
  // waits reboot_wait_s, then stops with reboot_pending; still nothing committed.
  c["reboot_command"] = {"true"};
  set_config(d, c);
  start(d);
  EXPECT_EQ(d.proc->wait(60s), static_cast<int>(ErrorCode::kRebootPending)) << logs();
  pending();

  // A reboot that happens (the simulator boots, the system stops the daemon):
  // after it the trial runs, passes its health check and is committed.
  c["reboot_command"] = {"/bin/sh", "-c", kAgent + " -c " + d.dir + "/agent.json simulate-boot && kill -TERM $PPID"};
  set_config(d, c);
  start(d);
  EXPECT_EQ(d.proc->wait(60s), 0) << logs();
  start(d);
  ASSERT_EQ(controller_->wait(60s), 0) << logs();
  ASSERT_TRUE(eventually([&] { return obs.states()["rb"].phase == cp::Phase::kSucceeded; }, 15s)) << logs();
  const Json st = agent_status(d);
  EXPECT_EQ(st["running_slot"], "b");
  EXPECT_EQ(st["boot"]["trial"], false);
  EXPECT_EQ(st["banks"]["b"]["version"], "1.1.0");
  EXPECT_TRUE(bank_a_is_base(d));
  EXPECT_EQ(journaled("reboot-fails", "rb", "succeeded"), 1);
}

TEST_F(DeviceSafety, ARunningDocumentReplayedAfterTheAbortIsRefusedAcrossARestart) {
  start_broker();
  Observer obs(broker_->port());
  Device& d = add_device("saw-abort", true);
  auto p = publish("replayed", {"--waves", "50,100", "--soak", "10m"});  // stays running
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("replayed");
  // The running document (validly signed, fresh), as any subscriber saw it.
  const std::string running = retained_document("replayed");
  ASSERT_EQ(control_in(running).state, cp::RunState::kRunning);
  auto a = ota({"campaign", "abort", "replayed", "--fleet", kFleet, "--broker", broker_url(), "--reason", "bad build", "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  EXPECT_EQ(controller_->wait(30s), static_cast<int>(ErrorCode::kCampaignAborted)) << logs();
  // The device sees the abort, then loses power.
  start(d);
  ASSERT_TRUE(eventually([&] { return obs.states()["saw-abort"].phase == cp::Phase::kAborted; }, 20s)) << logs();
  d.proc->kill9();
  // The older running document comes back, retained, while it is still
  // within its expiry; the device boots again.
  replay("replayed", running);
  start(d);
  ASSERT_TRUE(eventually([&] { return rejections(obs, "saw-abort", ErrorCode::kStaleCampaign) >= 1; }, 20s)) << logs();
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(untouched(d));
  EXPECT_EQ(obs.states()["saw-abort"].phase, cp::Phase::kAborted);
}

TEST_F(DeviceSafety, AnOfflineDeviceRefusesARunningDocumentReplayedPastItsExpiry) {
  start_broker();
  Observer obs(broker_->port());
  Device& d = add_device("offline", true);
  // Running control lives 10 s; the controller signs it again every ~3 s.
  auto p = publish("short-lived", {"--waves", "50,100", "--soak", "10m", "--control-ttl", "10s"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("short-lived");
  std::this_thread::sleep_for(4s);
  const std::string running = retained_document("short-lived");
  const cp::Control k = control_in(running);
  ASSERT_EQ(k.state, cp::RunState::kRunning);
  ASSERT_GT(k.expires, 0);
  ASSERT_LE(k.expires - k.issued, 10);
  auto a = ota({"campaign", "abort", "short-lived", "--fleet", kFleet, "--broker", broker_url(), "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  EXPECT_EQ(controller_->wait(30s), static_cast<int>(ErrorCode::kCampaignAborted)) << logs();
  // Past the replayed document's expiry, it replaces the abort on the broker;
  // the device, offline all along, never saw the abort.
  while (std::time(nullptr) <= k.expires) std::this_thread::sleep_for(200ms);
  replay("short-lived", running);
  start(d);
  ASSERT_TRUE(eventually([&] { return rejections(obs, "offline", ErrorCode::kStaleCampaign) >= 1; }, 20s)) << logs();
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(untouched(d));
  bool expired = false;
  for (const auto& e : obs.events_of("offline")) expired |= e.reason.find("expired") != std::string::npos;
  EXPECT_TRUE(expired) << logs();
  for (const auto& e : obs.events_of("offline")) EXPECT_NE(e.phase, cp::Phase::kDownloading);
}

TEST_F(DeviceSafety, KilledAtRandomPointsOfACampaignTheDeviceUpdatesOnceAndReportsEachResultOnce) {
  start_broker();
  Observer obs(broker_->port());
  // A full image served at 60 kB/s after its first 20 kB, so that kills land
  // in the download too (which resumes from its checkpoint), and a health
  // check that takes a moment.
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--key", path("release.key"),
                "--no-compress", "-q", "-o", path("fw-full.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ::mkdir(path("slow").c_str(), 0755);
  Nginx slow(path("slow"), 20'000, 60'000);
  ASSERT_TRUE(slow.running()) << slow.error_log();
  Device& d = add_device("crashy", true);
  Json c = config_of(d);
  c["health_check"]["command"] = {"sleep", "0.3"};
  set_config(d, c);
  auto p = publish("kills", {"--waves", "100"}, "fw-full.otb", &slow, "/slow");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("kills");

  const char* env_seed = std::getenv("OTA_KILL_SEED");
  const unsigned seed = env_seed ? static_cast<unsigned>(std::strtoul(env_seed, nullptr, 10)) : std::random_device{}();
  SCOPED_TRACE("OTA_KILL_SEED=" + std::to_string(seed));
  RecordProperty("kill_seed", static_cast<int>(seed & 0x7fffffff));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> after_ms(50, 1500);
  constexpr int kKills = 24;
  std::set<std::string> killed_in;  // the phase the device last reported at each kill
  for (int i = 0; i < kKills; ++i) {
    start(d);
    std::this_thread::sleep_for(std::chrono::milliseconds(after_ms(rng)));
    d.proc->kill9();
    killed_in.insert(std::string(cp::phase_name(obs.states()["crashy"].phase)));
  }
  std::string phases;
  for (const auto& k : killed_in) phases += (phases.empty() ? "" : ",") + k;
  RecordProperty("killed_in_phases", phases);
  start(d);
  ASSERT_EQ(controller_->wait(120s), 0) << logs();
  ASSERT_TRUE(eventually([&] { return obs.states()["crashy"].phase == cp::Phase::kSucceeded; }, 20s)) << logs();

  // Updated once: bank b holds the new image and is committed; the bank that
  // ran during the install was never written.
  EXPECT_TRUE(updated(d));
  EXPECT_TRUE(bank_a_is_base(d));
  const Json st = agent_status(d);
  EXPECT_EQ(st["running_slot"], "b");
  EXPECT_EQ(st["boot"]["trial"], false);
  EXPECT_EQ(st["banks"]["b"]["version"], "1.1.0");
  // The success counted once by the controller, and made once by the device
  // (redeliveries of it carry the same sequence number).
  EXPECT_EQ(journaled("kills", "crashy", "succeeded"), 1);
  EXPECT_EQ(journaled("kills", "crashy", "rolled-back") + journaled("kills", "crashy", "failed"), 0);
  std::set<std::uint64_t> success_seqs;
  for (const auto& e : obs.events_of("crashy"))
    if (e.phase == cp::Phase::kSucceeded) success_seqs.insert(e.seq);
  EXPECT_EQ(success_seqs.size(), 1u);
  // Every report the device made reached the broker: its outbox drains.
  EXPECT_TRUE(eventually([&] { return slurp(d.dir + "/state/outbox.json").find("\"pending\":[]") != std::string::npos; },
                         10s))
      << slurp(d.dir + "/state/outbox.json");
}

}  // namespace
}  // namespace ota
