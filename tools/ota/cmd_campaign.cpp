// ota campaign run|status|pause|resume|abort: driving a published campaign
// over MQTT (docs/protocol.md); `ota publish` is cmd_publish.cpp.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

#include "broker.hpp"
#include "cli.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/fleet/http_server.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/fleet/metrics.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/release/trust.hpp"

namespace ota::cli {

namespace {

using OJson = nlohmann::ordered_json;
namespace cp = ota::campaign;

std::string campaign_dir(const std::string& dir, const std::string& id) { return dir + "/" + id; }

// ---- ota campaign run ----

volatile bool g_stop = false;
void on_signal(int) { g_stop = true; }

struct RunArgs {
  std::string id, dir = "campaigns";
  bool exit_on_pause = false;
  std::string pace_step = "60s";
  std::string metrics;  // HOST:PORT to serve Prometheus metrics on, or empty
  BrokerArgs broker;
};

// The metrics text the controller last computed, for the server's thread.
class MetricsPage {
 public:
  void set(std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    text_ = std::move(text);
  }
  httpd::Response get(const std::string& path) const {
    if (path == "/metrics") {
      std::lock_guard<std::mutex> lock(mu_);
      return {200, cp::kMetricsContentType, text_};
    }
    if (path == "/") return {200, "text/plain; charset=utf-8", "ota campaign controller: metrics at /metrics\n"};
    return {404, "text/plain; charset=utf-8", "not found\n"};
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

OJson snapshot_json(const cp::Snapshot& s) { return OJson::parse(cp::encode_status(s)); }

std::string summary_line(const cp::Snapshot& s) {
  std::string line = std::string(cp::run_state_name(s.state.control.state)) + ", wave " +
                     std::to_string(s.state.control.wave + 1) + "/" + std::to_string(s.waves.size());
  for (std::size_t i = 0; i < s.waves.size(); ++i) {
    const auto& w = s.waves[i];
    line += " | " + cp::format_percent(s.campaign.waves[i]) + ": " + std::to_string(w.succeeded) + " ok " +
            std::to_string(w.failures()) + " failed " + std::to_string(w.pending) + " pending";
    if (s.campaign.revert_on_abort && w.reverting + w.reverted + w.revert_failed > 0)
      line += " " + std::to_string(w.reverted) + " reverted " + std::to_string(w.revert_failed) + " revert-failed";
  }
  return line;
}

int run_controller(const Context& ctx, const RunArgs& a) {
  if (!a.metrics.empty())
    if (auto addr = httpd::parse_listen_address(a.metrics); !addr)
      return report(ctx, "campaign run", addr.error().with_context("--metrics"));
  auto ctl = cp::Controller::open(campaign_dir(a.dir, a.id));
  if (!ctl) return report(ctx, "campaign run", ctl.error());
  const auto snap0 = (*ctl)->snapshot(static_cast<trust::Time>(std::time(nullptr)));
  auto client = connect_broker(a.broker, "ota-controller-" + snap0.campaign.fleet + "-" + a.id, cp::use_controller_queue);
  if (!client) return report(ctx, "campaign run", client.error());
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  const bool tty = !ctx.quiet && !ctx.json && ::isatty(STDERR_FILENO);
  cp::RunOptions o;
  o.exit_on_pause = a.exit_on_pause;
  {
    auto step = cp::parse_duration(a.pace_step);
    if (!step) return report(ctx, "campaign run", step.error().with_context("--pace-step"));
    if (*step < 1) return report(ctx, "campaign run", Error{ErrorCode::kUsage, "--pace-step is at least 1s"});
    o.pace_step = std::chrono::seconds(*step);
  }
  o.stop = &g_stop;
  o.log = [&](const std::string& line) {
    if (!ctx.quiet && !ctx.json) std::fprintf(stderr, "%s%s\n", tty ? "\r\033[K" : "", line.c_str());
  };
  // Prometheus metrics: served from the server's thread, computed on the controller's.
  MetricsPage page;
  std::unique_ptr<httpd::Server> metrics_server;
  if (!a.metrics.empty()) {
    page.set((*ctl)->metrics(static_cast<trust::Time>(std::time(nullptr)), 0));
    auto server = httpd::serve(a.metrics, [&page](const std::string& path) { return page.get(path); });
    if (!server) return report(ctx, "campaign run", server.error().with_context("--metrics"));
    metrics_server = std::move(*server);
    o.on_metrics = [&page](const std::string& text) { page.set(text); };
    o.log("metrics: " + metrics_server->url() + "/metrics");
  }
  o.change_devices = false;  // the summary line needs the counts only
  o.on_change = [&](const cp::Snapshot& s) {
    if (tty) std::fprintf(stderr, "\r\033[K%s", summary_line(s).c_str());
  };
  auto st = (*ctl)->run(**client, o);
  if (tty) std::fprintf(stderr, "\n");
  (*client)->stop();
  if (!st) return report(ctx, "campaign run", st.error());
  const auto snap = (*ctl)->snapshot(static_cast<trust::Time>(std::time(nullptr)));
  OJson doc;
  doc["ok"] = *st == cp::RunState::kCompleted;
  doc["command"] = "campaign run";
  doc["status"] = snapshot_json(snap);
  if (ctx.json) print_json(doc);
  else if (!ctx.quiet) std::printf("%s\n", summary_line(snap).c_str());
  switch (*st) {
    case cp::RunState::kCompleted: return 0;
    case cp::RunState::kAborted: return static_cast<int>(ErrorCode::kCampaignAborted);
    case cp::RunState::kPaused: return g_stop ? 0 : static_cast<int>(ErrorCode::kCampaignPaused);
    case cp::RunState::kRunning: return 0;
  }
  return 0;
}

// ---- ota campaign status ----

struct StatusArgs {
  std::string id, fleet, trust_path;
  bool watch = false, devices = false;
  BrokerArgs broker;
};

// Collects retained messages on a filter until none arrived for `quiet`.
std::vector<mqtt::Message> collect(mqtt::Client& c, const std::string& filter, std::chrono::milliseconds quiet,
                                   std::chrono::milliseconds limit) {
  std::vector<mqtt::Message> out;
  if (!c.subscribe(filter, 1)) return out;
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    auto ev = c.next(quiet);
    if (!ev) break;
    if (ev->kind == mqtt::Event::Kind::kMessage) out.push_back(ev->message);
  }
  return out;
}

int run_status(const Context& ctx, const StatusArgs& a) {
  auto client = connect_broker(a.broker, "ota-status-" + random_suffix());
  if (!client) return report(ctx, "campaign status", client.error());
  auto wait = a.broker.wait();
  for (;;) {
    auto doc_text = mqtt::read_retained(**client, cp::campaign_topic(a.fleet, a.id), std::chrono::milliseconds(2000));
    if (!doc_text) return report(ctx, "campaign status", doc_text.error());
    if (!*doc_text)
      return report(ctx, "campaign status", Error{ErrorCode::kUsage, "no campaign " + a.id + " in fleet " + a.fleet});
    auto d = cp::parse_document(**doc_text);
    if (!d) return report(ctx, "campaign status", d.error());
    // Verified when a trust root is given; otherwise shown as the broker holds it.
    Result<cp::Verified> v = fail(ErrorCode::kInternal, "");
    bool verified = false;
    if (!a.trust_path.empty()) {
      auto trust = trust::TrustStore::load(a.trust_path);
      if (!trust) return report(ctx, "campaign status", trust.error());
      v = cp::verify_document(*trust, *d, static_cast<trust::Time>(std::time(nullptr)));
      if (!v) return report(ctx, "campaign status", v.error());
      verified = true;
    } else {
      auto c = cp::parse_campaign(d->campaign.payload);
      if (!c) return report(ctx, "campaign status", c.error());
      auto k = cp::parse_control(d->control.payload);
      if (!k) return report(ctx, "campaign status", k.error());
      v = cp::Verified{*c, *k};
    }
    auto status_text = mqtt::read_retained(**client, cp::status_topic(a.fleet, a.id), std::chrono::milliseconds(1000));
    std::map<std::string, cp::DeviceView> view;
    std::map<std::string, bool> online;
    if (a.devices) {
      for (const auto& m : collect(**client, "ota/" + a.fleet + "/devices/+/state", std::chrono::milliseconds(500),
                                   std::chrono::seconds(10))) {
        // Shown as the devices sent them (the controller's status counts only verified ones).
        auto r = cp::read_report_unverified(m.payload);
        if (r && m.topic == cp::state_topic(a.fleet, r->device)) cp::observe(view, v->campaign, *r);
      }
      (void)(*client)->unsubscribe("ota/" + a.fleet + "/devices/+/state");
      // Online or not: the retained availability, unless it is a stale last
      // will (from a boot session the device has since replaced).
      for (const auto& m : collect(**client, "ota/" + a.fleet + "/devices/+/availability", std::chrono::milliseconds(500),
                                   std::chrono::seconds(10))) {
        auto av = cp::parse_availability(m.payload);
        if (!av || m.topic != cp::availability_topic(a.fleet, av->device)) continue;
        auto it = view.find(av->device);
        if (it == view.end()) continue;
        online[av->device] = av->online || av->boot != it->second.boot;
      }
      (void)(*client)->unsubscribe("ota/" + a.fleet + "/devices/+/availability");
    }
    OJson out;
    out["ok"] = true;
    out["command"] = "campaign status";
    out["campaign"] = v->campaign.id;
    out["fleet"] = v->campaign.fleet;
    out["verified"] = verified;
    out["revision"] = v->campaign.revision;
    out["version"] = v->campaign.version;
    out["url"] = v->campaign.url;
    out["expires"] = trust::format_time(v->campaign.expires);
    out["security"] = v->campaign.security ? "signed" : "unsigned";
    out["advisory"] = v->campaign.advisory ? OJson{{"ids", v->campaign.advisory->ids}, {"text", v->campaign.advisory->advisory}}
                                           : OJson(nullptr);
    out["control"] = {{"revision", v->control.revision},
                      {"state", std::string(cp::run_state_name(v->control.state))},
                      {"wave", v->control.wave},
                      {"reason", v->control.reason},
                      {"issued", trust::format_time(v->control.issued)}};
    out["controller_status"] = (status_text && *status_text) ? OJson::parse(**status_text, nullptr, false) : OJson(nullptr);
    if (a.devices) {
      OJson devs = OJson::array();
      for (const auto& [id, dv] : view) {
        devs.push_back({{"device", id},
                        {"wave", dv.wave},
                        {"phase", std::string(cp::phase_name(dv.phase))},
                        {"version", dv.version},
                        {"reason", dv.reason},
                        {"online", online.count(id) ? OJson(online[id]) : OJson(nullptr)}});
        if (dv.signals)
          devs.back()["signals"] = {{"observed_s", dv.signals->observed_s},
                                    {"health_failures", dv.signals->health_failures},
                                    {"unexpected_reboots", dv.signals->unexpected_reboots},
                                    {"counter", dv.signals->counter}};
      }
      out["devices"] = devs;
    }
    if (ctx.json) {
      print_json(out);
    } else if (!ctx.quiet) {
      std::printf("campaign %s (fleet %s) revision %llu: %s %s, %s, wave %u of %zu open%s\n", v->campaign.id.c_str(),
                  v->campaign.fleet.c_str(), static_cast<unsigned long long>(v->campaign.revision),
                  v->campaign.version.c_str(), verified ? "(signatures verified)" : "(not verified: no --trust)",
                  std::string(cp::run_state_name(v->control.state)).c_str(), v->control.wave + 1,
                  v->campaign.waves.size(), v->control.reason.empty() ? "" : ("; " + v->control.reason).c_str());
      if (v->campaign.advisory) {
        std::string ids;
        for (const auto& id : v->campaign.advisory->ids) ids += (ids.empty() ? "" : ", ") + id;
        const std::string& text = v->campaign.advisory->advisory;
        std::printf("security update: %s: %s\n", ids.c_str(), text.substr(0, text.find('\n')).c_str());
      }
      const OJson& cs = out["controller_status"];
      if (cs.is_object() && cs.contains("waves")) {
        std::printf("%-8s %-5s %9s %9s %11s %7s %8s %8s %9s %8s\n", "wave", "open", "targeted", "succeeded", "rolled-back",
                    "failed", "aborted", "pending", "reverting", "reverted");
        unsigned long long reverted = 0, revert_failed = 0;
        for (const auto& w : cs["waves"]) {
          std::printf("%-8s %-5s %9llu %9llu %11llu %7llu %8llu %8llu %9llu %8llu\n",
                      cp::format_percent(static_cast<std::uint32_t>(w.value("percent", 0.0) * 100.0 + 0.5)).c_str(),
                      w.value("open", false) ? "yes" : "no", w.value("targeted", 0ull), w.value("succeeded", 0ull),
                      w.value("rolled_back", 0ull), w.value("failed", 0ull), w.value("aborted", 0ull),
                      w.value("pending", 0ull), w.value("reverting", 0ull), w.value("reverted", 0ull));
          reverted += w.value("reverted", 0ull);
          revert_failed += w.value("revert_failed", 0ull);
        }
        if (cs.contains("pace") && cs["pace"].is_object()) {
          const OJson& pc = cs["pace"];
          std::printf("paced (%llu devices, %llu bytes per minute; 0: no limit): %llu let in (about %llu bytes), %llu waiting for their turn\n",
                      pc.value("devices_per_minute", 0ull), pc.value("bytes_per_minute", 0ull), pc.value("admitted", 0ull),
                      pc.value("admitted_bytes", 0ull), pc.value("held", 0ull));
        }
        if (cs.contains("regression") && cs["regression"].is_object()) {
          const OJson& rg = cs["regression"];
          std::printf("regression: %llu of %llu updated regressed, %llu of %llu in the control group; z %.2f (threshold %.2f, "
                      "margin %.3f, min sample %llu)%s\n",
                      rg.value("updated_regressed", 0ull), rg.value("updated", 0ull), rg.value("control_regressed", 0ull),
                      rg.value("control", 0ull), rg.value("z", 0.0), rg.value("z_threshold", 0.0), rg.value("margin", 0.0),
                      rg.value("min_sample", 0ull), rg.value("accepted", false) ? "; accepted by an operator" : "");
        }
        if (v->campaign.revert_on_abort)
          std::printf("revert on abort: %llu reverted, %llu revert-failed\n", reverted, revert_failed);
      } else {
        std::printf("no status from a controller yet (is `ota campaign run` running?)\n");
      }
      if (a.devices)
        for (const auto& [id, dv] : view)
          std::printf("  %-24s wave %zu (%s)  %-8s %s%s\n", id.c_str(), dv.wave + 1,
                      cp::format_percent(v->campaign.waves[dv.wave]).c_str(),
                      !online.count(id) ? "" : online[id] ? "online" : "offline",
                      std::string(cp::phase_name(dv.phase)).c_str(), dv.reason.empty() ? "" : (": " + dv.reason).c_str());
    }
    std::fflush(stdout);
    if (!a.watch) break;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    if (!wait) break;
  }
  (*client)->stop();
  return 0;
}

// ---- ota campaign pause|resume|abort ----

struct CommandArgs {
  std::string id, fleet, reason;
  std::string key;           // the operator key that signs it
  std::string valid = "1d";  // how long the signed command may wait for the controller
  PassphraseSource pass;
  bool no_wait = false;
  BrokerArgs broker;
};

int run_command(const Context& ctx, const std::string& action, const CommandArgs& a) {
  const std::string name = "campaign " + action;
  auto client = connect_broker(a.broker, "ota-" + action + "-" + random_suffix());
  if (!client) return report(ctx, name, client.error());
  auto wait = a.broker.wait();
  if (!wait) return report(ctx, name, wait.error());
  cp::Command c;
  c.id = random_suffix() + random_suffix();
  c.action = action;
  c.time = static_cast<trust::Time>(std::time(nullptr));
  c.reason = a.reason;
  c.campaign = a.id;
  c.fleet = a.fleet;
  std::string payload;
  if (!a.key.empty()) {
    auto valid = cp::parse_duration(a.valid);
    if (!valid || *valid <= 0) return report(ctx, name, Error{ErrorCode::kUsage, "--valid-for: a duration such as 1h or 1d"});
    c.expires = c.time + *valid;
    auto pass = read_passphrase(a.pass);
    if (!pass) return report(ctx, name, pass.error());
    auto k = keys::load_secret(a.key, *pass ? std::optional<std::string_view>(**pass) : std::nullopt);
    if (*pass) keys::wipe((*pass)->data(), (*pass)->size());
    if (!k) return report(ctx, name, k.error().with_context("--key " + a.key));
    payload = cp::sign_command(c, *k);
  } else {
    // A signed campaign obeys only signed commands: say so now rather than time out.
    auto doc = mqtt::read_retained(**client, cp::campaign_topic(a.fleet, a.id), std::chrono::milliseconds(2000));
    if (doc && *doc) {
      auto d = cp::parse_document(**doc);
      auto camp = d ? cp::parse_campaign(d->campaign.payload) : Result<cp::Campaign>(fail(ErrorCode::kMalformed, ""));
      if (camp && camp->security)
        return report(ctx, name, Error{ErrorCode::kUsage, "campaign " + a.id +
                                                              " obeys only commands signed by an operator key: --key"});
    }
    payload = cp::encode_command(c);
  }
  mqtt::Message m{cp::commands_topic(a.fleet, a.id), payload, 1, true, 0, {}};
  if (auto st = mqtt::publish_retained_checked(**client, m, *wait); !st) return report(ctx, name, st.error());
  const cp::RunState want = action == "pause" ? cp::RunState::kPaused
                            : action == "abort" ? cp::RunState::kAborted
                                                : cp::RunState::kRunning;
  std::string state = "requested";
  if (!a.no_wait) {
    // Applied when the controller's document shows it.
    const auto end = std::chrono::steady_clock::now() + *wait;
    bool seen = false;
    while (!seen && std::chrono::steady_clock::now() < end) {
      auto doc = mqtt::read_retained(**client, cp::campaign_topic(a.fleet, a.id), std::chrono::milliseconds(1000));
      if (doc && *doc) {
        auto d = cp::parse_document(**doc);
        if (d) {
          auto k = cp::parse_control(d->control.payload);
          if (k && (k->state == want || (action != "resume" && k->state == cp::RunState::kAborted))) seen = true;
        }
      }
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    if (!seen)
      return report(ctx, name, Error{ErrorCode::kTimedOut, "the controller did not apply the " + action + " within " +
                                                               a.broker.timeout + " (is `ota campaign run " + a.id +
                                                               "` running?); the request stays queued"});
    state = std::string(cp::run_state_name(want));
  }
  (*client)->stop();
  if (ctx.json) print_json(OJson{{"ok", true}, {"command", name}, {"campaign", a.id}, {"command_id", c.id}, {"state", state}});
  else if (!ctx.quiet) std::printf("campaign %s: %s\n", a.id.c_str(), state.c_str());
  return 0;
}

}  // namespace

void add_campaign_commands(CLI::App& app, Context& ctx, int& exit_code) {
  auto* camp = app.add_subcommand("campaign", "Drive a published campaign: run the controller, status, pause, resume, abort");
  camp->require_subcommand(1);
  camp->footer("Example:\n  ota campaign status fw-1.1 --fleet meters --devices");

  auto r = std::make_shared<RunArgs>();
  auto* run = camp->add_subcommand("run", "The controller: apply the gates, open waves, pause or abort");
  run->footer(
      "Exit 0 when the campaign completes, 63 when it is aborted, 64 when it pauses with --exit-on-pause.\n"
      "Killed and started again, it rebuilds its state from DIR/ID/journal.jsonl and the retained device states.\n"
      "Example:\n  ota campaign run fw-1.1 --broker mqtt://127.0.0.1:1883");
  run->add_option("ID", r->id, "Campaign id")->required();
  run->add_option("--dir", r->dir, "Campaign directories live here")->capture_default_str();
  run->add_flag("--exit-on-pause", r->exit_on_pause, "Exit (64) when the campaign pauses instead of waiting for resume");
  run->add_option("--metrics", r->metrics,
                  "Serve Prometheus metrics on HOST:PORT at /metrics while the campaign runs (e.g. 127.0.0.1:9464; "
                  "port 0 picks one, shown on stderr)");
  run->add_option("--pace-step", r->pace_step,
                  "Paced campaigns: let more devices in this often (each step signs a new control; the rates stay "
                  "per minute)")
      ->capture_default_str();
  r->broker.add(run);
  run->add_flag("-q,--quiet", ctx.quiet, "No output");
  run->add_flag("--json", ctx.json, "Print the final status as JSON");
  run->callback([&ctx, &exit_code, r] { exit_code = run_controller(ctx, *r); });

  auto s = std::make_shared<StatusArgs>();
  auto* status = camp->add_subcommand("status", "A campaign's state and counts per wave");
  status->footer("Example:\n  ota campaign status fw-1.1 --fleet meters --devices --trust root.json");
  status->add_option("ID", s->id, "Campaign id")->required();
  status->add_option("--fleet", s->fleet, "Fleet name")->required();
  status->add_option("--trust", s->trust_path, "Verify the campaign document against this trust root");
  status->add_flag("--devices", s->devices, "List the devices that reported, with their wave and phase");
  status->add_flag("--watch", s->watch, "Print again every 2 seconds until interrupted");
  s->broker.add(status);
  status->add_flag("-q,--quiet", ctx.quiet, "No output");
  status->add_flag("--json", ctx.json, "Print JSON");
  status->callback([&ctx, &exit_code, s] { exit_code = run_status(ctx, *s); });

  for (const char* action : {"pause", "resume", "abort"}) {
    auto c = std::make_shared<CommandArgs>();
    const std::string help = std::string(action) == "pause"    ? "Stop opening waves; devices not started wait"
                             : std::string(action) == "resume" ? "Resume a paused campaign (accepting the failures so far)"
                                                               : "Abort: devices not started skip it, devices mid-install stop and keep their old image";
    auto* cmd = camp->add_subcommand(action, help);
    cmd->footer(std::string("Waits until the controller applied it (exit 65 after --timeout).\nExample:\n  ota campaign ") +
                action + " fw-1.1 --fleet meters --broker mqtt://127.0.0.1:1883");
    cmd->add_option("ID", c->id, "Campaign id")->required();
    cmd->add_option("--fleet", c->fleet, "Fleet name")->required();
    cmd->add_option("--reason", c->reason, "Recorded in the journal and the document");
    cmd->add_option("--key", c->key, "The operator secret key that signs the command (required by signed campaigns)");
    c->pass.add_options(cmd);
    cmd->add_option("--valid-for", c->valid, "A signed command expires after this long (waiting for a controller)")
        ->capture_default_str();
    cmd->add_flag("--no-wait", c->no_wait, "Do not wait for the controller to apply it");
    c->broker.add(cmd);
    cmd->add_flag("-q,--quiet", ctx.quiet, "No output");
    cmd->add_flag("--json", ctx.json, "Print JSON");
    std::string a = action;
    cmd->callback([&ctx, &exit_code, c, a] { exit_code = run_command(ctx, a, *c); });
  }
  add_campaign_view_commands(camp, ctx, exit_code);
}

}  // namespace ota::cli
