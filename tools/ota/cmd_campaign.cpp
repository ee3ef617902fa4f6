// ota publish and ota campaign run|status|pause|resume|abort: staged
// campaigns over MQTT (docs/protocol.md).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <thread>

#include "cli.hpp"
#include "ota/release/bundle.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/core/hash.hpp"
#include "ota/release/keys.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/release/trust.hpp"

namespace ota::cli {

namespace {

using OJson = nlohmann::ordered_json;
namespace cp = ota::campaign;

// Connection options every command that talks to the broker takes.
struct BrokerArgs {
  std::string url = "mqtt://127.0.0.1:1883";
  std::string ca, cert, key, username, password_file, client_id;
  std::string timeout = "30s";
  void add(CLI::App* cmd) {
    cmd->add_option("--broker", url, "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")->capture_default_str();
    cmd->add_option("--ca", ca, "TLS: the CA certificate that signed the broker's (PEM)");
    cmd->add_option("--cert", cert, "TLS client certificate (PEM)");
    cmd->add_option("--cert-key", key, "TLS client certificate's private key (PEM)");
    cmd->add_option("--username", username, "Broker user name");
    cmd->add_option("--password-file", password_file, "Read the broker password from this file (first line)");
    cmd->add_option("--client-id", client_id, "MQTT client id (default: a name derived from the command)");
    cmd->add_option("--timeout", timeout, "How long to wait for the broker (and the controller)")->capture_default_str();
  }
  Result<mqtt::Options> options(const std::string& default_id) const {
    mqtt::Options o;
    o.ca_file = ca;
    o.cert_file = cert;
    o.key_file = key;
    o.tls = !ca.empty() || !cert.empty();
    o.username = username;
    o.client_id = client_id.empty() ? default_id : client_id;
    if (!password_file.empty()) {
      PassphraseSource src;
      src.file = password_file;
      auto p = read_passphrase(src);
      if (!p) return fail(p.error().with_context("--password-file"));
      if (*p) o.password = **p;
    }
    return mqtt::parse_broker_url(url, o);
  }
  Result<std::chrono::milliseconds> wait() const {
    auto d = cp::parse_duration(timeout);
    if (!d) return fail(d.error().with_context("--timeout"));
    return std::chrono::milliseconds(*d * 1000);
  }
};

std::string random_suffix() {
  auto k = keys::SecretKey::generate();
  if (!k) return std::to_string(::getpid());
  return to_hex(ByteSpan(k->public_key().bytes.data(), 6));
}

Result<std::unique_ptr<mqtt::Client>> connect_broker(const BrokerArgs& b, const std::string& id) {
  OTA_TRY_ASSIGN(auto o, b.options(id));
  // A password to a broker without TLS (mqtt.hpp: none for loopback hosts).
  if (auto w = mqtt::insecure_password_warning(o)) std::fprintf(stderr, "ota: %s\n", w->c_str());
  OTA_TRY_ASSIGN(auto wait, b.wait());
  auto c = mqtt::connect(o);
  if (!c) return fail(c.error());
  OTA_TRY(mqtt::wait_connected(**c, wait));
  return c;
}

std::string campaign_dir(const std::string& dir, const std::string& id) { return dir + "/" + id; }

// ---- ota publish ----

struct PublishArgs {
  std::string bundle, fleet, id, url, store, waves = "1,10,50,100", trust_path, dir = "campaigns";
  double success = 0.95, failure = 0.05;
  std::uint32_t min_sample = 1;
  std::string soak = "0s", device_timeout = "1h", expires = "30d";
  bool abort_on_failure = false;
  std::uint64_t revision = 0;
  std::vector<std::string> keys;
  std::vector<std::string> root_updates;
  std::string control_ttl = "15m";
  PassphraseSource pass;
  BrokerArgs broker;
};

Result<std::string> store_bundle(const std::string& path, const std::string& store, const Digest& hash) {
  const std::string name = to_hex(hash) + ".otb";
  const std::string dest = store + "/" + name;
  if (::access(dest.c_str(), F_OK) == 0) return name;
  OTA_TRY_ASSIGN(auto in, FileReader::open(path));
  OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(dest, 0644));
  OTA_TRY_ASSIGN(auto n, copy(*in, *out));
  OTA_TRY((out)->commit());
  return name;
}

Status run_publish(const Context& ctx, const PublishArgs& a, OJson& out) {
  if (!cp::is_valid_name(a.fleet) || !cp::is_valid_name(a.id))
    return fail(ErrorCode::kUsage, "--fleet and --campaign are names: [A-Za-z0-9._-]{1,64}");
  if (a.url.empty()) return fail(ErrorCode::kUsage, "--url is required: where devices fetch the bundle (with --store: the base URL that serves DIR)");
  auto waves = cp::parse_waves(a.waves);
  if (!waves) return fail(waves.error().with_context("--waves"));
  auto soak = cp::parse_duration(a.soak);
  if (!soak) return fail(soak.error().with_context("--soak"));
  auto dt = cp::parse_duration(a.device_timeout);
  if (!dt) return fail(dt.error().with_context("--device-timeout"));
  auto exp = cp::parse_duration(a.expires);
  if (!exp) return fail(exp.error().with_context("--expires"));
  auto ttl = cp::parse_duration(a.control_ttl);
  if (!ttl) return fail(ttl.error().with_context("--control-ttl"));
  std::vector<trust::Envelope> roots;
  for (const auto& path : a.root_updates) {
    auto bytes = read_file(path);
    if (!bytes) return fail(bytes.error().with_context("--root-update"));
    auto e = trust::parse_envelope(std::string(bytes->begin(), bytes->end()));
    if (!e) return fail(e.error().with_context(path));
    if (e->payload_type != trust::kRootType) return fail(ErrorCode::kUsage, path + " is not a trust root");
    roots.push_back(std::move(*e));
  }
  if (a.keys.empty()) return fail(ErrorCode::kUsage, "--key: a release key must sign the campaign");

  // The bundle must verify before anyone is told to fetch it.
  auto trust = trust::TrustStore::load(a.trust_path);
  if (!trust) return fail(trust.error());
  const trust::Time now = static_cast<trust::Time>(std::time(nullptr));
  bundle::VerifyOptions vo;
  vo.policy.now = now;
  auto verified = bundle::verify_file(a.bundle, *trust, vo, false);
  if (!verified) return fail(verified.error().with_context(a.bundle));
  // The manifest's content hash names the release; the file's names the copy in --store.
  OTA_TRY_ASSIGN(auto src, FileSource::open(a.bundle));
  const std::uint64_t size = (src)->size();
  OTA_TRY_ASSIGN(auto file_hash, content_hash(*src));
  Digest manifest_hash{};
  {
    OTA_TRY_ASSIGN(auto in, FileReader::open(a.bundle));
    OTA_TRY_ASSIGN(auto br, bundle::BundleReader::open(*in));
    manifest_hash = content_hash((br)->manifest_bytes());
  }

  std::string url = a.url;
  if (!a.store.empty()) {
    auto name = store_bundle(a.bundle, a.store, file_hash);
    if (!name) return fail(name.error().with_context("--store"));
    url = a.url + (a.url.back() == '/' ? "" : "/") + *name;
  }

  const std::string dir = campaign_dir(a.dir, a.id);
  OTA_TRY_ASSIGN(auto controller, cp::prepare_directory(dir));

  OTA_TRY_ASSIGN(auto client, connect_broker(a.broker, "ota-publish-" + random_suffix()));
  OTA_TRY_ASSIGN(auto wait, a.broker.wait());

  cp::Campaign c;
  c.id = a.id;
  c.fleet = a.fleet;
  c.revision = a.revision;
  if (c.revision == 0) {
    // The next revision after the one the broker holds (a republication).
    OTA_TRY_ASSIGN(auto held,
                   mqtt::read_retained(*client, cp::campaign_topic(a.fleet, a.id), std::chrono::milliseconds(1500)));
    c.revision = 1;
    if (held) {
      auto d = cp::parse_document(*held);
      if (d) {
        auto old = cp::verify_document(*trust, *d, now);
        if (old) c.revision = old->campaign.revision + 1;
      }
    }
  }
  c.created = now;
  c.expires = now + *exp;
  c.manifest_hash = manifest_hash;
  c.version = verified->manifest.version;
  c.hardware = verified->manifest.hardware;
  c.url = url;
  c.bundle_size = size;
  c.waves = *waves;
  c.gates = cp::Gates{a.success, a.failure, a.min_sample, *soak, *dt, a.abort_on_failure};
  c.controller = controller;
  c.control_ttl_s = *ttl;
  OTA_TRY(cp::validate(c));

  trust::Envelope env;
  env.payload_type = std::string(cp::kCampaignType);
  env.payload = cp::encode_campaign(c);
  OTA_TRY(trust::sign_with_keys(cp::kCampaignType, env.payload, a.keys, passphrase_of(a.pass), env.signatures));
  // What devices will check: the threshold under the trust root.
  OTA_TRY_CTX(trust->verify(cp::kCampaignType, env.payload, env.signatures), "campaign signatures");

  OTA_TRY_ASSIGN(auto control, cp::initial_control(dir, c, now));
  const std::string doc = cp::encode_document({env, control, roots});
  OTA_TRY(cp::journal_publication(dir, doc, now));
  mqtt::Message m{cp::campaign_topic(a.fleet, a.id), doc, 1, true, 0, {}};
  OTA_TRY(mqtt::publish_retained_checked(*client, m, wait));
  (client)->stop();

  out["ok"] = true;
  out["command"] = "publish";
  out["campaign"] = c.id;
  out["fleet"] = c.fleet;
  out["revision"] = c.revision;
  out["topic"] = m.topic;
  out["url"] = c.url;
  out["manifest_hash"] = to_hex(c.manifest_hash);
  out["version"] = c.version;
  OJson w = OJson::array();
  for (auto p : c.waves) w.push_back(static_cast<double>(p) / 100.0);
  out["waves"] = w;
  out["expires"] = trust::format_time(c.expires);
  out["controller_key"] = to_hex(c.controller.id());
  out["directory"] = dir;
  (void)ctx;
  return ok();
}

// ---- ota campaign run ----

volatile bool g_stop = false;
void on_signal(int) { g_stop = true; }

struct RunArgs {
  std::string id, dir = "campaigns";
  bool exit_on_pause = false;
  BrokerArgs broker;
};

OJson snapshot_json(const cp::Snapshot& s) { return OJson::parse(cp::encode_status(s)); }

std::string summary_line(const cp::Snapshot& s) {
  std::string line = std::string(cp::run_state_name(s.state.control.state)) + ", wave " +
                     std::to_string(s.state.control.wave + 1) + "/" + std::to_string(s.waves.size());
  for (std::size_t i = 0; i < s.waves.size(); ++i) {
    const auto& w = s.waves[i];
    line += " | " + cp::format_percent(s.campaign.waves[i]) + ": " + std::to_string(w.succeeded) + " ok " +
            std::to_string(w.failures()) + " failed " + std::to_string(w.pending) + " pending";
  }
  return line;
}

int run_controller(const Context& ctx, const RunArgs& a) {
  auto ctl = cp::Controller::open(campaign_dir(a.dir, a.id));
  if (!ctl) return report(ctx, "campaign run", ctl.error());
  const auto snap0 = (*ctl)->snapshot(static_cast<trust::Time>(std::time(nullptr)));
  auto client = connect_broker(a.broker, "ota-controller-" + snap0.campaign.fleet + "-" + a.id);
  if (!client) return report(ctx, "campaign run", client.error());
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  const bool tty = !ctx.quiet && !ctx.json && ::isatty(STDERR_FILENO);
  cp::RunOptions o;
  o.exit_on_pause = a.exit_on_pause;
  o.stop = &g_stop;
  o.log = [&](const std::string& line) {
    if (!ctx.quiet && !ctx.json) std::fprintf(stderr, "%s%s\n", tty ? "\r\033[K" : "", line.c_str());
  };
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
        auto r = cp::parse_report(m.payload);
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
    out["control"] = {{"revision", v->control.revision},
                      {"state", std::string(cp::run_state_name(v->control.state))},
                      {"wave", v->control.wave},
                      {"reason", v->control.reason},
                      {"issued", trust::format_time(v->control.issued)}};
    out["controller_status"] = (status_text && *status_text) ? OJson::parse(**status_text, nullptr, false) : OJson(nullptr);
    if (a.devices) {
      OJson devs = OJson::array();
      for (const auto& [id, dv] : view)
        devs.push_back({{"device", id},
                        {"wave", dv.wave},
                        {"phase", std::string(cp::phase_name(dv.phase))},
                        {"version", dv.version},
                        {"reason", dv.reason},
                        {"online", online.count(id) ? OJson(online[id]) : OJson(nullptr)}});
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
      const OJson& cs = out["controller_status"];
      if (cs.is_object() && cs.contains("waves")) {
        std::printf("%-8s %-5s %9s %9s %11s %7s %8s %8s\n", "wave", "open", "targeted", "succeeded", "rolled-back",
                    "failed", "aborted", "pending");
        for (const auto& w : cs["waves"]) {
          std::printf("%-8s %-5s %9llu %9llu %11llu %7llu %8llu %8llu\n",
                      cp::format_percent(static_cast<std::uint32_t>(w.value("percent", 0.0) * 100.0 + 0.5)).c_str(),
                      w.value("open", false) ? "yes" : "no", w.value("targeted", 0ull), w.value("succeeded", 0ull),
                      w.value("rolled_back", 0ull), w.value("failed", 0ull), w.value("aborted", 0ull),
                      w.value("pending", 0ull));
        }
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
  mqtt::Message m{cp::commands_topic(a.fleet, a.id), cp::encode_command(c), 1, true, 0, {}};
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
  auto p = std::make_shared<PublishArgs>();
  auto* pub = app.add_subcommand("publish", "Publish a signed staged campaign for a bundle to an MQTT broker");
  pub->footer(
      "Verifies the bundle, signs the campaign with the release keys, creates the campaign directory\n"
      "(DIR/ID: the controller key and the journal) and publishes the retained campaign document,\n"
      "then reads it back (an ACL-refused publish is an error, exit 61).\n"
      "Example:\n  ota publish fw-1.1.otb --broker mqtt://127.0.0.1:1883 --fleet meters --campaign fw-1.1 \\\n"
      "    --waves 1,10,50,100 --store /srv/www/bundles --url http://updates.example.com/bundles \\\n"
      "    --trust root.json --key release-1.key --key release-2.key");
  pub->add_option("BUNDLE", p->bundle, "The signed bundle")->required()->check(CLI::ExistingFile);
  pub->add_option("--fleet", p->fleet, "Fleet name (topic prefix ota/FLEET/)")->required();
  pub->add_option("--campaign", p->id, "Campaign id")->required();
  pub->add_option("--waves", p->waves, "Cumulative percentages of the fleet per wave")->capture_default_str();
  pub->add_option("--url", p->url, "Where devices fetch the bundle (with --store: the base URL serving DIR)");
  pub->add_option("--store", p->store, "Copy the bundle into DIR as HASH.otb")->check(CLI::ExistingDirectory);
  pub->add_option("--trust", p->trust_path, "The trust root the bundle and the campaign must satisfy")->required();
  pub->add_option("--key", p->keys, "A release secret key (repeat to meet the threshold)")->required();
  p->pass.add_options(pub);
  pub->add_option("--success-threshold", p->success, "Successes / finished needed to open the next wave")->capture_default_str();
  pub->add_option("--failure-threshold", p->failure, "Failures / finished above this stop the campaign")->capture_default_str();
  pub->add_option("--min-sample", p->min_sample, "Finished devices of a wave before it is judged")->capture_default_str();
  pub->add_option("--soak", p->soak, "A wave stays open at least this long (90s, 15m, 2h, 7d)")->capture_default_str();
  pub->add_option("--device-timeout", p->device_timeout, "A device silent this long in an open wave counts as failed")
      ->capture_default_str();
  pub->add_option("--expires", p->expires, "The campaign expires after this long")->capture_default_str();
  pub->add_flag("--abort-on-failure", p->abort_on_failure, "The failure gate aborts instead of pausing");
  pub->add_option("--control-ttl", p->control_ttl,
                  "A running control document is valid this long; the controller signs it again every third of it")
      ->capture_default_str();
  pub->add_option("--root-update", p->root_updates,
                  "A trust root (root.json of a newer version) devices take before the campaign; repeat in order");
  pub->add_option("--revision", p->revision, "Campaign revision (default: one more than the broker holds)");
  pub->add_option("--dir", p->dir, "Campaign directories live here")->capture_default_str();
  p->broker.add(pub);
  pub->add_flag("-q,--quiet", ctx.quiet, "No output on success");
  pub->add_flag("--json", ctx.json, "Print the result as JSON");
  pub->callback([&ctx, &exit_code, p] {
    OJson out;
    auto st = run_publish(ctx, *p, out);
    if (!st) {
      exit_code = report(ctx, "publish", st.error());
      return;
    }
    if (ctx.json) print_json(out);
    else if (!ctx.quiet)
      std::printf("published campaign %s revision %llu for %s to %s\n", p->id.c_str(),
                  static_cast<unsigned long long>(out["revision"].get<std::uint64_t>()),
                  out["version"].get<std::string>().c_str(), out["topic"].get<std::string>().c_str());
    exit_code = 0;
  });

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
    cmd->add_flag("--no-wait", c->no_wait, "Do not wait for the controller to apply it");
    c->broker.add(cmd);
    cmd->add_flag("-q,--quiet", ctx.quiet, "No output");
    cmd->add_flag("--json", ctx.json, "Print JSON");
    std::string a = action;
    cmd->callback([&ctx, &exit_code, c, a] { exit_code = run_command(ctx, a, *c); });
  }
}

}  // namespace ota::cli
