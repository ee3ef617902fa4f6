#include "command.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <tuple>
#include <iostream>
#include <nlohmann/json.hpp>

#include "ota/release/encryption.hpp"
#include "ota/release/keys.hpp"

#include "error_json.hpp"
#include "file_env.hpp"
#include "ota/device/agent.hpp"
#include "ota/device/daemon.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/device/fetch.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"

namespace ota::agent_cli {

namespace {

using OJson = nlohmann::ordered_json;

// Everything a command needs, opened from the configuration.
struct Runtime {
  std::unique_ptr<storage::BlockStore> banks[2];
  std::unique_ptr<storage::StateStore> state;
  std::unique_ptr<boot::Environment> env;
  boot::BootedSlot booted;
  std::optional<trust::TrustStore> trust;
};

Result<Runtime> open_runtime(const Config& c, bool need_banks) {
  Runtime rt;
  auto st = storage::open_state_dir(c.state_dir);
  if (!st) return fail(st.error().with_context("state directory"));
  rt.state = std::move(*st);
  Result<std::unique_ptr<boot::Environment>> env = fail(ErrorCode::kInternal, "");
  if (c.boot_backend == "uboot") env = boot::open_uboot_env(c.boot_config);
  else if (c.boot_backend == "grub") env = boot::open_grub_env(c.boot_config);
  else env = open_file_env(c.boot_config);
  if (!env) return fail(env.error().with_context("boot environment"));
  rt.env = std::move(*env);
  rt.booted = c.boot_cmdline.empty() ? boot::booted_from_simulator(*rt.env) : boot::booted_from_cmdline(c.boot_cmdline);
  if (need_banks) {
    // The bank that runs is opened read-only: nothing above can write it.
    OTA_TRY_ASSIGN(auto running, rt.booted());
    const std::string* paths[2] = {&c.bank_a, &c.bank_b};
    for (int i = 0; i < 2; ++i) {
      const bool runs = (i == 0) == (running == boot::Slot::kA);
      auto bank = storage::open_file_bank(*paths[i], runs ? storage::Access::kReadOnly : storage::Access::kReadWrite);
      if (!bank) return fail(bank.error().with_context(i == 0 ? "bank a" : "bank b"));
      rt.banks[i] = std::move(*bank);
    }
  }
  // The newest root this device accepted, else the provisioned anchor.
  OTA_TRY_ASSIGN(auto t, agent::load_trust(*rt.state, c.trust_root));
  rt.trust.emplace(std::move(t));
  return rt;
}

agent::Device device_of(const Config& c, Runtime& rt) {
  agent::Device d;
  d.banks[0] = rt.banks[0].get();
  d.banks[1] = rt.banks[1].get();
  d.state = rt.state.get();
  d.env = rt.env.get();
  d.booted_slot = rt.booted;
  d.trust = &*rt.trust;
  d.hardware_id = c.hardware_id;
  d.now = [] { return static_cast<trust::Time>(std::time(nullptr)); };
  d.health_check = [&c] { return run_command(c.health_command, c.health_timeout_s); };
  if (!c.reboot_command.empty()) d.reboot = [&c] { return run_command(c.reboot_command, 0); };
  if (!c.decryption.key_file.empty()) {
    d.decryption_key = [&c] { return encryption::load_secret(c.decryption.key_file); };
  } else if (!c.decryption.command.empty()) {
    d.decryption_key = [&c]() -> Result<encryption::SecretKey> {
      auto text = run_capture(c.decryption.command, c.decryption.timeout_s, 4096);
      if (!text) return fail(ErrorCode::kDecryptionKey, "decryption.command: " + text.error().message);
      auto key = encryption::parse_secret(*text);
      keys::wipe(text->data(), text->size());
      if (!key) return fail(ErrorCode::kDecryptionKey, "decryption.command printed no key: " + key.error().message);
      return key;
    };
  }
  return d;
}

agent::Agent make_agent(const Config& c, Runtime& rt,
                        std::function<void(std::uint64_t, std::uint64_t)> progress = {}) {
  agent::Device d = device_of(c, rt);
  d.progress = std::move(progress);
  return agent::Agent(std::move(d));
}

std::string stage_text(agent::Stage s) { return std::string(agent::stage_name(s)); }

int done(const Options& o, OJson doc, const std::string& text) {
  if (o.json) std::cout << doc.dump() << std::endl;
  else if (!o.quiet && !text.empty()) std::printf("%s\n", text.c_str());
  return 0;
}

// The download spool lives in the state directory.
void set_spool(const Config& c, fetch::Options& fo) {
  if (c.spool_mib <= 0) return;
  fo.spool_path = c.state_dir + "/download.spool";
  fo.spool_bytes = static_cast<std::uint64_t>(c.spool_mib) << 20;
}

}  // namespace

int report_error(const Options& o, const std::string& command, const Error& e) {
  std::fprintf(stderr, "ota-agent %s: error: %s\n", command.c_str(), e.message.c_str());
  if (o.json) std::cout << front_end::error_document(command, e).dump() << std::endl;
  return front_end::exit_code(e);
}

int cmd_install(const Config& c, const Options& o, const std::string& source) {
  fetch::Options fo;
  fo.ca_file = c.ca_file;
  fo.retries = c.retries;
  fo.stall_timeout_s = c.stall_timeout_s;
  fo.user_agent = std::string("ota-agent/") + OTA_VERSION;
  set_spool(c, fo);
  auto in = fetch::open(source, fo);
  if (!in) return report_error(o, "install", in.error());
  auto rt = open_runtime(c, true);
  if (!rt) return report_error(o, "install", rt.error());
  // Progress on a terminal only, at most ten times a second.
  const bool show = !o.quiet && !o.json && ::isatty(STDERR_FILENO);
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  agent::Agent a = make_agent(c, *rt, [&](std::uint64_t done_bytes, std::uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (!show || (now - last < std::chrono::milliseconds(100) && done_bytes < total)) return;
    last = now;
    std::fprintf(stderr, "\rinstalling: %3d%% (%.1f of %.1f MiB of payload, %.1f MiB fetched)",
                 total ? static_cast<int>(done_bytes * 100 / total) : 100, static_cast<double>(done_bytes) / 1048576.0,
                 static_cast<double>(total) / 1048576.0, static_cast<double>((*in)->stats().bytes_received) / 1048576.0);
  });
  // Reopening the source lets the agent check a delta's base while patching.
  fetch::Stats fs;
  auto rep = agent::install_from_source(a, **in, source, fo, &fs);
  if (show) std::fprintf(stderr, "\n");
  if (!rep) return report_error(o, "install", rep.error());
  OJson doc;
  doc["ok"] = true;
  doc["command"] = "install";
  doc["payload"] = rep->payload;
  doc["delta"] = rep->delta;
  doc["reuse"] = rep->reuse;
  doc["bytes_reused"] = rep->bytes_reused;
  doc["resumed"] = rep->resumed;
  doc["bytes_read"] = rep->bytes_read;
  doc["bytes_written"] = rep->bytes_written;
  doc["bytes_fetched"] = fs.bytes_received;
  doc["bytes_from_spool"] = fs.bytes_from_spool;
  doc["requests"] = fs.requests;
  doc["retries"] = fs.retries;
  return done(o, doc, "installed " + rep->payload + (rep->resumed ? " (resumed)" : "") +
                          "; the inactive bank boots once on the next reboot");
}

int cmd_status(const Config& c, const Options& o) {
  auto rt = open_runtime(c, false);
  if (!rt) return report_error(o, "status", rt.error());
  agent::Agent a = make_agent(c, *rt);
  auto s = a.state();
  if (!s) return report_error(o, "status", s.error());
  boot::BootControl bc(*rt->env);
  auto bs = bc.state();
  if (!bs) return report_error(o, "status", bs.error());
  OJson doc;
  doc["ok"] = true;
  doc["command"] = "status";
  doc["device_id"] = c.device_id;
  doc["hardware_id"] = c.hardware_id;
  auto running = rt->booted();
  doc["running_slot"] = running ? OJson(boot::slot_name(*running)) : OJson(nullptr);
  doc["boot"] = {{"slot", boot::slot_name(bs->boot_slot)},
                 {"trial", bs->upgrade_available},
                 {"bootcount", bs->bootcount},
                 {"bootlimit", bs->bootlimit}};
  OJson banks;
  for (int i = 0; i < 2; ++i) {
    const auto& b = s->banks[i];
    banks[i == 0 ? "a" : "b"] =
        b ? OJson{{"version", b->version}, {"size", b->size}, {"hash", to_hex(b->hash)}} : OJson(nullptr);
  }
  doc["banks"] = banks;
  doc["security_floor"] = s->security_floor;
  OJson inst;
  inst["stage"] = stage_text(s->install.stage);
  if (s->install.stage != agent::Stage::kNone) {
    inst["target"] = boot::slot_name(s->install.target);
    inst["version"] = s->install.version;
    inst["payload"] = s->install.payload;
    inst["new_bytes_checkpointed"] = s->install.resume ? s->install.resume->new_offset : 0;
    inst["target_size"] = s->install.target_size;
  }
  doc["install"] = inst;
  doc["trust_root_version"] = rt->trust->root().version;
  doc["last_result"] = s->last_result;
  std::string text = (running ? std::string("runs slot ") + boot::slot_name(*running) + ", "
                              : "running slot unknown (" + running.error().message + "), ") +
                     std::string("boots slot ") + boot::slot_name(bs->boot_slot) +
                     (bs->upgrade_available ? " (trial, boot " + std::to_string(bs->bootcount) + " of " +
                                                  std::to_string(bs->bootlimit) + ")"
                                            : " (confirmed)");
  for (int i = 0; i < 2; ++i)
    text += std::string("\nbank ") + (i == 0 ? "a" : "b") + ": " +
            (s->banks[i] ? (s->banks[i]->version.empty() ? "unversioned image" : s->banks[i]->version) : "unknown");
  text += std::string("\ninstall: ") + stage_text(s->install.stage);
  if (s->install.stage != agent::Stage::kNone) text += " " + s->install.version;
  if (!s->last_result.empty()) text += "\nlast result: " + s->last_result;
  return done(o, doc, text);
}

int cmd_boot_check(const Config& c, const Options& o) {
  auto rt = open_runtime(c, false);
  if (!rt) return report_error(o, "boot-check", rt.error());
  agent::Agent a = make_agent(c, *rt);
  auto before = a.state();
  if (!before) return report_error(o, "boot-check", before.error());
  if (auto st = a.boot_check(); !st) return report_error(o, "boot-check", st.error());
  auto s = a.state();
  if (!s) return report_error(o, "boot-check", s.error());
  const bool acted = before->install.stage != agent::Stage::kNone && s->install.stage == agent::Stage::kNone;
  const std::string outcome = !acted ? "nothing" : s->outcome == agent::Outcome::kRolledBack ? "rolled-back" : "committed";
  // A rollback is a result scripts must see: exit 42 (docs/cli.md).
  if (outcome == "rolled-back") return report_error(o, "boot-check", Error{ErrorCode::kRolledBack, s->last_result});
  OJson doc{{"ok", true}, {"command", "boot-check"}, {"outcome", outcome}, {"last_result", s->last_result}};
  return done(o, doc, outcome == "nothing" ? "nothing to check" : s->last_result);
}

int cmd_commit(const Config& c, const Options& o) {
  auto rt = open_runtime(c, false);
  if (!rt) return report_error(o, "commit", rt.error());
  agent::Agent a = make_agent(c, *rt);
  if (auto st = a.commit(); !st) return report_error(o, "commit", st.error());
  return done(o, OJson{{"ok", true}, {"command", "commit"}}, "committed");
}

int cmd_rollback(const Config& c, const Options& o, const std::string& reason) {
  auto rt = open_runtime(c, false);
  if (!rt) return report_error(o, "rollback", rt.error());
  agent::Agent a = make_agent(c, *rt);
  if (auto st = a.rollback(reason); !st) return report_error(o, "rollback", st.error());
  return done(o, OJson{{"ok", true}, {"command", "rollback"}}, "rolled back");
}

int cmd_simulate_boot(const Config& c, const Options& o) {
  if (c.boot_backend != "file")
    return report_error(o, "simulate-boot", Error{ErrorCode::kUsage, "simulate-boot needs boot.backend \"file\""});
  auto env = open_file_env(c.boot_config);
  if (!env) return report_error(o, "simulate-boot", env.error());
  auto slot = boot::simulate_boot(**env);
  if (!slot) return report_error(o, "simulate-boot", slot.error());
  return done(o, OJson{{"ok", true}, {"command", "simulate-boot"}, {"slot", boot::slot_name(*slot)}},
              std::string("booted slot ") + boot::slot_name(*slot));
}

namespace {
volatile bool g_stop = false;
void on_signal(int) { g_stop = true; }
}  // namespace

int cmd_run(const Config& c, const Options& o) {
  if (c.mqtt.broker.empty())
    return report_error(o, "run", Error{ErrorCode::kUsage, "run needs an \"mqtt\" section in the configuration"});
  mqtt::Options mo;
  mo.client_id = c.mqtt.client_id;
  mo.username = c.mqtt.username;
  mo.ca_file = c.mqtt.ca_file;
  mo.cert_file = c.mqtt.cert_file;
  mo.key_file = c.mqtt.key_file;
  mo.tls = !mo.ca_file.empty() || !mo.cert_file.empty();
  mo.keepalive_s = c.mqtt.keepalive_s;
  mo.failover_after_s = c.mqtt.failover_after_s;
  if (!c.mqtt.password_file.empty()) {
    auto bytes = read_file(c.mqtt.password_file);
    if (!bytes) return report_error(o, "run", bytes.error().with_context("mqtt.password_file"));
    std::string p(bytes->begin(), bytes->end());
    if (auto nl = p.find('\n'); nl != std::string::npos) p.resize(nl);
    mo.password = std::move(p);
  }
  auto parsed = mqtt::parse_broker_urls(c.mqtt.broker, mo);
  if (!parsed) return report_error(o, "run", parsed.error().with_context("mqtt.broker"));
  if (auto w = mqtt::insecure_password_warning(*parsed)) std::fprintf(stderr, "ota-agent: %s\n", w->c_str());
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  agent::DaemonOptions dopt;
  if (!c.mqtt.device_key.empty()) {
    auto k = keys::load_secret(c.mqtt.device_key, std::nullopt);
    if (!k) return report_error(o, "run", k.error().with_context("mqtt.device_key"));
    dopt.device_key = std::make_shared<const keys::SecretKey>(std::move(*k));
  }
  dopt.device_id = c.device_id;
  dopt.fleet = c.mqtt.fleet;
  dopt.mqtt = *parsed;
  dopt.fetch.ca_file = c.ca_file;
  dopt.fetch.retries = c.retries;
  dopt.fetch.stall_timeout_s = c.stall_timeout_s;
  dopt.fetch.user_agent = std::string("ota-agent/") + OTA_VERSION;
  set_spool(c, dopt.fetch);
  dopt.retry_delay_s = c.mqtt.retry_delay_s;
  dopt.reboot_wait_s = c.reboot_wait_s;
  dopt.timezone = c.rollout.timezone;
  dopt.security_updates_anytime = c.rollout.security_updates_anytime;
  dopt.policy_recheck_s = c.rollout.recheck_s;
  dopt.check_condition = [conditions = c.rollout.conditions](const std::string& name)
      -> Result<std::optional<std::string>> {
    auto it = conditions.find(name);
    if (it == conditions.end()) return std::optional<std::string>{};  // not configured here: not checked
    auto st = run_command(it->second.command, it->second.timeout_s);
    if (st) return std::optional<std::string>{};
    return std::optional<std::string>{st.error().message};
  };
  // For tests only: the clock install windows and start delays are judged
  // by, read from a file (UNIX seconds) at each look. Signatures, expiries
  // and freshness keep the system clock.
  if (const char* f = std::getenv("OTA_AGENT_POLICY_CLOCK_FILE"); f && *f) {
    dopt.policy_clock = [file = std::string(f)]() -> trust::Time {
      if (auto b = read_file(file)) {
        const std::string t(b->begin(), b->end());
        char* end = nullptr;
        const long long v = std::strtoll(t.c_str(), &end, 10);
        if (end != t.c_str()) return static_cast<trust::Time>(v);
      }
      return static_cast<trust::Time>(std::time(nullptr));
    };
  }
  if (!c.counter_command.empty())
    dopt.counter = [&c]() { return run_counter(c.counter_command, c.counter_timeout_s); };
  dopt.stop = &g_stop;
  const bool quiet = o.quiet;
  dopt.log = [quiet, id = c.device_id](const std::string& line) {
    if (!quiet) std::fprintf(stderr, "ota-agent %s: %s\n", id.c_str(), line.c_str());
  };
  // File banks without a reboot command: the bootloader simulator is the
  // reboot. Each boot opens the device afresh, as a real boot does (the bank
  // that runs now is the one opened read-only), with a new daemon.
  const bool simulated = c.boot_backend == "file" && c.reboot_command.empty();
  for (;;) {
    auto rt = open_runtime(c, true);
    if (!rt) return report_error(o, "run", rt.error());
    agent::Daemon daemon(device_of(c, *rt), *rt->state, dopt);
    if (!simulated) {
      auto st = daemon.run();
      if (!st) return report_error(o, "run", st.error());
      return 0;
    }
    auto rebooted = daemon.run_session();
    if (!rebooted) return report_error(o, "run", rebooted.error());
    if (!*rebooted || g_stop) return 0;
    auto slot = boot::simulate_boot(*rt->env);
    if (!slot) return report_error(o, "run", slot.error().with_context("simulated reboot"));
  }
}

}  // namespace ota::agent_cli
