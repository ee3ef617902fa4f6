#include "ota/bootctl.hpp"

#include <algorithm>
#include <string_view>

#include "boot/changes.hpp"

namespace ota::boot {

namespace {

constexpr char kSlot[] = "ota_slot";
constexpr char kUpgrade[] = "upgrade_available";
constexpr char kCount[] = "bootcount";
constexpr char kLimit[] = "bootlimit";

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
  auto count = parse_number(vars, kCount, 0, 0, kMaxCount);
  if (!count) return fail(std::move(count).error());
  st.bootcount = *count;
  auto limit = parse_number(vars, kLimit, 3, 1, kMaxLimit);
  if (!limit) return fail(std::move(limit).error());
  st.bootlimit = *limit;
  return st;
}

Result<BootState> read_state(Environment& env) {
  auto vars = env.read();
  if (!vars) return fail(std::move(vars).error());
  return parse_state(*vars);
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

Status MemoryEnvironment::write(const Changes& changes) {
  OTA_TRY(check_changes(changes, true));
  if (changes.empty()) return ok();
  for (const auto& [name, value] : changes) {
    if (value) {
      vars[name] = *value;
    } else {
      vars.erase(name);
    }
  }
  ++stores;
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
  auto st = read_state(env);
  if (!st) return fail(std::move(st).error().with_context("boot"));
  if (!st->upgrade_available) return st->boot_slot;
  std::uint32_t count = st->bootcount + 1;
  // Only a power cut between the two stores below lets the count pass the
  // limit + 1; saturate so that the next boot can still read it.
  OTA_TRY_CTX(env.write({{kCount, std::to_string(std::min(count, kMaxCount))}}), "boot: store bootcount");
  if (count <= st->bootlimit) return st->boot_slot;
  Slot fallback = other(st->boot_slot);
  OTA_TRY_CTX(env.write({{kSlot, slot_name(fallback)}, {kUpgrade, "0"}, {kCount, "0"}}),
              std::string("boot: bootlimit exceeded, altbootcmd to slot ") + slot_name(fallback));
  return fallback;
}

}  // namespace ota::boot
