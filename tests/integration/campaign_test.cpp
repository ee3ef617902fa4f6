// Staged campaigns end to end through the real binaries and real parts: a
// mosquitto on a free loopback port with its own configuration (anonymous, or
// examples/mosquitto with passwords, ACLs and TLS client certificates), an
// nginx serving the bundle store, `ota publish`, `ota campaign run` as the
// controller, and one `ota-agent run` process per device on file banks with
// the bootloader simulator and real health-check commands.
#include <algorithm>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ota/core/hash.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"
#include "support/fleet.hpp"
#include "support/prometheus.hpp"

namespace ota {
namespace {

using namespace test;

class Campaigns : public Fleet {};

TEST_F(Campaigns, ThreeWavesUpdateTheWholeFleetAndCountEveryResultOnce) {
  start_broker();
  Observer obs(broker_->port());
  constexpr int kDevices = 24;
  for (int i = 0; i < kDevices; ++i) start(add_device("meter-" + std::to_string(i), true));
  auto p = publish("rollout", {"--waves", "10,50,100", "--min-sample", "1"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("rollout", {"--json"});
  ASSERT_EQ(controller_->wait(90s), 0) << logs();

  // Every device rebooted into 1.1.0 and committed it.
  ASSERT_TRUE(eventually([&] { return obs.count("rollout", cp::Phase::kSucceeded) == kDevices; }, 10s)) << logs();
  for (auto& d : devices_) {
    EXPECT_TRUE(updated(d)) << d.id;
    EXPECT_EQ(obs.states()[d.id].version, "1.1.0") << d.id;
  }
  // The waves opened in order, each after its gate, then the campaign completed.
  EXPECT_EQ(decisions("rollout"), (std::vector<std::string>{"open-wave", "open-wave", "complete"}));
  // Each device's success is journaled once, in the wave the hash puts it in.
  const cp::Campaign c = campaign_of("rollout");
  std::map<std::string, int> finals;
  for (const auto& r : journal("rollout"))
    if (r["type"] == "result" && r["report"]["phase"] == "succeeded") ++finals[r["report"]["device"].get<std::string>()];
  EXPECT_EQ(finals.size(), static_cast<std::size_t>(kDevices));
  for (const auto& [d, n] : finals) EXPECT_EQ(n, 1) << d;
  // A device installs only once its wave is open: no device of wave 3
  // started before the decision that opened wave 3.
  Json st = status("rollout");
  EXPECT_EQ(st["control"]["state"], "completed");
  std::uint64_t targeted = 0, succeeded = 0;
  for (const auto& w : st["controller_status"]["waves"]) {
    targeted += w["targeted"].get<std::uint64_t>();
    succeeded += w["succeeded"].get<std::uint64_t>();
    EXPECT_EQ(w["failed"], 0);
  }
  EXPECT_EQ(targeted, static_cast<std::uint64_t>(kDevices));
  EXPECT_EQ(succeeded, static_cast<std::uint64_t>(kDevices));
  ASSERT_EQ(st["devices"].size(), static_cast<std::size_t>(kDevices));
  for (const auto& d : st["devices"]) EXPECT_EQ(d["wave"].get<std::size_t>(), cp::wave_of(c, d["device"].get<std::string>()));
  // Every document on the wire and on disk matches its schema.
  validate("publish-result.schema.json", {save("publish.json", p.out)});
  validate("campaign-run-result.schema.json", {path("controller.log")});
  validate("campaign-status-result.schema.json", {save("status.json", st.dump())});
  validate("journal-record.schema.json", {path("campaigns/rollout/journal.jsonl")});
  {
    std::string reports;
    for (const auto& [dev, evs] : obs.events())
      for (const auto& e : evs) reports += cp::encode_report(e) + "\n";
    validate("device-report.schema.json", {save("reports.jsonl", reports)});
    auto doc = cp::parse_document(journal("rollout").front()["document"].dump());
    ASSERT_TRUE(doc);
    validate("campaign-document.schema.json", {save("document.json", cp::encode_document(*doc))});
    validate("campaign.schema.json", {save("campaign.json", std::string(doc->campaign.payload.begin(), doc->campaign.payload.end()))});
    validate("campaign-control.schema.json", {save("control.json", std::string(doc->control.payload.begin(), doc->control.payload.end()))});
    validate("campaign-status.schema.json", {save("controller-status.json", st["controller_status"].dump())});
    validate("agent-config.schema.json", {devices_[0].dir + "/agent.json"});
  }
  // Each device acted once: one download, one reboot, one success in its events.
  for (const auto& [dev, evs] : obs.events()) {
    int downloads = 0;
    for (const auto& e : evs) downloads += e.phase == cp::Phase::kDownloading && e.reason.empty();
    EXPECT_EQ(downloads, 1) << dev;
  }
}

TEST_F(Campaigns, FailingHealthChecksPauseAtTheFailureGateThenAbortSkipsTheRest) {
  start_broker();
  Observer obs(broker_->port());
  const std::vector<std::uint32_t> waves{2500, 10000};
  // Wave 1: four devices whose new image fails its health check. Wave 2: eight healthy ones.
  for (const auto& id : ids_in_wave("bad-release", waves, 0, 4, "m")) start(add_device(id, false));
  for (const auto& id : ids_in_wave("bad-release", waves, 1, 8, "m")) start(add_device(id, true));
  auto p = publish("bad-release", {"--waves", "25,100", "--min-sample", "4", "--failure-threshold", "0.25"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("bad-release", {"--exit-on-pause"});
  ASSERT_EQ(controller_->wait(60s), 64) << logs();
  EXPECT_EQ(decisions("bad-release"), (std::vector<std::string>{"pause"}));
  ASSERT_TRUE(eventually([&] { return obs.count("bad-release", cp::Phase::kRolledBack) == 4; }, 10s)) << logs();
  // The wave-1 devices rolled back to the old image; wave 2 never installed.
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    auto s = obs.states()[devices_[i].id];
    if (i < 4) {
      EXPECT_EQ(s.phase, cp::Phase::kRolledBack) << devices_[i].id;
      EXPECT_EQ(s.code, static_cast<int>(ErrorCode::kRolledBack));
      EXPECT_NE(s.reason.find("health check failed"), std::string::npos) << s.reason;
    } else {
      EXPECT_EQ(s.phase, cp::Phase::kWaiting) << devices_[i].id;
      EXPECT_TRUE(untouched(devices_[i])) << devices_[i].id;
    }
  }
  // Abort (with the controller running again): devices that never started skip it.
  run_controller("bad-release");
  auto a = ota({"campaign", "abort", "bad-release", "--fleet", kFleet, "--broker", broker_url(), "--reason", "bad build",
                "--json", "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  validate("campaign-command-result.schema.json", {save("abort.json", a.out)});
  EXPECT_EQ(controller_->wait(30s), 63) << logs();
  ASSERT_TRUE(eventually([&] { return obs.count("bad-release", cp::Phase::kAborted) == 8; }, 15s)) << logs();
  for (std::size_t i = 4; i < devices_.size(); ++i) EXPECT_TRUE(untouched(devices_[i])) << devices_[i].id;
  EXPECT_EQ(decisions("bad-release"), (std::vector<std::string>{"pause", "abort"}));
}

// `ota campaign run --metrics`: a real Prometheus scrapes the controller
// while a bad release pauses at the failure gate, and its HTTP API returns
// what the controller's status says.
TEST_F(Campaigns, PrometheusScrapesWavesPhasesFailuresAndTheJournalFromTheController) {
  ASSERT_FALSE(find_prometheus().empty()) << "Debian's prometheus is needed (scripts/install-deps.sh)";
  start_broker();
  Observer obs(broker_->port());
  const std::vector<std::uint32_t> waves{2500, 10000};
  for (const auto& id : ids_in_wave("metered", waves, 0, 3, "m")) start(add_device(id, false));
  for (const auto& id : ids_in_wave("metered", waves, 1, 5, "m")) start(add_device(id, true));
  auto p = publish("metered", {"--waves", "25,100", "--min-sample", "3", "--failure-threshold", "0.25"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  // A bad address is a usage error before anything starts.
  auto bad = ota({"campaign", "run", "metered", "--broker", broker_url(), "--dir", path("campaigns"), "--metrics",
                  "metrics.example:9464"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--metrics"), std::string::npos) << bad.err;

  const int port = free_loopback_port();
  run_controller("metered", {"--metrics", "127.0.0.1:" + std::to_string(port)});
  ::mkdir(path("prometheus").c_str(), 0700);
  Prometheus prom(path("prometheus"), {"127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(prom.running()) << prom.log();
  const std::string c = "campaign=\"metered\"";
  auto one = [&](const std::string& q) {
    auto r = prom.query(q);
    return r.size() == 1 ? r.begin()->second : -1.0;
  };
  // The failure gate pauses the campaign once the three bad devices rolled back.
  ASSERT_TRUE(eventually([&] { return one("ota_campaign_state{" + c + ",state=\"paused\"}") == 1; }, 90s))
      << logs() << prom.log();
  ASSERT_TRUE(eventually([&] { return one("ota_campaign_journal_unsynced_results{" + c + "}") == 0; }, 10s));
  EXPECT_EQ(one("up{job=\"ota\"}"), 1);
  EXPECT_EQ(one("ota_campaign_state{" + c + ",state=\"running\"}"), 0);
  EXPECT_EQ(one("ota_campaign_waves{" + c + "}"), 2);
  EXPECT_EQ(one("ota_campaign_waves_open{" + c + "}"), 1);
  EXPECT_EQ(one("ota_campaign_wave_share{" + c + ",wave=\"1\"}"), 0.25);
  EXPECT_EQ(one("ota_campaign_gate_threshold{" + c + ",gate=\"failure\"}"), 0.25);
  EXPECT_EQ(one("ota_campaign_wave_devices{" + c + ",wave=\"1\",outcome=\"rolled_back\"}"), 3);
  EXPECT_EQ(one("ota_campaign_wave_devices{" + c + ",wave=\"2\",outcome=\"pending\"}"), 5);
  EXPECT_EQ(one("ota_campaign_devices{" + c + ",phase=\"rolled-back\"}"), 3);
  EXPECT_EQ(one("ota_campaign_devices{" + c + ",phase=\"waiting\"}"), 5);
  // Failures by reason: the devices' own words.
  auto reasons = prom.query("ota_campaign_device_failures{" + c + "}");
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(reasons.begin()->first.find("health check failed"), std::string::npos) << reasons.begin()->first;
  EXPECT_EQ(reasons.begin()->second, 3);
  // Bytes, reports, decisions and the journal.
  EXPECT_GT(one("ota_campaign_bytes_fetched{" + c + "}"), 0);
  EXPECT_EQ(one("ota_campaign_wave_bytes_fetched{" + c + ",wave=\"1\"}"), one("ota_campaign_bytes_fetched{" + c + "}"));
  EXPECT_GE(one("ota_campaign_reports_total{" + c + "}"), 8);
  EXPECT_GE(one("ota_campaign_results_total{" + c + "}"), 3);
  EXPECT_EQ(one("ota_campaign_decisions_total{" + c + "}"), 1);  // the pause
  EXPECT_GE(one("ota_campaign_journal_syncs_total{" + c + "}"), 1);
  EXPECT_GT(one("ota_campaign_journal_last_sync_timestamp_seconds{" + c + "}"), 1.7e9);
  // rate() over the counter answers once two scrapes exist (reports/s, as a dashboard graphs it).
  EXPECT_TRUE(eventually([&] { return one("rate(ota_campaign_reports_total{" + c + "}[1m])") >= 0; }, 10s));
  EXPECT_GE(one("ota_campaign_reports_per_second{" + c + "}"), 0);
  // The same figures as the controller's retained status.
  Json st = status("metered");
  const auto& w = st["controller_status"]["waves"];
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(one("ota_campaign_wave_devices{" + c + ",wave=\"1\",outcome=\"targeted\"}"), w[0]["targeted"].get<double>());
  EXPECT_EQ(one("ota_campaign_wave_devices{" + c + ",wave=\"2\",outcome=\"targeted\"}"), w[1]["targeted"].get<double>());
  // Abort: the controller exits and its target goes down.
  auto a = ota({"campaign", "abort", "metered", "--fleet", kFleet, "--broker", broker_url(), "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  EXPECT_EQ(controller_->wait(30s), 63) << logs();
  EXPECT_TRUE(eventually([&] { return one("up{job=\"ota\"}") == 0; }, 15s));
}

TEST_F(Campaigns, AbortStopsDevicesMidDownloadAndTheyKeepTheirOldImage) {
  start_broker();
  Observer obs(broker_->port());
  // A full-image bundle served slowly: 2000 bytes per response at full
  // speed, then 100 bytes per second, so the installs are in progress when
  // the abort comes.
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--key", path("release.key"),
                "--no-compress", "-q", "-o", path("fw-full.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ::mkdir(path("slow").c_str(), 0755);
  test::Nginx slow(path("slow"), 2000, 100);
  ASSERT_TRUE(slow.running()) << slow.error_log();
  for (int i = 0; i < 3; ++i) start(add_device("slow-" + std::to_string(i), true));
  auto p = publish("stopped", {"--waves", "100"}, "fw-full.otb", &slow, "/slow");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("stopped");
  ASSERT_TRUE(eventually([&] { return obs.count("stopped", cp::Phase::kDownloading) == 3; }, 20s)) << logs();
  std::this_thread::sleep_for(1s);
  auto a = ota({"campaign", "abort", "stopped", "--fleet", kFleet, "--broker", broker_url(), "--json", "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  EXPECT_EQ(controller_->wait(30s), 63) << logs();
  ASSERT_TRUE(eventually([&] { return obs.count("stopped", cp::Phase::kAborted) == 3; }, 20s)) << logs();
  for (auto& d : devices_) {
    const auto s = obs.states()[d.id];
    EXPECT_EQ(s.code, static_cast<int>(ErrorCode::kCampaignAborted)) << d.id;
    EXPECT_NE(s.reason.find("during the install"), std::string::npos) << s.reason;
    // The old image still boots; nothing is pending.
    auto st = test::run_process({kAgent, "-c", d.dir + "/agent.json", "status", "--json"});
    ASSERT_EQ(st.exit_code, 0) << st.err;
    const Json j = Json::parse(st.out);
    EXPECT_EQ(j["boot"]["slot"], "a") << d.id;
    EXPECT_EQ(j["boot"]["trial"], false) << d.id;
    EXPECT_EQ(j["install"]["stage"], "none") << d.id;
    EXPECT_FALSE(updated(d)) << d.id;
    Bytes bank_a = test::read_bytes(d.dir + "/bank-a");
    EXPECT_TRUE(std::equal(base_.begin(), base_.end(), bank_a.begin())) << d.id;
  }
}

TEST_F(Campaigns, RevertOnAbortSwitchesCommittedDevicesBackAndTheStatusCountsThem) {
  start_broker();
  Observer obs(broker_->port());
  const std::vector<std::uint32_t> waves{5000, 10000};
  // Wave 1: four devices that install and commit; the last one's old bank is
  // overwritten before the abort. Wave 2: two devices that never start.
  const auto first = ids_in_wave("revert", waves, 0, 4, "r");
  const auto second = ids_in_wave("revert", waves, 1, 2, "r");
  for (const auto& id : first) start(add_device(id, true));
  for (const auto& id : second) start(add_device(id, true));
  // The soak keeps wave 2 closed once wave 1 has passed its gate.
  auto p = publish("revert", {"--waves", "50,100", "--min-sample", "4", "--soak", "1h", "--revert-on-abort"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(Json::parse(p.out)["revert_on_abort"], true);
  EXPECT_TRUE(campaign_of("revert").revert_on_abort);
  run_controller("revert", {"--json"});
  // Timeouts sum to under the 120 s ctest limit (the run takes about 8 s, three times that under ASan).
  ASSERT_TRUE(eventually([&] { return obs.count("revert", cp::Phase::kSucceeded) == 4; }, 40s)) << logs();
  for (const auto& id : first) {
    const auto& d = *std::find_if(devices_.begin(), devices_.end(), [&](const Device& x) { return x.id == id; });
    EXPECT_TRUE(updated(d)) << id;
  }
  // The old image of the fourth device no longer verifies.
  const Device& damaged = *std::find_if(devices_.begin(), devices_.end(), [&](const Device& x) { return x.id == first[3]; });
  {
    Bytes a = read_bytes(damaged.dir + "/bank-a");
    a[1000] ^= 0xFF;
    write_bytes(damaged.dir + "/bank-a", a);
  }
  auto a = ota({"campaign", "abort", "revert", "--fleet", kFleet, "--broker", broker_url(), "--reason", "bad build",
                "--json", "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  // The controller stays until every committed device said how its revert ended.
  EXPECT_EQ(controller_->wait(40s), 63) << logs();
  ASSERT_TRUE(eventually([&] { return obs.count("revert", cp::Phase::kReverted) == 3; }, 15s)) << logs();
  ASSERT_TRUE(eventually([&] { return obs.count("revert", cp::Phase::kRevertFailed) == 1; }, 5s)) << logs();
  EXPECT_EQ(decisions("revert"), (std::vector<std::string>{"abort"}));
  for (auto& d : devices_) {
    const bool installed = std::find(first.begin(), first.end(), d.id) != first.end();
    const auto s = obs.states()[d.id];
    auto st = test::run_process({kAgent, "-c", d.dir + "/agent.json", "status", "--json"});
    ASSERT_EQ(st.exit_code, 0) << st.err;
    const Json j = Json::parse(st.out);
    EXPECT_EQ(j["boot"]["trial"], false) << d.id;
    EXPECT_EQ(j["install"]["stage"], "none") << d.id;
    if (!installed) {
      // Never started: skipped the campaign as before, untouched.
      EXPECT_EQ(s.phase, cp::Phase::kAborted) << d.id;
      EXPECT_TRUE(untouched(d)) << d.id;
      EXPECT_EQ(j["boot"]["slot"], "a") << d.id;
    } else if (d.id == damaged.id) {
      // Not switched: it says why and runs the new image.
      EXPECT_EQ(s.phase, cp::Phase::kRevertFailed) << d.id;
      EXPECT_EQ(s.code, static_cast<int>(ErrorCode::kPayloadMismatch)) << d.id;
      EXPECT_NE(s.reason.find("no longer holds"), std::string::npos) << s.reason;
      EXPECT_EQ(s.version, "1.1.0") << d.id;
      EXPECT_EQ(j["boot"]["slot"], "b") << d.id;
      EXPECT_EQ(j["running_slot"], "b") << d.id;
      EXPECT_TRUE(updated(d)) << d.id;
    } else {
      // Back on the old image, committed; the new image stays in bank b, not booted.
      EXPECT_EQ(s.phase, cp::Phase::kReverted) << d.id;
      EXPECT_EQ(s.slot, "a") << d.id;
      EXPECT_EQ(s.version, "") << d.id;  // the factory image
      EXPECT_EQ(j["boot"]["slot"], "a") << d.id;
      EXPECT_EQ(j["running_slot"], "a") << d.id;
      Bytes bank_a = test::read_bytes(d.dir + "/bank-a");
      EXPECT_TRUE(std::equal(base_.begin(), base_.end(), bank_a.begin())) << d.id;
      ASSERT_TRUE(s.image_hash) << d.id;
      EXPECT_EQ(*s.image_hash, content_hash(base_)) << d.id;
      // Reverted once: one reverting event.
      int reverting = 0;
      for (const auto& e : obs.events_of(d.id)) reverting += e.phase == cp::Phase::kReverting;
      EXPECT_EQ(reverting, 1) << d.id;
    }
  }
  // The controller's status counts the reverts per wave and `ota campaign status` shows them.
  Json st = status("revert");
  EXPECT_EQ(st["control"]["state"], "aborted");
  const Json& w = st["controller_status"]["waves"];
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0]["reverted"], 3);
  EXPECT_EQ(w[0]["revert_failed"], 1);
  EXPECT_EQ(w[0]["reverting"], 0);
  EXPECT_EQ(w[0]["succeeded"], 0);
  EXPECT_EQ(w[1]["reverted"], 0);
  EXPECT_EQ(w[1]["aborted"], 2);
  auto text = ota({"campaign", "status", "revert", "--fleet", kFleet, "--broker", broker_url(), "--trust", path("root.json")});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("revert on abort: 3 reverted, 1 revert-failed"), std::string::npos) << text.out;
  // Each final result journaled once.
  std::map<std::string, int> reverted;
  for (const auto& r : journal("revert"))
    if (r["type"] == "result" && r["report"]["phase"] == "reverted") ++reverted[r["report"]["device"].get<std::string>()];
  EXPECT_EQ(reverted.size(), 3u);
  for (const auto& [dev, n] : reverted) EXPECT_EQ(n, 1) << dev;
  validate("publish-result.schema.json", {save("publish.json", p.out)});
  validate("campaign-run-result.schema.json", {path("controller.log")});
  validate("campaign-status-result.schema.json", {save("status.json", st.dump())});
  validate("campaign-status.schema.json", {save("controller-status.json", st["controller_status"].dump())});
  validate("journal-record.schema.json", {path("campaigns/revert/journal.jsonl")});
  {
    std::string reports;
    for (const auto& [dev, evs] : obs.events())
      for (const auto& e : evs) reports += cp::encode_report(e) + "\n";
    validate("device-report.schema.json", {save("reports.jsonl", reports)});
    auto doc = cp::parse_document(journal("revert").front()["document"].dump());
    ASSERT_TRUE(doc);
    validate("campaign.schema.json", {save("campaign.json", std::string(doc->campaign.payload.begin(), doc->campaign.payload.end()))});
  }
}

TEST_F(Campaigns, ReportsMadeWhileTheBrokerIsDownSurviveAKillAndArriveOnce) {
  start_broker();
  Observer obs(broker_->port());
  Device& d = add_device("box", true);
  {
    // A real reboot command: the agent reports `rebooting`, then blocks in it.
    Json c = Json::parse(slurp(d.dir + "/agent.json"));
    c["reboot_command"] = {"sleep", "20"};
    std::ofstream(d.dir + "/agent.json") << c.dump(2);
  }
  start(d);
  auto p = publish("outbox", {"--waves", "100"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("outbox");
  ASSERT_TRUE(eventually([&] { return obs.states()["box"].phase == cp::Phase::kRebooting; }, 30s)) << logs();
  const std::uint64_t rebooting_seq = obs.states()["box"].seq;
  // Power off during the reboot; the broker goes down too.
  d.proc->kill9();
  broker_->kill9();
  auto boot = test::run_process({kAgent, "-c", d.dir + "/agent.json", "simulate-boot"});
  ASSERT_EQ(boot.exit_code, 0) << boot.err;
  // The new image boots with no broker: the health check commits it and the
  // result waits in the outbox on disk. Then power is lost again.
  start(d);
  // The outbox holds signed reports: read their payloads.
  auto outbox_has_success = [&] {
    auto j = Json::parse(slurp(d.dir + "/state/outbox.json"), nullptr, false);
    if (!j.is_object() || !j["pending"].is_array()) return false;
    for (const auto& entry : j["pending"]) {
      auto r = cp::read_report_unverified(entry.value("payload", ""));
      if (r && r->phase == cp::Phase::kSucceeded) return true;
    }
    return false;
  };
  ASSERT_TRUE(eventually(outbox_has_success, 20s)) << logs();
  d.proc->kill9();
  EXPECT_TRUE(updated(d));
  // Broker back, device back: the result arrives, once, and the campaign completes.
  broker_->restart();
  start(d);
  ASSERT_EQ(controller_->wait(90s), 0) << logs();
  ASSERT_TRUE(eventually([&] { return obs.states()["box"].phase == cp::Phase::kSucceeded; }, 30s)) << logs();
  EXPECT_GT(obs.states()["box"].seq, rebooting_seq);
  int finals = 0;
  for (const auto& r : journal("outbox"))
    if (r["type"] == "result" && r["report"]["phase"] == "succeeded") ++finals;
  EXPECT_EQ(finals, 1);
  EXPECT_TRUE(eventually([&] { return slurp(d.dir + "/state/outbox.json").find("\"pending\":[]") != std::string::npos; }, 10s))
      << slurp(d.dir + "/state/outbox.json");
}

// Pacing: 60 devices a minute with a step every 2 s lets two devices in per
// step. Every device of the (single, 100 %) wave waits for its turn, starts
// only after the decision that let it in, in position order, and the
// campaign completes with everyone updated once.
TEST_F(Campaigns, APacedWaveLetsDevicesStartNoFasterThanItsRate) {
  start_broker();
  Observer obs(broker_->port());
  constexpr int kDevices = 8;
  for (int i = 0; i < kDevices; ++i) start(add_device("paced-" + std::to_string(i), true));
  auto p = publish("paced", {"--waves", "100", "--devices-per-minute", "60"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const Json pub = Json::parse(p.out);
  ASSERT_TRUE(pub.contains("pace")) << p.out;
  EXPECT_EQ(pub["pace"]["devices_per_minute"], 60);
  EXPECT_GT(pub["pace"]["full_size"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(pub["pace"]["deltas"].size(), 1u) << "the bundle's delta from base.img";
  // Nobody starts before the controller runs: the published control admits no one.
  ASSERT_TRUE(eventually([&] { return obs.count("paced", cp::Phase::kWaiting) == kDevices; }, 30s)) << logs();
  for (const auto& d : devices_) EXPECT_NE(obs.states()[d.id].reason.find("paced"), std::string::npos) << d.id;
  run_controller("paced", {"--pace-step", "2s", "--json"});
  ASSERT_EQ(controller_->wait(100s), 0) << logs();
  ASSERT_TRUE(eventually([&] { return obs.count("paced", cp::Phase::kSucceeded) == kDevices; }, 10s)) << logs();
  for (const auto& d : devices_) EXPECT_TRUE(updated(d)) << d.id;

  // The journal: admit decisions, each letting in at most two devices (one
  // step's tokens), the bound only growing; then the completion.
  const cp::Campaign c = campaign_of("paced");
  std::uint64_t bound = 0;
  std::map<std::string, trust::Time> let_in;  // device -> time of the decision that let it in
  int admits = 0;
  for (const auto& r : journal("paced")) {
    if (r["type"] != "decision" || r["action"] != "admit") continue;
    ++admits;
    auto e = trust::parse_envelope(r["control"].dump());
    ASSERT_TRUE(e);
    auto k = cp::parse_control(e->payload);
    ASSERT_TRUE(k && k->admit);
    EXPECT_GT(*k->admit, bound);
    int newly = 0;
    for (const auto& d : devices_) {
      const std::uint64_t pos = cp::position(c.id, d.id);
      if (pos >= bound && pos < *k->admit) {
        ++newly;
        let_in[d.id] = r["time"].get<trust::Time>();
      }
    }
    EXPECT_LE(newly, 2) << r.dump();
    bound = *k->admit;
  }
  EXPECT_GE(admits, kDevices / 2);
  EXPECT_EQ(let_in.size(), static_cast<std::size_t>(kDevices));
  EXPECT_EQ(decisions("paced").back(), "complete");
  // No device downloaded before the decision that let it in.
  for (const auto& [dev, evs] : obs.events()) {
    for (const auto& e : evs) {
      if (e.campaign != "paced" || e.phase != cp::Phase::kDownloading) continue;
      ASSERT_TRUE(let_in.count(dev)) << dev;
      EXPECT_GE(e.time, let_in[dev]) << dev;
    }
  }
  Json st = status("paced");
  ASSERT_TRUE(st["controller_status"].contains("pace")) << st.dump();
  EXPECT_EQ(st["controller_status"]["pace"]["admitted"], kDevices);
  EXPECT_EQ(st["controller_status"]["pace"]["held"], 0);
  validate("publish-result.schema.json", {save("publish.json", p.out)});
  validate("campaign-status-result.schema.json", {save("status.json", st.dump())});
  validate("journal-record.schema.json", {path("campaigns/paced/journal.jsonl")});
  auto doc = cp::parse_document(journal("paced").front()["document"].dump());
  ASSERT_TRUE(doc);
  validate("campaign.schema.json", {save("campaign.json", std::string(doc->campaign.payload.begin(), doc->campaign.payload.end()))});
  validate("campaign-control.schema.json", {save("control.json", std::string(doc->control.payload.begin(), doc->control.payload.end()))});
  validate("campaign-status.schema.json", {save("controller-status.json", st["controller_status"].dump())});
}

// The devices' own rollout policy: an install window (judged by a clock the
// test drives, through the agent's test-only OTA_AGENT_POLICY_CLOCK_FILE)
// keeps every device deferred, untouched, until it opens; then a device
// whose "busy" condition command fails stays deferred, and installs once
// it passes. The status shows the deferred devices and why.
TEST_F(Campaigns, AnInstallWindowKeepsDevicesDeferredUntilItOpensAndABusyDeviceWaitsLonger) {
  start_broker();
  Observer obs(broker_->port());
  const trust::Time mon_0100 = 1780275600;  // 2026-06-01T01:00:00Z, a Monday
  std::ofstream(path("clock")) << mon_0100;
  ::setenv("OTA_AGENT_POLICY_CLOCK_FILE", path("clock").c_str(), 1);
  for (int i = 0; i < 3; ++i) {
    Device& d = add_device("win-" + std::to_string(i), true);
    Json cfg = Json::parse(slurp(d.dir + "/agent.json"));
    cfg["rollout"] = {{"recheck_s", 1}};
    if (i == 2)  // busy until the marker exists
      cfg["rollout"]["conditions"] = {{"busy", {{"command", {"/usr/bin/test", "-e", path("not-busy")}}, {"timeout_s", 10}}}};
    std::ofstream(d.dir + "/agent.json") << cfg.dump(2);
    start(d);
  }
  ::unsetenv("OTA_AGENT_POLICY_CLOCK_FILE");
  auto p = publish("windowed", {"--waves", "100", "--window", "mon 02:00-03:00", "--defer-on", "busy,metered"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const Json pub = Json::parse(p.out);
  ASSERT_TRUE(pub.contains("policy")) << p.out;
  EXPECT_EQ(pub["policy"]["windows"][0], "mon 02:00-03:00");
  run_controller("windowed");
  ASSERT_TRUE(eventually([&] { return obs.count("windowed", cp::Phase::kDeferred) == 3; }, 40s)) << logs();
  for (const auto& d : devices_) {
    EXPECT_TRUE(untouched(d)) << d.id;
    EXPECT_NE(obs.states()[d.id].reason.find("outside the install windows (UTC); the next opens 2026-06-01T02:00:00Z"),
              std::string::npos)
        << obs.states()[d.id].reason;
  }
  ASSERT_TRUE(eventually([&] {
    Json st = status("windowed");
    return st["controller_status"].is_object() && st["controller_status"]["waves"][0]["deferred"] == 3;
  }, 10s)) << logs();
  {
    Json st = status("windowed");
    validate("campaign-status-result.schema.json", {save("status-deferred.json", st.dump())});
    for (const auto& d : st["devices"]) EXPECT_EQ(d["phase"], "deferred") << d.dump();
  }
  // The window opens: two devices install; the busy one waits for its condition.
  std::ofstream(path("clock")) << mon_0100 + 3600 + 60;
  ASSERT_TRUE(eventually([&] { return obs.count("windowed", cp::Phase::kSucceeded) == 2; }, 40s)) << logs();
  EXPECT_EQ(obs.states()["win-2"].phase, cp::Phase::kDeferred);
  EXPECT_NE(obs.states()["win-2"].reason.find("condition busy"), std::string::npos) << obs.states()["win-2"].reason;
  EXPECT_TRUE(untouched(devices_[2]));
  std::ofstream(path("not-busy")) << "";
  ASSERT_EQ(controller_->wait(40s), 0) << logs();
  for (const auto& d : devices_) EXPECT_TRUE(updated(d)) << d.id;
  EXPECT_EQ(decisions("windowed").back(), "complete");
  auto doc = cp::parse_document(journal("windowed").front()["document"].dump());
  ASSERT_TRUE(doc);
  validate("campaign.schema.json", {save("campaign.json", std::string(doc->campaign.payload.begin(), doc->campaign.payload.end()))});
  validate("publish-result.schema.json", {save("publish.json", p.out)});
  validate("agent-config.schema.json", {devices_[2].dir + "/agent.json"});
  validate("journal-record.schema.json", {path("campaigns/windowed/journal.jsonl")});
}

// An encrypted security update (issue 19): the bundle carries an advisory and
// is encrypted to the fleet's X25519 key. The device that takes security
// updates at any time installs it outside the install window; the other
// waits for the window. `ota publish` and `ota campaign status` show the
// advisory; a device without the key fails with decryption_key.
TEST_F(Campaigns, AnEncryptedSecurityUpdateSkipsTheWindowOnlyOnDevicesThatTakeThemAnytime) {
  ASSERT_EQ(ota({"keygen", "--encryption", "-o", path("fleet-enc")}).exit_code, 0);
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--base", path("base.img"),
                "--key", path("release.key"), "--encrypt-to", path("fleet-enc.pub"), "--security-advisory",
                "Fixes a heap overflow in the DHCP client.", "--advisory-id", "CVE-2026-12345", "-q", "-o",
                path("fw-sec.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  start_broker();
  Observer obs(broker_->port());
  const trust::Time mon_0100 = 1780275600;  // 2026-06-01T01:00:00Z, a Monday, outside the window
  std::ofstream(path("clock")) << mon_0100;
  ::setenv("OTA_AGENT_POLICY_CLOCK_FILE", path("clock").c_str(), 1);
  for (int i = 0; i < 3; ++i) {
    Device& d = add_device("sec-" + std::to_string(i), true);
    Json cfg = Json::parse(slurp(d.dir + "/agent.json"));
    cfg["rollout"] = {{"recheck_s", 1}};
    if (i == 0) cfg["rollout"]["security_updates"] = "anytime";
    if (i < 2) cfg["decryption"] = {{"key", path("fleet-enc.key")}};
    if (i == 2) cfg["rollout"]["security_updates"] = "anytime";  // but no key
    std::ofstream(d.dir + "/agent.json") << cfg.dump(2);
    start(d);
  }
  ::unsetenv("OTA_AGENT_POLICY_CLOCK_FILE");
  auto p = publish("security", {"--waves", "100", "--window", "mon 02:00-03:00", "--failure-threshold", "1"}, "fw-sec.otb");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const Json pub = Json::parse(p.out);
  ASSERT_TRUE(pub["advisory"].is_object()) << p.out;
  EXPECT_EQ(pub["advisory"]["ids"][0], "CVE-2026-12345");
  run_controller("security");
  ASSERT_TRUE(eventually([&] { return obs.states()["sec-0"].phase == cp::Phase::kSucceeded; }, 40s)) << logs();
  ASSERT_TRUE(eventually([&] { return obs.states()["sec-2"].phase == cp::Phase::kFailed; }, 40s)) << logs();
  EXPECT_NE(obs.states()["sec-2"].reason.find("no decryption key"), std::string::npos) << obs.states()["sec-2"].reason;
  ASSERT_TRUE(eventually([&] { return obs.states()["sec-1"].phase == cp::Phase::kDeferred; }, 20s)) << logs();
  EXPECT_TRUE(updated(devices_[0]));
  EXPECT_TRUE(untouched(devices_[1]));
  EXPECT_TRUE(untouched(devices_[2]));
  Json st = status("security");
  validate("campaign-status-result.schema.json", {save("status-security.json", st.dump())});
  EXPECT_EQ(st["advisory"]["ids"][0], "CVE-2026-12345");
  auto text = ota({"campaign", "status", "security", "--fleet", kFleet, "--broker", broker_url(), "--trust", path("root.json")});
  EXPECT_NE(text.out.find("security update: CVE-2026-12345: Fixes a heap overflow"), std::string::npos) << text.out;
  // The window opens: the second device installs too.
  std::ofstream(path("clock")) << mon_0100 + 3600 + 60;
  ASSERT_TRUE(eventually([&] { return obs.states()["sec-1"].phase == cp::Phase::kSucceeded; }, 40s)) << logs();
  EXPECT_TRUE(updated(devices_[1]));
  validate("publish-result.schema.json", {save("publish-security.json", p.out)});
  validate("agent-config.schema.json", {devices_[0].dir + "/agent.json"});
}

// Regression-gated waves (issue 17): the first wave's health check starts
// failing a few seconds after the update (an hour in the field, made fast
// here); the second wave, not updated yet, stays healthy as the control
// group. Every install succeeds, and still the regression gate pauses.
TEST_F(Campaigns, ARegressionAfterTheUpdatePausesTheWaveWhileEveryInstallSucceeded) {
  start_broker();
  Observer obs(broker_->port());
  const std::vector<std::uint32_t> waves{5000, 10000};
  // Healthy on the old image; on the new one healthy for 3 s after its first check (the trial's), then failing.
  const std::string script = save("degrades.sh",
                                   "#!/bin/sh\n"
                                   "new=\"" + path("new.img") + "\"\n"
                                   "cmp -s -n \"$(stat -c %s \"$new\")\" \"$new\" \"$1/bank-b\" || exit 0\n"
                                   "[ -f \"$1/updated-at\" ] || date +%s > \"$1/updated-at\"\n"
                                   "[ $(( $(date +%s) - $(cat \"$1/updated-at\") )) -lt 3 ] && exit 0\n"
                                   "echo failed >> \"$1/failures\"\n"
                                   "exit 1\n");
  // The counter: how many times that check failed (a service's restarts, say).
  const std::string counter = save("counter.sh", "#!/bin/sh\ncat \"$1/failures\" 2>/dev/null | wc -l\n");
  std::vector<std::string> ids = ids_in_wave("regress", waves, 0, 4, "g");
  for (const auto& id : ids_in_wave("regress", waves, 1, 4, "g")) ids.push_back(id);
  for (const auto& id : ids) {
    Device& d = add_device(id, true);
    Json c = Json::parse(slurp(d.dir + "/agent.json"));
    c["health_check"]["command"] = {"/bin/sh", script, d.dir};
    c["health_signals"] = {{"counter_command", {"/bin/sh", counter, d.dir}}, {"timeout_s", 10}};
    std::ofstream(d.dir + "/agent.json") << c.dump(2);
    start(d);
  }
  auto p = publish("regress", {"--waves", "50,100", "--min-sample", "4", "--soak", "1h", "--regression-window", "1h",
                               "--regression-interval", "1s", "--regression-margin", "0.05", "--regression-min-sample",
                               "3"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const Json pub = Json::parse(p.out);
  ASSERT_TRUE(pub.contains("regression")) << p.out;
  EXPECT_EQ(pub["regression"]["observe_s"], 3600);
  EXPECT_EQ(pub["regression"]["min_sample"], 3);
  EXPECT_EQ(pub["regression"]["action"], "pause");
  run_controller("regress", {"--exit-on-pause"});
  ASSERT_EQ(controller_->wait(90s), 64) << logs();
  EXPECT_EQ(decisions("regress"), (std::vector<std::string>{"pause"}));
  std::string reason;
  for (const auto& r : journal("regress"))
    if (r["type"] == "decision") reason = r["reason"].get<std::string>();
  RecordProperty("decision", reason);
  EXPECT_EQ(reason.rfind("regression gate: ", 0), 0u) << reason;
  EXPECT_NE(reason.find("of 4 updated devices regressed"), std::string::npos) << reason;
  EXPECT_NE(reason.find("0 of 4 in the control group"), std::string::npos) << reason;
  // Every install succeeded: the failure gate had nothing to say.
  std::size_t regressed = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto s = obs.states()[ids[i]];
    if (i < 4) {
      EXPECT_EQ(s.phase, cp::Phase::kSucceeded) << ids[i];
      EXPECT_TRUE(updated(devices_[i])) << ids[i];
      ASSERT_TRUE(s.signals) << ids[i];
      // The counter command read the failures the health check wrote, one per failed check.
      EXPECT_EQ(s.signals->counter, s.signals->health_failures) << ids[i];
      EXPECT_EQ(s.signals->unexpected_reboots, 0u) << ids[i] << ": the reboot into the update was asked for";
      regressed += s.signals->regressed();
    } else {
      EXPECT_EQ(s.phase, cp::Phase::kWaiting) << ids[i];
      EXPECT_TRUE(untouched(devices_[i])) << ids[i];
      ASSERT_TRUE(s.signals) << ids[i];
      EXPECT_FALSE(s.signals->regressed()) << ids[i];
      EXPECT_EQ(s.signals->counter, 0u) << ids[i] << ": the counter command's value did not change";
    }
  }
  EXPECT_GE(regressed, 3u);
  Json st = status("regress");
  const Json& cs = st["controller_status"];
  ASSERT_TRUE(cs.contains("regression")) << st.dump();
  EXPECT_EQ(cs["state"], "paused");
  EXPECT_EQ(cs["waves"][0]["succeeded"], 4);
  EXPECT_EQ(cs["waves"][0]["failed"], 0);
  EXPECT_EQ(cs["waves"][0]["rolled_back"], 0);
  EXPECT_GE(cs["regression"]["updated_regressed"].get<int>(), 3);
  EXPECT_EQ(cs["regression"]["control"], 4);
  EXPECT_EQ(cs["regression"]["control_regressed"], 0);
  EXPECT_GT(cs["regression"]["z"].get<double>(), 1.645);
  EXPECT_EQ(logs().find("the counter command failed"), std::string::npos) << logs();
  validate("publish-result.schema.json", {save("publish.json", p.out)});
  validate("campaign-status-result.schema.json", {save("status.json", st.dump())});
  validate("campaign-status.schema.json", {save("controller-status.json", cs.dump())});
  validate("journal-record.schema.json", {path("campaigns/regress/journal.jsonl")});
  validate("agent-config.schema.json", {devices_[0].dir + "/agent.json"});
  std::string reports;
  for (const auto& [dev, evs] : obs.events())
    for (const auto& e : evs) reports += cp::encode_report(e) + "\n";
  validate("device-report.schema.json", {save("reports.jsonl", reports)});
  auto doc = cp::parse_document(journal("regress").front()["document"].dump());
  ASSERT_TRUE(doc);
  validate("campaign.schema.json", {save("campaign.json", std::string(doc->campaign.payload.begin(), doc->campaign.payload.end()))});
}

TEST_F(Campaigns, ADeviceOfflineDuringItsWaveInstallsWhenItReconnects) {
  start_broker();
  Observer obs(broker_->port());
  for (int i = 0; i < 3; ++i) start(add_device("on-" + std::to_string(i), true));
  Device& late = add_device("late", true);
  auto p = publish("late-join", {"--waves", "100"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("late-join");
  ASSERT_EQ(controller_->wait(60s), 0) << logs();
  EXPECT_TRUE(untouched(late));
  start(late);
  ASSERT_TRUE(eventually([&] { return obs.states()["late"].phase == cp::Phase::kSucceeded; }, 30s)) << logs();
  EXPECT_TRUE(updated(late));
}

TEST_F(Campaigns, ControllerAndBrokerKilledMidCampaignReachTheSameOutcome) {
  start_broker();
  constexpr int kDevices = 12;
  for (int i = 0; i < kDevices; ++i) start(add_device("k-" + std::to_string(i), true));
  auto p = publish("crashy", {"--waves", "25,50,100", "--soak", "2s"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("crashy");
  // Once wave 2 is open: kill -9 the controller, then the broker; start both again.
  ASSERT_TRUE(eventually([&] { return decisions("crashy").size() >= 1; }, 30s)) << logs();
  controller_->kill9();
  broker_->kill9();
  std::this_thread::sleep_for(500ms);
  broker_->restart();
  run_controller("crashy");
  ASSERT_EQ(controller_->wait(90s), 0) << logs();
  Observer obs(broker_->port());
  ASSERT_TRUE(eventually([&] { return obs.count("crashy", cp::Phase::kSucceeded) == kDevices; }, 15s)) << logs();
  for (auto& d : devices_) EXPECT_TRUE(updated(d)) << d.id;
  EXPECT_EQ(decisions("crashy"), (std::vector<std::string>{"open-wave", "open-wave", "complete"}));
  std::map<std::string, int> finals;
  for (const auto& r : journal("crashy"))
    if (r["type"] == "result" && r["report"]["phase"] == "succeeded") ++finals[r["report"]["device"].get<std::string>()];
  EXPECT_EQ(finals.size(), static_cast<std::size_t>(kDevices));
  for (const auto& [d, n] : finals) EXPECT_EQ(n, 1) << d;
  Json st = status("crashy");
  std::uint64_t succeeded = 0;
  for (const auto& w : st["controller_status"]["waves"]) succeeded += w["succeeded"].get<std::uint64_t>();
  EXPECT_EQ(succeeded, static_cast<std::uint64_t>(kDevices));
}

// Signs a campaign document in the test: a campaign with the given release
// key, a control with the given controller key.
std::string sign_document(const cp::Campaign& c, const keys::SecretKey& release, const cp::Control& k,
                          const keys::SecretKey& controller) {
  trust::Envelope e;
  e.payload_type = std::string(cp::kCampaignType);
  e.payload = cp::encode_campaign(c);
  e.signatures.push_back({release.public_key().id(), release.sign(trust::signing_message(cp::kCampaignType, e.payload))});
  return cp::encode_document({e, cp::sign_control(k, controller), {}});
}

TEST_F(Campaigns, ForgedReplayedAndExpiredCampaignsAreRejectedByEveryDevice) {
  start_broker();
  Observer obs(broker_->port());
  for (int i = 0; i < 3; ++i) add_device("s-" + std::to_string(i), true);
  // A valid campaign; before any device is up it is replaced by revision 1.2,
  // paused: every device accepts that one and waits.
  auto p = publish("guarded", {"--waves", "100"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto release = keys::load_secret(path("release.key"), std::nullopt);
  auto attacker = keys::load_secret(path("attacker.key"), std::nullopt);
  auto controller = keys::load_secret(path("campaigns/guarded/controller.key"), std::nullopt);
  ASSERT_TRUE(release && attacker && controller);
  const cp::Campaign good = campaign_of("guarded");
  cp::Control paused{good.id, good.revision, 2, 0, cp::RunState::kPaused, good.created, "hold"};
  mqtt::Options mo;
  mo.port = broker_->port();
  mo.client_id = "test-attacker";
  auto client = mqtt::connect(mo);
  ASSERT_TRUE(client);
  ASSERT_TRUE(mqtt::wait_connected(**client, 10s));
  auto send = [&](const std::string& doc) {
    ASSERT_TRUE(mqtt::publish_confirmed(**client, {cp::campaign_topic(kFleet, good.id), doc, 1, true, 0, {}}, 10s));
  };
  // Rejections arrive as events naming the error code: one more per device.
  auto rejections = [&](ErrorCode code) {
    std::size_t n = 0;
    for (const auto& [d, evs] : obs.events())
      for (const auto& e : evs) n += e.code == static_cast<int>(code) && e.reason.find("rejected") != std::string::npos ? 1 : 0;
    return n;
  };
  auto rejected_with = [&](ErrorCode code, std::size_t before) {
    return eventually([&] { return rejections(code) >= before + 3; }, 15s);
  };
  send(sign_document(good, *release, paused, *controller));
  for (auto& d : devices_) start(d);
  ASSERT_TRUE(eventually([&] { return obs.count("guarded", cp::Phase::kWaiting) == 3; }, 15s)) << logs();

  // Replayed: the older, running revision 1.1 (what `ota publish` sent) is stale.
  cp::Control running{good.id, good.revision, 1, 0, cp::RunState::kRunning, good.created, "published"};
  send(sign_document(good, *release, running, *controller));
  EXPECT_TRUE(rejected_with(ErrorCode::kStaleCampaign, 0)) << logs();

  // Forged: signed by a key the trust root does not list, pointing elsewhere.
  cp::Campaign forged = good;
  forged.revision = good.revision + 1;
  forged.url = "http://127.0.0.1:1/evil.otb";
  cp::Control fk{good.id, forged.revision, 1, 0, cp::RunState::kRunning, good.created, ""};
  send(sign_document(forged, *attacker, fk, *controller));
  EXPECT_TRUE(rejected_with(ErrorCode::kUnknownKey, 0)) << logs();
  // Tampered: the good signature over changed bytes.
  {
    auto doc = cp::parse_document(sign_document(forged, *release, fk, *controller));
    ASSERT_TRUE(doc);
    std::string payload(doc->campaign.payload.begin(), doc->campaign.payload.end());
    payload.replace(payload.find("127.0.0.1:1"), 11, "127.0.0.1:2");
    doc->campaign.payload.assign(payload.begin(), payload.end());
    send(cp::encode_document(*doc));
    EXPECT_TRUE(rejected_with(ErrorCode::kBadSignature, 0)) << logs();
  }
  // A control document signed by another key than the campaign's controller key.
  const std::size_t unknown = rejections(ErrorCode::kUnknownKey);
  send(sign_document(good, *release, cp::Control{good.id, good.revision, 9, 0, cp::RunState::kRunning, good.created, ""},
                     *attacker));
  EXPECT_TRUE(rejected_with(ErrorCode::kUnknownKey, unknown)) << logs();
  // Expired: properly signed, but past its expiry.
  cp::Campaign expired = good;
  expired.revision = good.revision + 2;
  expired.created = 1700000000;
  expired.expires = 1700003600;
  send(sign_document(expired, *release, cp::Control{good.id, expired.revision, 1, 0, cp::RunState::kRunning, 1700000000, ""},
                     *controller));
  EXPECT_TRUE(rejected_with(ErrorCode::kExpired, 0)) << logs();

  // Nothing was installed, every device still waits on the accepted revision.
  std::this_thread::sleep_for(500ms);
  for (auto& d : devices_) {
    EXPECT_TRUE(untouched(d)) << d.id;
    EXPECT_EQ(obs.states()[d.id].phase, cp::Phase::kWaiting) << d.id;
  }
  (*client)->stop();
}

// Issue 17, items 1 and 2: in a signed campaign the controller counts only
// reports signed by registered device keys and obeys only commands signed by
// an operator key the campaign authorises. Forgeries by a client holding a
// broker credential are dropped and counted; the campaign still completes.
TEST_F(Campaigns, ForgedReportsAndCommandsAreIgnoredCountedAndTheCampaignCompletes) {
  start_broker();
  Observer obs(broker_->port());
  for (int i = 0; i < 2; ++i) add_device("sig-" + std::to_string(i), true);
  auto p = publish("signed", {"--waves", "100"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const Json pj = Json::parse(p.out);
  EXPECT_EQ(pj["security"], "signed");
  validate("publish-result.schema.json", {save("publish.json", p.out)});
  validate("device-registry.schema.json", {path("registry.json")});
  const cp::Campaign c = campaign_of("signed");
  ASSERT_TRUE(c.security.has_value());
  run_controller("signed");

  mqtt::Options mo;
  mo.port = broker_->port();
  mo.client_id = "test-forger";
  auto client = mqtt::connect(mo);
  ASSERT_TRUE(client);
  ASSERT_TRUE(mqtt::wait_connected(**client, 10s));
  // Genuine reports of sig-0, as they went over the wire (for the replay).
  ASSERT_TRUE((*client)->subscribe(cp::events_topic(kFleet, "sig-0"), 1));
  auto send = [&](const std::string& topic, const std::string& payload, bool retain = false) {
    ASSERT_TRUE(mqtt::publish_confirmed(**client, {topic, payload, 1, retain, 0, {}}, 10s));
  };
  auto control_state = [&]() -> std::string {
    auto doc = mqtt::read_retained(**client, cp::campaign_topic(kFleet, "signed"), 2000ms);
    if (!doc || !*doc) return "";
    auto d = cp::parse_document(**doc);
    auto k = d ? cp::parse_control(d->control.payload) : Result<cp::Control>(fail(ErrorCode::kMalformed, ""));
    return k ? std::string(cp::run_state_name(k->state)) : "";
  };
  auto counts = [&](const std::string& what) {
    auto st = mqtt::read_retained(**client, cp::status_topic(kFleet, "signed"), 2000ms);
    if (!st || !*st) return Json();
    return Json::parse(**st)["security"][what];
  };

  // A signed pause: obeyed. An unsigned one is refused by the CLI at once.
  auto refused = ota({"campaign", "pause", "signed", "--fleet", kFleet, "--broker", broker_url(), "--timeout", "5s"});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  auto pause = ota({"campaign", "pause", "signed", "--fleet", kFleet, "--broker", broker_url(), "--key",
                    path("operator.key"), "--json", "--timeout", "30s"});
  ASSERT_EQ(pause.exit_code, 0) << pause.err << logs();
  validate("campaign-command-result.schema.json", {save("pause.json", pause.out)});
  auto genuine_pause = mqtt::read_retained(**client, cp::commands_topic(kFleet, "signed"), 2000ms);
  ASSERT_TRUE(genuine_pause && *genuine_pause);
  {
    auto e = trust::parse_envelope(**genuine_pause);
    ASSERT_TRUE(e);
    validate("signed-envelope.schema.json", {save("command.json", **genuine_pause)});
    validate("signed-command.schema.json", {save("command-payload.json", std::string(e->payload.begin(), e->payload.end()))});
  }

  // Forged commands: unsigned, signed by a key the campaign does not authorise.
  auto attacker = keys::load_secret(path("attacker.key"), std::nullopt);
  auto dev0 = keys::load_secret(devices_[0].dir + "/device.key", std::nullopt);
  ASSERT_TRUE(attacker && dev0);
  cp::Command resume;
  resume.id = "forged-resume-1";
  resume.action = "resume";
  resume.time = static_cast<trust::Time>(std::time(nullptr));
  resume.expires = resume.time + 3600;
  resume.campaign = "signed";
  resume.fleet = kFleet;
  send(cp::commands_topic(kFleet, "signed"), cp::encode_command(resume), true);
  resume.id = "forged-resume-2";
  send(cp::commands_topic(kFleet, "signed"), cp::sign_command(resume, *attacker), true);
  ASSERT_TRUE(eventually([&] { return counts("ignored_commands").value("unauthorised", 0) >= 1; }, 15s)) << logs();
  EXPECT_EQ(counts("ignored_commands").value("unsigned", 0), 1);
  EXPECT_EQ(control_state(), "paused");

  // A replayed genuine command, while paused (nothing can complete the campaign meanwhile): a
  // second genuine pause (a no-op on a paused campaign, whose id the controller remembers), then
  // the first pause again, which is no longer the last command seen: replayed.
  auto op = keys::load_secret(path("operator.key"), std::nullopt);
  ASSERT_TRUE(op);
  cp::Command second;
  second.id = "second-pause";
  second.action = "pause";
  second.time = static_cast<trust::Time>(std::time(nullptr));
  second.expires = second.time + 3600;
  second.campaign = "signed";
  second.fleet = kFleet;
  send(cp::commands_topic(kFleet, "signed"), cp::sign_command(second, *op), true);
  ASSERT_TRUE(eventually([&] {
    for (const auto& r : journal("signed"))
      if (r.value("command", "") == "second-pause") return true;
    return false;
  }, 15s)) << logs();
  send(cp::commands_topic(kFleet, "signed"), **genuine_pause, true);
  EXPECT_TRUE(eventually([&] { return counts("ignored_commands").value("replayed", 0) >= 1; }, 15s))
      << counts("ignored_commands");
  EXPECT_EQ(control_state(), "paused");

  // The devices start and wait (paused).
  for (auto& d : devices_) start(d);
  ASSERT_TRUE(eventually([&] { return obs.count("signed", cp::Phase::kWaiting) == 2; }, 30s)) << logs();
  std::vector<std::string> sig0_reports;
  while (auto ev = (*client)->next(500ms))
    if (ev->kind == mqtt::Event::Kind::kMessage && ev->message.topic == cp::events_topic(kFleet, "sig-0"))
      sig0_reports.push_back(ev->message.payload);
  ASSERT_GE(sig0_reports.size(), 2u);
  std::this_thread::sleep_for(1500ms);  // the controller took them

  // Forged reports: each claims a success.
  cp::Report forged;
  forged.device = "sig-0";
  forged.seq = 1000;
  forged.boot = "feedfacefeedface";
  forged.time = static_cast<trust::Time>(std::time(nullptr));
  forged.campaign = "signed";
  forged.phase = cp::Phase::kSucceeded;
  forged.version = "1.1.0";
  forged.slot = "b";
  forged.image_hash = content_hash(image_);
  send(cp::state_topic(kFleet, "sig-0"), cp::sign_report(forged, *attacker));  // wrong key
  forged.device = "sig-1";
  send(cp::state_topic(kFleet, "sig-1"), cp::encode_report(forged));  // unsigned
  forged.device = "ghost";
  send(cp::state_topic(kFleet, "ghost"), cp::sign_report(forged, *attacker));  // unregistered
  forged.device = "sig-0";
  forged.campaign = "another";
  send(cp::state_topic(kFleet, "sig-0"), cp::sign_report(forged, *dev0));  // the device's key, another campaign
  send(cp::state_topic(kFleet, "sig-0"), sig0_reports.front());  // sig-0's first report again: replayed
  ASSERT_TRUE(eventually([&] { return counts("dropped_reports").value("replayed", 0) >= 1; }, 15s))
      << counts("dropped_reports") << " first report: " << sig0_reports.front() << "\n" << logs();
  const Json dropped = counts("dropped_reports");
  EXPECT_EQ(dropped.value("bad_signature", 0), 1) << dropped;
  EXPECT_EQ(dropped.value("unsigned", 0), 1) << dropped;
  EXPECT_EQ(dropped.value("unregistered", 0), 1) << dropped;
  EXPECT_EQ(dropped.value("other_campaign", 0), 1) << dropped;
  EXPECT_EQ(dropped.value("malformed", 0), 0) << dropped;
  EXPECT_EQ(control_state(), "paused");
  for (auto& d : devices_) EXPECT_TRUE(untouched(d)) << d.id;

  // A signed resume: the campaign runs.
  auto res = ota({"campaign", "resume", "signed", "--fleet", kFleet, "--broker", broker_url(), "--key",
                  path("operator.key"), "--timeout", "30s"});
  ASSERT_EQ(res.exit_code, 0) << res.err << logs();
  ASSERT_EQ(controller_->wait(90s), 0) << logs();
  for (auto& d : devices_) EXPECT_TRUE(updated(d)) << d.id;
  EXPECT_EQ(decisions("signed"), (std::vector<std::string>{"pause", "ignored", "resume", "complete"}));

  // Only the two registered devices were counted, each success with its signed receipt.
  Json st = status("signed");
  EXPECT_EQ(st["security"], "signed");
  std::uint64_t targeted = 0, succeeded = 0;
  for (const auto& w : st["controller_status"]["waves"]) {
    targeted += w["targeted"].get<std::uint64_t>();
    succeeded += w["succeeded"].get<std::uint64_t>();
  }
  EXPECT_EQ(targeted, 2u);
  EXPECT_EQ(succeeded, 2u);
  validate("campaign-status.schema.json", {save("controller-status.json", st["controller_status"].dump())});
  validate("journal-record.schema.json", {path("campaigns/signed/journal.jsonl")});
  int receipts = 0;
  for (const auto& r : journal("signed")) {
    if (r["type"] != "result" || r["report"]["phase"] != "succeeded") continue;
    ASSERT_TRUE(r.contains("envelope")) << r;
    EXPECT_EQ(r["report"]["slot"], "b");
    EXPECT_EQ(r["report"]["image_hash"], to_hex(content_hash(image_)));
    ++receipts;
  }
  EXPECT_EQ(receipts, 2);
  (*client)->stop();
}

TEST_F(Campaigns, SecuredBrokerAclDeniedPublishIsDetectedAndTlsDevicesUpdate) {
  test::MosquittoOptions mo;
  mo.secured = true;
  mo.devices = {"tls-0", "tls-1"};
  start_broker(mo);
  const auto creds = [&](const std::string& user) {
    return std::vector<std::string>{"--username", user, "--password-file", broker_->password_file(user)};
  };
  // A device's credentials cannot publish a campaign: the broker acknowledges
  // (MQTT 3.1.1) or refuses (MQTT 5) it; either way ota publish fails with 61.

  // Devices over TLS with client certificates and their own passwords.
  for (const auto& id : mo.devices) {
    start(add_device(id, true, {{"broker", "mqtts://127.0.0.1:" + std::to_string(broker_->tls_port())},
                                {"username", id},
                                {"password_file", broker_->password_file(id)},
                                {"ca_file", broker_->ca_file()},
                                {"cert_file", broker_->cert_file(id)},
                                {"key_file", broker_->key_file(id)}}));
  }
  auto denied = publish("acl", creds("tls-0"));
  EXPECT_EQ(denied.exit_code, static_cast<int>(ErrorCode::kMqttRefused)) << denied.err;
  EXPECT_EQ(denied.err.find(broker_->password("tls-0")), std::string::npos);
  auto ok = publish("acl", creds("release"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  std::vector<std::string> run{kOta, "campaign", "run", "acl", "--broker", broker_url(), "--dir", path("campaigns"), "-q"};
  auto cc = creds("controller");
  run.insert(run.end(), cc.begin(), cc.end());
  controller_ = std::make_unique<Spawned>(run, path("controller.log"));
  ASSERT_EQ(controller_->wait(60s), 0) << logs() << broker_->log();
  for (auto& d : devices_) EXPECT_TRUE(eventually([&] { return updated(d); }, 10s)) << d.id;
}

}  // namespace
}  // namespace ota
