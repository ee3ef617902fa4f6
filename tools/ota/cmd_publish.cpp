// ota publish: a signed staged campaign for a bundle, retained on the
// fleet's MQTT broker (docs/protocol.md). The work is the library's
// (ota/fleet/publish.hpp); this file parses the options and prints.
#include <cstdio>
#include <ctime>
#include <memory>

#include "broker.hpp"
#include "cli.hpp"
#include "ota/core/hash.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/publish.hpp"
#include "ota/release/trust.hpp"

namespace ota::cli {

namespace {

using OJson = nlohmann::ordered_json;
namespace cp = ota::campaign;

struct PublishArgs {
  std::string bundle, fleet, id, url, store, waves = "1,10,50,100", trust_path, dir = "campaigns";
  double success = 0.95, failure = 0.05;
  std::uint32_t min_sample = 1;
  std::string soak = "0s", device_timeout = "1h", expires = "30d";
  bool abort_on_failure = false;
  bool revert_on_abort = false;
  std::uint64_t revision = 0;
  std::vector<std::string> keys;
  std::vector<std::string> root_updates;
  std::string control_ttl = "15m";
  std::string registry;
  std::vector<std::string> operators;
  bool unsigned_mode = false;
  std::uint64_t devices_per_minute = 0;
  std::string bytes_per_minute;
  // The devices' rollout policy.
  std::vector<std::string> windows, defer_on;
  std::string timezone, start_delay, max_age;
  bool download_early = false;
  // Regression gate: on when --regression-window is given.
  std::string regression_window, regression_interval = "5m";
  double regression_margin = 0.05, regression_z = 1.645;
  std::uint32_t regression_min_sample = 20;
  bool regression_abort = false;
  PassphraseSource pass;
  BrokerArgs broker;
};

Status run_publish(const PublishArgs& a, OJson& out) {
  if (!cp::is_valid_name(a.fleet) || !cp::is_valid_name(a.id))
    return fail(ErrorCode::kUsage, "--fleet and --campaign are names: [A-Za-z0-9._-]{1,64}");
  if (a.url.empty()) return fail(ErrorCode::kUsage, "--url is required: where devices fetch the bundle (with --store: the base URL that serves DIR)");
  cp::PublishRequest r;
  auto waves = cp::parse_waves(a.waves);
  if (!waves) return fail(waves.error().with_context("--waves"));
  r.waves = std::move(*waves);
  auto soak = cp::parse_duration(a.soak);
  if (!soak) return fail(soak.error().with_context("--soak"));
  auto dt = cp::parse_duration(a.device_timeout);
  if (!dt) return fail(dt.error().with_context("--device-timeout"));
  auto exp = cp::parse_duration(a.expires);
  if (!exp) return fail(exp.error().with_context("--expires"));
  auto ttl = cp::parse_duration(a.control_ttl);
  if (!ttl) return fail(ttl.error().with_context("--control-ttl"));
  for (const auto& path : a.root_updates) {
    auto bytes = read_file(path);
    if (!bytes) return fail(bytes.error().with_context("--root-update"));
    auto e = trust::parse_envelope(std::string(bytes->begin(), bytes->end()));
    if (!e) return fail(e.error().with_context(path));
    if (e->payload_type != trust::kRootType) return fail(ErrorCode::kUsage, path + " is not a trust root");
    r.root_updates.push_back(std::move(*e));
  }
  if (a.keys.empty()) return fail(ErrorCode::kUsage, "--key: a release key must sign the campaign");
  // Signed reports and commands unless the old unsigned mode is asked for by name.
  if (a.unsigned_mode && (!a.registry.empty() || !a.operators.empty()))
    return fail(ErrorCode::kUsage, "--unsigned excludes --registry and --operator");
  if (!a.unsigned_mode && (a.registry.empty() || a.operators.empty()))
    return fail(ErrorCode::kUsage,
                "--registry and --operator are required: devices sign their reports and operators their commands "
                "(--unsigned for the old mode, where a broker credential can forge both)");
  for (const auto& path : a.operators) {
    auto k = keys::load_public(path);
    if (!k) return fail(k.error().with_context("--operator " + path));
    r.operators.push_back(*k);
  }
  r.registry_path = a.registry;
  r.devices_per_minute = a.devices_per_minute;
  if (!a.windows.empty() || !a.defer_on.empty() || !a.timezone.empty() || !a.start_delay.empty() || !a.max_age.empty() ||
      a.download_early) {
    cp::Policy pol;
    for (const auto& w : a.windows) {
      auto pw = cp::parse_window(w);
      if (!pw) return fail(pw.error().with_context("--window"));
      pol.windows.push_back(*pw);
    }
    if (!a.timezone.empty()) {
      if (!cp::is_valid_zone_name(a.timezone))
        return fail(ErrorCode::kUsage, "--timezone: UTC, local (each device's configured zone) or an IANA name");
      // A named zone must resolve here too (devices need it in their zoneinfo).
      if (a.timezone != "local")
        if (auto t = cp::local_time(0, a.timezone); !t) return fail(t.error().with_context("--timezone"));
      pol.timezone = a.timezone;
    }
    if (!a.start_delay.empty()) {
      auto d = cp::parse_duration(a.start_delay);
      if (!d) return fail(d.error().with_context("--start-delay"));
      pol.start_delay_s = *d;
    }
    if (!a.max_age.empty()) {
      auto d = cp::parse_duration(a.max_age);
      if (!d) return fail(d.error().with_context("--max-age"));
      pol.max_age_s = *d;
    }
    for (const auto& list : a.defer_on) {
      std::size_t pos = 0;
      while (pos <= list.size()) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        const std::string name = list.substr(pos, comma - pos);
        if (!cp::is_valid_condition(name)) return fail(ErrorCode::kUsage, "--defer-on: \"" + name + "\" is not [a-z0-9_-]{1,32}");
        pol.defer_on.push_back(name);
        pos = comma + 1;
      }
    }
    pol.download_early = a.download_early;
    if (pol.download_early && pol.windows.empty()) return fail(ErrorCode::kUsage, "--download-early needs --window");
    if (auto st = cp::validate(pol); !st) return fail(ErrorCode::kUsage, st.error().message);
    r.policy = std::move(pol);
  }
  if (!a.bytes_per_minute.empty()) {
    auto b = cp::parse_size(a.bytes_per_minute);
    if (!b) return fail(b.error().with_context("--bytes-per-minute"));
    if (*b == 0) return fail(ErrorCode::kUsage, "--bytes-per-minute: 0 is no pace; leave it out for no limit");
    r.bytes_per_minute = *b;
  }

  if (!a.regression_window.empty()) {
    auto win = cp::parse_duration(a.regression_window);
    if (!win) return fail(win.error().with_context("--regression-window"));
    auto iv = cp::parse_duration(a.regression_interval);
    if (!iv) return fail(iv.error().with_context("--regression-interval"));
    cp::Regression g;
    g.observe_s = *win;
    g.interval_s = std::min(*iv, *win);
    g.margin = a.regression_margin;
    g.min_sample = a.regression_min_sample;
    g.z = a.regression_z;
    g.abort = a.regression_abort;
    r.regression = g;
  } else if (a.regression_abort) {
    return fail(ErrorCode::kUsage, "--regression-abort needs --regression-window");
  }

  r.bundle_path = a.bundle;
  r.trust_path = a.trust_path;
  r.fleet = a.fleet;
  r.id = a.id;
  r.url = a.url;
  r.store_dir = a.store;
  r.campaign_dir = a.dir + "/" + a.id;
  r.gates = cp::Gates{a.success, a.failure, a.min_sample, *soak, *dt, a.abort_on_failure};
  r.revert_on_abort = a.revert_on_abort;
  r.expires_s = *exp;
  r.control_ttl_s = *ttl;
  r.revision = a.revision;
  r.key_paths = a.keys;
  r.passphrase = passphrase_of(a.pass);
  r.now = static_cast<trust::Time>(std::time(nullptr));
  // A --timeout that does not parse fails in connect_broker, before it is used.
  if (auto wait = a.broker.wait()) r.timeout = *wait;
  OTA_TRY_ASSIGN(auto p, cp::publish(r, [&] { return connect_broker(a.broker, "ota-publish-" + random_suffix()); }));

  const cp::Campaign& c = p.campaign;
  out["ok"] = true;
  out["command"] = "publish";
  out["campaign"] = c.id;
  out["fleet"] = c.fleet;
  out["revision"] = c.revision;
  out["topic"] = p.topic;
  out["url"] = c.url;
  out["manifest_hash"] = to_hex(c.manifest_hash);
  out["version"] = c.version;
  OJson w = OJson::array();
  for (auto pct : c.waves) w.push_back(static_cast<double>(pct) / 100.0);
  out["waves"] = w;
  out["expires"] = trust::format_time(c.expires);
  out["controller_key"] = to_hex(c.controller.id());
  out["security"] = c.security ? "signed" : "unsigned";
  out["revert_on_abort"] = c.revert_on_abort;
  out["advisory"] = c.advisory ? OJson{{"ids", c.advisory->ids}, {"text", c.advisory->advisory}} : OJson(nullptr);
  if (c.security) {
    out["registry_hash"] = to_hex(c.security->registry_hash);
    OJson ops = OJson::array();
    for (const auto& k : c.security->operators) ops.push_back(k.id_hex());
    out["operator_keys"] = ops;
  }
  if (c.pace) {
    OJson deltas = OJson::array();
    for (const auto& [base, size] : c.pace->deltas) deltas.push_back({{"base", to_hex(base)}, {"size", size}});
    out["pace"] = {{"devices_per_minute", c.pace->devices_per_minute},
                   {"bytes_per_minute", c.pace->bytes_per_minute},
                   {"full_size", c.pace->full_size},
                   {"deltas", deltas}};
  }
  if (c.policy) {
    OJson wins = OJson::array();
    for (const auto& win : c.policy->windows) wins.push_back(cp::format_window(win));
    out["policy"] = {{"windows", wins},
                     {"timezone", c.policy->timezone},
                     {"download_early", c.policy->download_early},
                     {"start_delay_s", c.policy->start_delay_s},
                     {"max_age_s", c.policy->max_age_s},
                     {"defer_on", c.policy->defer_on}};
  }
  if (c.regression)
    out["regression"] = {{"observe_s", c.regression->observe_s}, {"interval_s", c.regression->interval_s},
                         {"margin", c.regression->margin},       {"min_sample", c.regression->min_sample},
                         {"z", c.regression->z},                 {"action", c.regression->abort ? "abort" : "pause"}};
  out["directory"] = p.directory;
  return ok();
}

}  // namespace

void add_publish_command(CLI::App& app, Context& ctx, int& exit_code) {
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
  pub->add_flag("--revert-on-abort", p->revert_on_abort,
                "On an abort, devices that committed the new image switch back to their previous image when it still "
                "verifies (signed in the campaign; agents older than this option refuse the campaign)");
  pub->add_option("--control-ttl", p->control_ttl,
                  "A running control document is valid this long; the controller signs it again every third of it")
      ->capture_default_str();
  pub->add_option("--root-update", p->root_updates,
                  "A trust root (root.json of a newer version) devices take before the campaign; repeat in order");
  pub->add_option("--registry", p->registry,
                  "The fleet's device registry (ota device provision): only reports signed by its keys count");
  pub->add_option("--operator", p->operators,
                  "An operator public key allowed to sign pause, resume and abort (repeat for several)");
  pub->add_flag("--unsigned", p->unsigned_mode,
                "The old mode: unsigned reports and commands (anyone with a broker credential can forge them)");
  pub->add_option("--devices-per-minute", p->devices_per_minute,
                  "Pace: at most this many devices start per minute (the controller lets them in, in hash order)");
  pub->add_option("--bytes-per-minute", p->bytes_per_minute,
                  "Pace: at most this many bytes (512K, 20M, 1G) fetched per minute by the devices it lets start "
                  "(each counted at its delta's size, or the full payload's)");
  pub->add_option("--window", p->windows,
                  "Devices install only in these windows (repeat): \"mon-fri 02:00-05:00\", \"sat,sun\", \"daily 22:00-04:00\"");
  pub->add_option("--timezone", p->timezone,
                  "The windows' zone: UTC (default), local (each device's rollout.timezone) or an IANA name");
  pub->add_flag("--download-early", p->download_early,
                "Outside a window, devices download and write the image now and switch banks in the window");
  pub->add_option("--start-delay", p->start_delay, "Each device waits a random time up to this before it starts (30m)");
  pub->add_option("--max-age", p->max_age, "Devices do not install the bundle once it is older than this (30d)");
  pub->add_option("--defer-on", p->defer_on,
                  "Conditions each device checks with its configured command before it installs (metered,battery,busy)");
  pub->add_option("--regression-window", p->regression_window,
                  "Regression gate: devices observe health signals this long after they committed (1h); devices "
                  "not yet updated observe the same as the control group (agents older than this option refuse the campaign)");
  pub->add_option("--regression-interval", p->regression_interval,
                  "Regression gate: a health check (and the counter command) and a report this often")
      ->capture_default_str();
  pub->add_option("--regression-margin", p->regression_margin,
                  "Regression gate: the share of regressed updated devices may exceed the control group's by this much")
      ->capture_default_str();
  pub->add_option("--regression-min-sample", p->regression_min_sample,
                  "Regression gate: devices reporting signals in each group before it is judged")
      ->capture_default_str();
  pub->add_option("--regression-z", p->regression_z,
                  "Regression gate: the one-sided z threshold of the test of two proportions (1.645: alpha 0.05)")
      ->capture_default_str();
  pub->add_flag("--regression-abort", p->regression_abort, "The regression gate aborts instead of pausing");
  pub->add_option("--revision", p->revision, "Campaign revision (default: one more than the broker holds)");
  pub->add_option("--dir", p->dir, "Campaign directories live here")->capture_default_str();
  p->broker.add(pub);
  pub->add_flag("-q,--quiet", ctx.quiet, "No output on success");
  pub->add_flag("--json", ctx.json, "Print the result as JSON");
  pub->callback([&ctx, &exit_code, p] {
    OJson out;
    auto st = run_publish(*p, out);
    if (!st) {
      exit_code = report(ctx, "publish", st.error());
      return;
    }
    if (ctx.json) print_json(out);
    else if (!ctx.quiet)
      std::printf("published campaign %s revision %llu for %s to %s\n", p->id.c_str(),
                  static_cast<unsigned long long>(out["revision"].get<std::uint64_t>()),
                  out["version"].get<std::string>().c_str(), out["topic"].get<std::string>().c_str());
    if (!ctx.json && !ctx.quiet && out["advisory"].is_object()) {
      std::string ids;
      for (const auto& id : out["advisory"]["ids"]) ids += (ids.empty() ? "" : ", ") + id.get<std::string>();
      std::printf("security update: %s\n", ids.c_str());
    }
    exit_code = 0;
  });
}

}  // namespace ota::cli
