#include "ota/device/boot.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "device/boot/changes.hpp"

namespace ota::boot {

namespace {

constexpr char kSlot[] = "ota_slot";
constexpr char kUpgrade[] = "upgrade_available";
constexpr char kCount[] = "bootcount";
constexpr char kLimit[] = "bootlimit";
constexpr char kBooted[] = "ota_booted";

constexpr std::uint32_t kMaxLimit = 1000;
// The count a boot stores when it exceeds the largest limit (and then falls back).
constexpr std::uint32_t kMaxCount = kMaxLimit + 1;

// Quotes a value for a message without flooding it with a huge or binary one.
std::string quoted(const std::string& value) {
  std::string out = "'";
  for (char c : value.substr(0, 32)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (value.size() > 32) out += "...";
  return out + "'";
}

Result<std::uint32_t> parse_number(const Vars& vars, const char* name, std::uint32_t fallback,
                                   std::uint32_t min, std::uint32_t max) {
  auto it = vars.find(name);
  if (it == vars.end()) return fallback;
  const std::string& text = it->second;
  std::uint32_t value = 0;
  bool ok = !text.empty();
  for (char c : text) {
    if (c < '0' || c > '9' || value > max) {
      ok = false;
      break;
    }
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (!ok || value < min || value > max)
    return fail(ErrorCode::kMalformed, std::string(name) + "=" + quoted(text) + " is not a decimal number from " +
                                           std::to_string(min) + " to " + std::to_string(max));
  return value;
}

Result<BootState> parse_state(const Vars& vars) {
  BootState st;
  if (auto it = vars.find(kSlot); it != vars.end()) {
    if (it->second == "a") {
      st.boot_slot = Slot::kA;
    } else if (it->second == "b") {
      st.boot_slot = Slot::kB;
    } else {
      return fail(ErrorCode::kMalformed, std::string(kSlot) + "=" + quoted(it->second) + " is neither 'a' nor 'b'");
    }
  }
  if (auto it = vars.find(kUpgrade); it != vars.end()) {
    if (it->second != "0" && it->second != "1")
      return fail(ErrorCode::kMalformed, std::string(kUpgrade) + "=" + quoted(it->second) + " is neither '0' nor '1'");
    st.upgrade_available = it->second == "1";
  }
  OTA_TRY_ASSIGN(auto count, parse_number(vars, kCount, 0, 0, kMaxCount));
  st.bootcount = count;
  OTA_TRY_ASSIGN(auto limit, parse_number(vars, kLimit, 3, 1, kMaxLimit));
  st.bootlimit = limit;
  return st;
}

Result<BootState> read_state(Environment& env) {
  OTA_TRY_ASSIGN(auto vars, env.read());
  return parse_state(vars);
}

}  // namespace

Status check_changes(const Changes& changes, bool newline_in_value) {
  for (const auto& [name, value] : changes) {
    if (name.empty()) return fail(ErrorCode::kUsage, "an environment variable needs a name");
    if (name.find_first_of(std::string_view("=\n\0", 3)) != std::string::npos)
      return fail(ErrorCode::kUsage, "environment variable name " + quoted(name) + " holds '=', a newline or NUL");
    if (!value) continue;
    if (value->find('\0') != std::string::npos)
      return fail(ErrorCode::kUsage, "the value of " + quoted(name) + " holds NUL");
    if (!newline_in_value && value->find('\n') != std::string::npos)
      return fail(ErrorCode::kUsage, "the value of " + quoted(name) + " holds a newline, which this environment cannot keep");
  }
  return ok();
}

Result<BootState> BootControl::state() {
  auto st = read_state(env_);
  if (!st) return fail(std::move(st).error().with_context("boot state"));
  return st;
}

Status BootControl::begin_trial(Slot target) {
  OTA_TRY_CTX(env_.write({{kSlot, slot_name(target)}, {kUpgrade, "1"}, {kCount, "0"}}),
              std::string("begin trial of slot ") + slot_name(target));
  return ok();
}

Status BootControl::commit() {
  OTA_TRY_CTX(env_.write({{kUpgrade, "0"}, {kCount, "0"}}), "commit");
  return ok();
}

Status BootControl::rollback() {
  auto st = read_state(env_);
  if (!st) return fail(std::move(st).error().with_context("rollback"));
  Slot target = other(st->boot_slot);
  OTA_TRY_CTX(env_.write({{kSlot, slot_name(target)}, {kUpgrade, "0"}, {kCount, "0"}}),
              std::string("rollback to slot ") + slot_name(target));
  return ok();
}

Result<Slot> simulate_boot(Environment& env) {
  auto vars = env.read();
  if (!vars) return fail(std::move(vars).error().with_context("boot"));
  auto st = parse_state(*vars);
  if (!st) return fail(std::move(st).error().with_context("boot"));
  if (!st->upgrade_available) {
    auto b = vars->find(kBooted);
    if (b == vars->end() || b->second != slot_name(st->boot_slot))
      OTA_TRY_CTX(env.write({{kBooted, slot_name(st->boot_slot)}}), "boot: record the booted slot");
    return st->boot_slot;
  }
  std::uint32_t count = st->bootcount + 1;
  // Only a power cut between the two stores below lets the count pass the
  // limit + 1; saturate so that the next boot can still read it.
  if (count <= st->bootlimit) {
    OTA_TRY_CTX(env.write({{kCount, std::to_string(count)}, {kBooted, slot_name(st->boot_slot)}}),
                "boot: store bootcount");
    return st->boot_slot;
  }
  OTA_TRY_CTX(env.write({{kCount, std::to_string(std::min(count, kMaxCount))}}), "boot: store bootcount");
  Slot fallback = other(st->boot_slot);
  OTA_TRY_CTX(env.write({{kSlot, slot_name(fallback)}, {kUpgrade, "0"}, {kCount, "0"}, {kBooted, slot_name(fallback)}}),
              std::string("boot: bootlimit exceeded, altbootcmd to slot ") + slot_name(fallback));
  return fallback;
}

Result<Slot> parse_cmdline_slot(std::string_view cmdline) {
  constexpr std::string_view kMarker = "ota.slot=";
  std::optional<Slot> found;
  std::size_t i = 0;
  while (i < cmdline.size()) {
    while (i < cmdline.size() && (cmdline[i] == ' ' || cmdline[i] == '\t' || cmdline[i] == '\n')) ++i;
    std::size_t j = i;
    while (j < cmdline.size() && cmdline[j] != ' ' && cmdline[j] != '\t' && cmdline[j] != '\n') ++j;
    const std::string_view word = cmdline.substr(i, j - i);
    i = j;
    if (word.substr(0, kMarker.size()) != kMarker) continue;
    const std::string_view v = word.substr(kMarker.size());
    Slot s;
    if (v == "a") s = Slot::kA;
    else if (v == "b") s = Slot::kB;
    else return fail(ErrorCode::kMalformed, "kernel command line: " + quoted(std::string(word)) + " names no slot (a or b)");
    if (found && *found != s)
      return fail(ErrorCode::kNoBootEvidence, "kernel command line: ota.slot= is given twice with different slots");
    found = s;
  }
  if (!found) return fail(ErrorCode::kNoBootEvidence, "no ota.slot= marker on the kernel command line: the bootloader must say which slot it booted");
  return *found;
}

BootedSlot booted_from_cmdline(std::string path) {
  return [path = std::move(path)]() -> Result<Slot> {
    std::FILE* f = std::fopen(path.c_str(), "re");
    if (!f) return fail(ErrorCode::kNoBootEvidence, "cannot read the kernel command line " + path);
    std::string text(4096, '\0');
    const std::size_t n = std::fread(text.data(), 1, text.size(), f);
    std::fclose(f);
    text.resize(n);
    auto s = parse_cmdline_slot(text);
    if (!s) return fail(std::move(s).error().with_context(path));
    return s;
  };
}

BootedSlot booted_from_simulator(Environment& env) {
  return [&env]() -> Result<Slot> {
    auto vars = env.read();
    if (!vars) return fail(std::move(vars).error().with_context("boot evidence"));
    auto st = parse_state(*vars);
    if (!st) return fail(std::move(st).error().with_context("boot evidence"));
    auto b = vars->find(kBooted);
    if (b == vars->end()) return st->upgrade_available ? other(st->boot_slot) : st->boot_slot;
    if (b->second == "a") return Slot::kA;
    if (b->second == "b") return Slot::kB;
    return fail(ErrorCode::kMalformed, std::string(kBooted) + "=" + quoted(b->second) + " is neither 'a' nor 'b'");
  };
}

}  // namespace ota::boot
