#include "config.hpp"

#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "ota/core/io.hpp"
#include "ota/release/keys.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/fleet/policy.hpp"

namespace ota::agent_cli {

namespace {

using Json = nlohmann::json;

Result<std::string> str(const Json& j, const char* key, bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return fail(ErrorCode::kMalformed, std::string("config: missing \"") + key + "\"");
    return std::string();
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty())
    return fail(ErrorCode::kMalformed, std::string("config: \"") + key + "\" must be a non-empty string");
  return it->get<std::string>();
}

Result<std::vector<std::string>> argv_of(const Json& j, const char* what) {
  if (!j.is_array() || j.empty()) return fail(ErrorCode::kMalformed, std::string("config: ") + what + " must be a non-empty array of strings");
  std::vector<std::string> out;
  for (const auto& a : j) {
    if (!a.is_string()) return fail(ErrorCode::kMalformed, std::string("config: ") + what + " must be an array of strings");
    out.push_back(a.get<std::string>());
  }
  return out;
}

}  // namespace

Result<Config> load_config(const std::string& path) {
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return fail(ErrorCode::kMalformed, path + ": not a JSON object");
  Config c;
  auto s = [&](const char* k, std::string& out, bool req = true) -> Status {
    auto v = str(j, k, req);
    if (!v) return fail(v.error().with_context(path));
    out = *v;
    return ok();
  };
  OTA_TRY(s("device_id", c.device_id));
  OTA_TRY(s("hardware_id", c.hardware_id));
  OTA_TRY(s("trust_root", c.trust_root));
  OTA_TRY(s("state_dir", c.state_dir));
  const auto banks = j.find("banks");
  if (banks == j.end() || !banks->is_object()) return fail(ErrorCode::kMalformed, path + ": config: missing \"banks\"");
  auto a = str(*banks, "a"), b = str(*banks, "b");
  if (!a) return fail(a.error().with_context(path + ": banks"));
  if (!b) return fail(b.error().with_context(path + ": banks"));
  c.bank_a = *a;
  c.bank_b = *b;
  const auto boot = j.find("boot");
  if (boot == j.end() || !boot->is_object()) return fail(ErrorCode::kMalformed, path + ": config: missing \"boot\"");
  auto backend = str(*boot, "backend");
  if (!backend) return fail(backend.error().with_context(path + ": boot"));
  c.boot_backend = *backend;
  const char* key = c.boot_backend == "uboot" ? "fw_env_config" : c.boot_backend == "grub" ? "grubenv" : "file";
  if (c.boot_backend != "uboot" && c.boot_backend != "grub" && c.boot_backend != "file")
    return fail(ErrorCode::kMalformed, path + ": boot.backend must be uboot, grub or file");
  auto bc = str(*boot, key);
  if (!bc) return fail(bc.error().with_context(path + ": boot"));
  c.boot_config = *bc;
  auto cmdline = str(*boot, "cmdline", false);
  if (!cmdline) return fail(cmdline.error().with_context(path + ": boot"));
  c.boot_cmdline = !cmdline->empty() ? *cmdline : c.boot_backend == "file" ? std::string() : std::string("/proc/cmdline");
  if (auto h = j.find("health_check"); h != j.end()) {
    if (!h->is_object()) return fail(ErrorCode::kMalformed, path + ": health_check must be an object");
    auto argv = argv_of(h->value("command", Json()), "health_check.command");
    if (!argv) return fail(argv.error().with_context(path));
    c.health_command = *argv;
    if (h->contains("timeout_s")) {
      if (!(*h)["timeout_s"].is_number_unsigned() || (*h)["timeout_s"].get<unsigned>() > 3600)
        return fail(ErrorCode::kMalformed, path + ": health_check.timeout_s must be 0..3600");
      c.health_timeout_s = (*h)["timeout_s"].get<int>();
    }
  }
  if (auto h = j.find("health_signals"); h != j.end()) {
    if (!h->is_object()) return fail(ErrorCode::kMalformed, path + ": health_signals must be an object");
    for (auto it = h->begin(); it != h->end(); ++it)
      if (it.key() != "counter_command" && it.key() != "timeout_s")
        return fail(ErrorCode::kMalformed, path + ": health_signals." + it.key() + " is not a known setting");
    auto argv = argv_of(h->value("counter_command", Json()), "health_signals.counter_command");
    if (!argv) return fail(argv.error().with_context(path));
    c.counter_command = *argv;
    if (h->contains("timeout_s")) {
      if (!(*h)["timeout_s"].is_number_unsigned() || (*h)["timeout_s"].get<unsigned>() < 1 ||
          (*h)["timeout_s"].get<unsigned>() > 3600)
        return fail(ErrorCode::kMalformed, path + ": health_signals.timeout_s must be 1..3600");
      c.counter_timeout_s = (*h)["timeout_s"].get<int>();
    }
  }
  if (auto d = j.find("download"); d != j.end()) {
    if (!d->is_object()) return fail(ErrorCode::kMalformed, path + ": download must be an object");
    if (d->contains("ca_file")) {
      auto ca = str(*d, "ca_file");
      if (!ca) return fail(ca.error().with_context(path + ": download"));
      c.ca_file = *ca;
    }
    for (auto [k, out, max] : {std::tuple<const char*, int*, unsigned>{"retries", &c.retries, 1000},
                               {"stall_timeout_s", &c.stall_timeout_s, 3600},
                               {"spool_mib", &c.spool_mib, 4096}}) {
      if (!d->contains(k)) continue;
      const Json& v = (*d)[k];
      if (!v.is_number_unsigned() || v.get<unsigned>() > max || (std::string(k) == "stall_timeout_s" && v.get<unsigned>() == 0))
        return fail(ErrorCode::kMalformed, path + ": download." + k + " must be an integer from " +
                                               (std::string(k) == "stall_timeout_s" ? "1" : "0") + " to " + std::to_string(max));
      *out = v.get<int>();
    }
  }
  if (auto m = j.find("mqtt"); m != j.end()) {
    if (!m->is_object()) return fail(ErrorCode::kMalformed, path + ": mqtt must be an object");
    // "broker": one URL, or the nodes of one cluster as a list (kept joined
    // by commas, which no broker URL contains; mqtt::parse_broker_urls).
    if (auto bl = m->find("broker"); bl != m->end() && bl->is_array()) {
      if (bl->empty() || bl->size() > mqtt::kMaxBrokers)
        return fail(ErrorCode::kMalformed, path + ": mqtt.broker must list 1 to " + std::to_string(mqtt::kMaxBrokers) + " URLs");
      for (const auto& u : *bl) {
        if (!u.is_string() || u.get<std::string>().empty() || u.get<std::string>().find(',') != std::string::npos)
          return fail(ErrorCode::kMalformed, path + ": mqtt.broker must list broker URLs (strings without commas)");
        c.mqtt.broker += (c.mqtt.broker.empty() ? "" : ",") + u.get<std::string>();
      }
    } else {
      auto v = str(*m, "broker", true);
      if (!v) return fail(v.error().with_context(path + ": mqtt"));
      c.mqtt.broker = *v;
    }
    for (auto [k, out, req] : {std::tuple<const char*, std::string*, bool>{"fleet", &c.mqtt.fleet, true},
                               {"client_id", &c.mqtt.client_id, false},
                               {"username", &c.mqtt.username, false},
                               {"password_file", &c.mqtt.password_file, false},
                               {"ca_file", &c.mqtt.ca_file, false},
                               {"cert_file", &c.mqtt.cert_file, false},
                               {"key_file", &c.mqtt.key_file, false},
                               {"device_key", &c.mqtt.device_key, false}}) {
      auto v = str(*m, k, req);
      if (!v) return fail(v.error().with_context(path + ": mqtt"));
      *out = *v;
    }
    for (auto [k, out, lo, hi] : {std::tuple<const char*, int*, unsigned, unsigned>{"keepalive_s", &c.mqtt.keepalive_s, 5, 3600},
                                  {"failover_after_s", &c.mqtt.failover_after_s, 1, 3600},
                                  {"retry_delay_s", &c.mqtt.retry_delay_s, 1, 86400}}) {
      if (!m->contains(k)) continue;
      const Json& v = (*m)[k];
      if (!v.is_number_unsigned() || v.get<unsigned>() < lo || v.get<unsigned>() > hi)
        return fail(ErrorCode::kMalformed, path + ": mqtt." + k + " must be an integer from " + std::to_string(lo) +
                                               " to " + std::to_string(hi));
      *out = v.get<int>();
    }
  }
  if (auto r = j.find("rollout"); r != j.end()) {
    if (!r->is_object()) return fail(ErrorCode::kMalformed, path + ": rollout must be an object");
    for (const auto& [k, v] : r->items())
      if (k != "timezone" && k != "recheck_s" && k != "conditions" && k != "security_updates")
        return fail(ErrorCode::kMalformed, path + ": rollout: unknown field " + k);
    if (r->contains("timezone")) {
      auto tz = str(*r, "timezone");
      if (!tz) return fail(tz.error().with_context(path + ": rollout"));
      if (!campaign::is_valid_zone_name(*tz) || *tz == "local")
        return fail(ErrorCode::kMalformed, path + ": rollout.timezone must be UTC or an IANA zone name");
      if (auto t = campaign::local_time(0, *tz); !t) return fail(t.error().with_context(path + ": rollout.timezone"));
      c.rollout.timezone = *tz;
    }
    if (r->contains("security_updates")) {
      auto v = str(*r, "security_updates");
      if (!v || (*v != "anytime" && *v != "in_windows"))
        return fail(ErrorCode::kMalformed, path + ": rollout.security_updates must be \"anytime\" or \"in_windows\"");
      c.rollout.security_updates_anytime = *v == "anytime";
    }
    if (r->contains("recheck_s")) {
      const Json& v = (*r)["recheck_s"];
      if (!v.is_number_unsigned() || v.get<unsigned>() < 1 || v.get<unsigned>() > 86400)
        return fail(ErrorCode::kMalformed, path + ": rollout.recheck_s must be an integer from 1 to 86400");
      c.rollout.recheck_s = v.get<int>();
    }
    if (r->contains("conditions")) {
      const Json& cs = (*r)["conditions"];
      if (!cs.is_object()) return fail(ErrorCode::kMalformed, path + ": rollout.conditions must be an object");
      for (const auto& [name, cond] : cs.items()) {
        if (!campaign::is_valid_condition(name))
          return fail(ErrorCode::kMalformed, path + ": rollout.conditions: \"" + name + "\" is not [a-z0-9_-]{1,32}");
        if (!cond.is_object()) return fail(ErrorCode::kMalformed, path + ": rollout.conditions." + name + " must be an object");
        Config::Rollout::Condition cc;
        auto argv = argv_of(cond.value("command", Json()), "rollout.conditions.command");
        if (!argv) return fail(argv.error().with_context(path));
        cc.command = *argv;
        if (cond.contains("timeout_s")) {
          if (!cond["timeout_s"].is_number_unsigned() || cond["timeout_s"].get<unsigned>() < 1 ||
              cond["timeout_s"].get<unsigned>() > 3600)
            return fail(ErrorCode::kMalformed, path + ": rollout.conditions." + name + ".timeout_s must be 1..3600");
          cc.timeout_s = cond["timeout_s"].get<int>();
        }
        c.rollout.conditions[name] = std::move(cc);
      }
    }
  }
  if (auto d = j.find("decryption"); d != j.end()) {
    if (!d->is_object()) return fail(ErrorCode::kMalformed, path + ": decryption must be an object");
    for (auto it = d->begin(); it != d->end(); ++it)
      if (it.key() != "key" && it.key() != "command" && it.key() != "timeout_s")
        return fail(ErrorCode::kMalformed, path + ": decryption." + it.key() + " is not a known setting");
    if (d->contains("key") == d->contains("command"))
      return fail(ErrorCode::kMalformed, path + ": decryption takes one of key (a file) or command");
    if (d->contains("key")) {
      auto k = str(*d, "key");
      if (!k) return fail(k.error().with_context(path + ": decryption"));
      c.decryption.key_file = *k;
    } else {
      auto argv = argv_of((*d)["command"], "decryption.command");
      if (!argv) return fail(argv.error().with_context(path));
      c.decryption.command = *argv;
    }
    if (d->contains("timeout_s")) {
      const Json& v = (*d)["timeout_s"];
      if (!v.is_number_unsigned() || v.get<unsigned>() < 1 || v.get<unsigned>() > 600)
        return fail(ErrorCode::kMalformed, path + ": decryption.timeout_s must be an integer from 1 to 600");
      c.decryption.timeout_s = v.get<int>();
    }
  }
  if (auto r = j.find("reboot_command"); r != j.end()) {
    auto argv = argv_of(*r, "reboot_command");
    if (!argv) return fail(argv.error().with_context(path));
    c.reboot_command = *argv;
  }
  if (auto r = j.find("reboot_wait_s"); r != j.end()) {
    if (!r->is_number_unsigned() || r->get<unsigned>() < 1 || r->get<unsigned>() > 3600)
      return fail(ErrorCode::kMalformed, path + ": reboot_wait_s must be an integer from 1 to 3600");
    c.reboot_wait_s = r->get<int>();
  }
  return c;
}

Status run_command(const std::vector<std::string>& argv, int timeout_s) {
  if (argv.empty()) return ok();
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return fail(ErrorCode::kIo, "cannot start " + argv[0]);
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return fail(ErrorCode::kIo, "waiting for " + argv[0] + " failed");
    if (timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return fail(ErrorCode::kIo, argv[0] + " timed out after " + std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ok();
  if (WIFEXITED(status)) return fail(ErrorCode::kIo, argv[0] + " exited with status " + std::to_string(WEXITSTATUS(status)));
  return fail(ErrorCode::kIo, argv[0] + " was killed by signal " + std::to_string(WTERMSIG(status)));
}

Result<std::string> run_capture(const std::vector<std::string>& argv, int timeout_s, std::size_t max_bytes) {
  if (argv.empty()) return fail(ErrorCode::kUsage, "no command");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fds[2];
  if (::pipe(fds) != 0) return fail(ErrorCode::kIo, "cannot start " + argv[0]);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return fail(ErrorCode::kIo, "cannot start " + argv[0]);
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  std::string text;
  text.reserve(max_bytes);  // never reallocated: one buffer to wipe
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  bool exited = false;
  for (;;) {
    char buf[256];  // wiped below: the output may be a key
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
      if (text.size() < max_bytes) text.append(buf, std::min(static_cast<std::size_t>(n), max_bytes - text.size()));
    keys::wipe(buf, sizeof buf);
    if (exited && n <= 0) break;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      exited = true;
      continue;  // read what is left
    }
    if (r < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ::close(fds[0]);
      keys::wipe(text.data(), text.size());
      return fail(ErrorCode::kIo, argv[0] + " timed out after " + std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::close(fds[0]);
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    keys::wipe(text.data(), text.size());
    return fail(ErrorCode::kIo, argv[0] + " did not exit with status 0");
  }
  return text;
}

Result<std::uint64_t> run_counter(const std::vector<std::string>& argv, int timeout_s) {
  if (argv.empty()) return fail(ErrorCode::kUsage, "no counter command");
  OTA_TRY_ASSIGN(auto text, run_capture(argv, timeout_s, 4096));
  std::size_t i = text.find_first_not_of(" \t\r\n");
  if (i == std::string::npos || text[i] < '0' || text[i] > '9')
    return fail(ErrorCode::kMalformed, argv[0] + " did not print a number");
  std::uint64_t v = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (v > (UINT64_MAX - 9) / 10) return fail(ErrorCode::kMalformed, argv[0] + " printed a number too large");
    v = v * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  return v;
}

}  // namespace ota::agent_cli
