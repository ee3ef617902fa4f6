// On-device rollout policy (issue 17 item 3): when a device may install a
// campaign it is offered, as the release engineers signed it into the
// campaign document. The device evaluates it alone, offline too: install
// windows (days and hours in UTC, the device's configured zone or a named
// one), download early and switch banks in the window, a random start
// delay, a maximum bundle age, and conditions it checks with its own
// commands (metered link, battery, busy) that can defer an install.
//
// Contract:
// - Pure functions but local_time(), which reads the system's time zone
//   database (/usr/share/zoneinfo) for named zones.
// - A window is days (Monday first) and a span of minutes; an end at or
//   before the start runs past midnight into the next day (the day named is
//   the day it starts). No windows: any time.
// - A zone the device cannot resolve is an error: the caller defers, never
//   installs outside a window it cannot evaluate.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/release/trust.hpp"

namespace ota::campaign {

struct Window {
  std::uint8_t days = 0x7f;    // bit 0 Monday ... bit 6 Sunday
  std::uint16_t start = 0;     // minutes after local midnight, 0..1439
  std::uint16_t end = 1440;    // 1..1440; <= start: past midnight
  bool operator==(const Window&) const = default;
};

struct Policy {
  std::vector<Window> windows;     // empty: any time
  std::string timezone = "UTC";    // "UTC", "local" (the device's configured zone) or an IANA name
  bool download_early = false;     // outside a window: fetch and write now, switch banks in one
  std::int64_t start_delay_s = 0;  // each device waits a random time in [0, this) first
  std::int64_t max_age_s = 0;      // 0: none; a bundle created longer ago is not installed
  std::vector<std::string> defer_on;  // conditions the device checks ("metered", "battery", "busy", ...)
  bool operator==(const Policy&) const = default;
};

inline constexpr std::size_t kMaxWindows = 32;
inline constexpr std::size_t kMaxConditions = 8;

// "mon-fri 02:00-05:00", "sat,sun", "02:00-05:00", "daily 22:00-04:00",
// "sun 00:00-24:00": days (mon..sun, ranges, lists, "daily") and/or a span.
Result<Window> parse_window(std::string_view text);
std::string format_window(const Window& w);
// A zone name that can be looked up: "UTC", "local", or Area/Location
// ([A-Za-z0-9_+-] parts, no "..").
bool is_valid_zone_name(std::string_view zone);
// A condition name: [a-z0-9_-]{1,32}.
bool is_valid_condition(std::string_view name);
Status validate(const Policy& p);

struct LocalTime {
  int weekday = 0;  // 0 Monday ... 6 Sunday
  int minute = 0;   // 0..1439
};
// t in `zone` ("UTC" or an IANA name from /usr/share/zoneinfo).
Result<LocalTime> local_time(trust::Time t, const std::string& zone);
bool in_window(const std::vector<Window>& windows, const LocalTime& t);
// The first minute at or after t at which a window is open in `zone` (t
// itself when it is), looked up to 8 days ahead; nullopt when none is.
Result<std::optional<trust::Time>> next_open(const std::vector<Window>& windows, const std::string& zone, trust::Time t);

}  // namespace ota::campaign
