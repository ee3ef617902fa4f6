// On-device rollout policy: windows, zones and their evaluation (policy.hpp).
#include "ota/fleet/policy.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>

namespace ota::campaign {

namespace {

constexpr const char* kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

int day_index(std::string_view d) {
  for (int i = 0; i < 7; ++i)
    if (d == kDays[i]) return i;
  return -1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// "HH:MM" (24:00 allowed as an end).
std::optional<int> parse_clock(std::string_view s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  for (std::size_t i : {0u, 1u, 3u, 4u})
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  const int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && m != 0)) return std::nullopt;
  return h * 60 + m;
}

std::optional<std::uint8_t> parse_days(std::string_view s) {
  if (s == "daily" || s == "every day") return std::uint8_t{0x7f};
  std::uint8_t mask = 0;
  while (!s.empty()) {
    const std::size_t comma = s.find(',');
    std::string_view item = trim(s.substr(0, comma));
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    const std::size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      const int d = day_index(item);
      if (d < 0) return std::nullopt;
      mask |= static_cast<std::uint8_t>(1u << d);
    } else {
      const int a = day_index(item.substr(0, dash)), b = day_index(item.substr(dash + 1));
      if (a < 0 || b < 0) return std::nullopt;
      for (int d = a;; d = (d + 1) % 7) {  // fri-mon wraps
        mask |= static_cast<std::uint8_t>(1u << d);
        if (d == b) break;
      }
    }
  }
  if (mask == 0) return std::nullopt;
  return mask;
}

std::string two(int v) { return std::string(1, static_cast<char>('0' + v / 10)) + static_cast<char>('0' + v % 10); }

}  // namespace

Result<Window> parse_window(std::string_view text) {
  auto bad = [&] {
    return fail(ErrorCode::kUsage, "window \"" + std::string(text) +
                                       "\" is not DAYS, HH:MM-HH:MM or DAYS HH:MM-HH:MM (days: mon..sun, ranges, lists, daily)");
  };
  const std::string_view t = trim(text);
  if (t.empty() || t.size() > 64) return bad();
  Window w;
  std::string_view days = t, span;
  // The span is the last word when it holds ':'.
  const std::size_t sp = t.rfind(' ');
  const std::string_view last = sp == std::string_view::npos ? t : t.substr(sp + 1);
  if (last.find(':') != std::string_view::npos) {
    span = last;
    days = sp == std::string_view::npos ? std::string_view{} : trim(t.substr(0, sp));
  }
  if (!days.empty()) {
    auto m = parse_days(days);
    if (!m) return bad();
    w.days = *m;
  }
  if (!span.empty()) {
    const std::size_t dash = span.find('-');
    if (dash == std::string_view::npos) return bad();
    auto a = parse_clock(span.substr(0, dash)), b = parse_clock(span.substr(dash + 1));
    if (!a || !b || *a == 1440 || *b == 0 || *a == *b) return bad();
    w.start = static_cast<std::uint16_t>(*a);
    w.end = static_cast<std::uint16_t>(*b);
  }
  return w;
}

std::string format_window(const Window& w) {
  std::string days;
  if (w.days == 0x7f) {
    days = "daily";
  } else {
    for (int d = 0; d < 7; ++d)
      if (w.days & (1u << d)) days += (days.empty() ? "" : ",") + std::string(kDays[d]);
  }
  return days + " " + two(w.start / 60) + ":" + two(w.start % 60) + "-" + two(w.end / 60) + ":" + two(w.end % 60);
}

bool is_valid_zone_name(std::string_view zone) {
  if (zone == "UTC" || zone == "local") return true;
  if (zone.empty() || zone.size() > 64 || zone.front() == '/' || zone.back() == '/') return false;
  if (zone.find("..") != std::string_view::npos || zone.find("//") != std::string_view::npos) return false;
  for (char c : zone) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
                    c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

bool is_valid_condition(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

Status validate(const Policy& p) {
  if (p.windows.size() > kMaxWindows)
    return fail(ErrorCode::kMalformed, "policy: at most " + std::to_string(kMaxWindows) + " windows");
  for (const auto& w : p.windows) {
    if ((w.days & 0x7f) == 0 || (w.days & 0x80) != 0 || w.start >= 1440 || w.end == 0 || w.end > 1440 || w.start == w.end)
      return fail(ErrorCode::kMalformed, "policy: a window has no days or an empty or out-of-range span");
  }
  if (!is_valid_zone_name(p.timezone)) return fail(ErrorCode::kMalformed, "policy: timezone is not a zone name");
  if (p.start_delay_s < 0 || p.start_delay_s > 30 * 86400)
    return fail(ErrorCode::kMalformed, "policy: start_delay_s is from 0 to 30 days");
  if (p.max_age_s < 0) return fail(ErrorCode::kMalformed, "policy: max_age_s is not negative");
  if (p.download_early && p.windows.empty())
    return fail(ErrorCode::kMalformed, "policy: download_early needs install windows");
  if (p.defer_on.size() > kMaxConditions)
    return fail(ErrorCode::kMalformed, "policy: at most " + std::to_string(kMaxConditions) + " conditions");
  for (const auto& c : p.defer_on)
    if (!is_valid_condition(c)) return fail(ErrorCode::kMalformed, "policy: condition \"" + c + "\" is not [a-z0-9_-]{1,32}");
  return ok();
}

namespace {

// Converts times in one zone: "UTC" directly; a named zone through TZ,
// which is process-wide, so it is set once, under a lock, and restored.
class ZoneScope {
 public:
  static Result<std::unique_ptr<ZoneScope>> open(const std::string& zone) {
    if (zone != "UTC") {
      if (!is_valid_zone_name(zone) || zone == "local")
        return fail(ErrorCode::kUsage, "time zone \"" + zone + "\" is not a zone name");
      // The zone must exist: glibc silently takes an unknown TZ as UTC.
      struct stat st {};
      const std::string file = "/usr/share/zoneinfo/" + zone;
      if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return fail(ErrorCode::kUsage, "time zone \"" + zone + "\" is not in /usr/share/zoneinfo");
    }
    return std::unique_ptr<ZoneScope>(new ZoneScope(zone));
  }
  ~ZoneScope() {
    if (!lock_) return;
    if (had_) ::setenv("TZ", saved_.c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }
  Result<LocalTime> at(trust::Time t) const {
    std::tm tm{};
    const std::time_t tt = static_cast<std::time_t>(t);
    if (!(lock_ ? ::localtime_r(&tt, &tm) : ::gmtime_r(&tt, &tm))) return fail(ErrorCode::kUsage, "time out of range");
    return LocalTime{(tm.tm_wday + 6) % 7, tm.tm_hour * 60 + tm.tm_min};
  }

 private:
  explicit ZoneScope(const std::string& zone) {
    if (zone == "UTC") return;
    lock_.emplace(mutex());
    const char* old = std::getenv("TZ");
    had_ = old != nullptr;
    if (old) saved_ = old;
    ::setenv("TZ", (":" + zone).c_str(), 1);
    ::tzset();
  }
  static std::mutex& mutex() {
    static std::mutex mu;
    return mu;
  }
  std::optional<std::unique_lock<std::mutex>> lock_;
  bool had_ = false;
  std::string saved_;
};

}  // namespace

Result<LocalTime> local_time(trust::Time t, const std::string& zone) {
  OTA_TRY_ASSIGN(auto z, ZoneScope::open(zone));
  return z->at(t);
}

bool in_window(const std::vector<Window>& windows, const LocalTime& t) {
  if (windows.empty()) return true;
  for (const auto& w : windows) {
    if (w.start < w.end) {
      if ((w.days & (1u << t.weekday)) && t.minute >= w.start && t.minute < w.end) return true;
    } else {
      // Past midnight: the evening of a named day, or the early hours after it.
      const int yesterday = (t.weekday + 6) % 7;
      if ((w.days & (1u << t.weekday)) && t.minute >= w.start) return true;
      if ((w.days & (1u << yesterday)) && t.minute < w.end) return true;
    }
  }
  return false;
}

Result<std::optional<trust::Time>> next_open(const std::vector<Window>& windows, const std::string& zone, trust::Time t) {
  OTA_TRY_ASSIGN(auto z, ZoneScope::open(zone));
  OTA_TRY_ASSIGN(auto now, z->at(t));
  if (in_window(windows, now)) return std::optional<trust::Time>{t};
  // Minute by minute from the next whole minute (zones shift by whole minutes).
  trust::Time m = t - (t % 60) + 60;
  for (int i = 0; i < 8 * 1440; ++i, m += 60) {
    OTA_TRY_ASSIGN(auto lt, z->at(m));
    if (in_window(windows, lt)) return std::optional<trust::Time>{m};
  }
  return std::optional<trust::Time>{};
}

}  // namespace ota::campaign
