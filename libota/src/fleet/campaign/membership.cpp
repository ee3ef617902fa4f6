// Wave membership (a stable hash of campaign and device id), wave lists, durations.
#include "ota/fleet/campaign.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "fleet/campaign/fields.hpp"

namespace ota::campaign {

using namespace detail;

// ---- Membership ----

namespace {

std::uint64_t membership_hash(std::string_view campaign_id, std::string_view device_id) {
  std::string m = "ota-wave-v1";
  m.push_back('\0');
  m.append(campaign_id);
  m.push_back('\0');
  m.append(device_id);
  const Digest d = content_hash(ByteSpan(reinterpret_cast<const std::uint8_t*>(m.data()), m.size()));
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<std::size_t>(i)];
  return v;
}

}  // namespace

std::uint32_t position(std::string_view campaign_id, std::string_view device_id) {
  return static_cast<std::uint32_t>(membership_hash(campaign_id, device_id) >> 32);
}

std::uint32_t bucket(std::string_view campaign_id, std::string_view device_id) {
  const std::uint64_t v = membership_hash(campaign_id, device_id);
  // floor(v * 10000 / 2^64), exactly, in 64-bit arithmetic.
  const std::uint64_t hi = v >> 32, lo = v & 0xffffffffu;
  return static_cast<std::uint32_t>((hi * 10000u + ((lo * 10000u) >> 32)) >> 32);
}

std::size_t wave_of(const Campaign& c, std::string_view device_id) {
  const std::uint32_t b = bucket(c.id, device_id);
  for (std::size_t i = 0; i < c.waves.size(); ++i)
    if (c.waves[i] > b) return i;
  return c.waves.empty() ? 0 : c.waves.size() - 1;
}

Result<std::vector<std::uint32_t>> parse_waves(std::string_view text) {
  std::vector<std::uint32_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item(text.substr(pos, comma - pos));
    char* end = nullptr;
    errno = 0;
    const double v = item.empty() ? 0 : std::strtod(item.c_str(), &end);
    if (item.empty() || errno != 0 || end != item.c_str() + item.size())
      return fail(ErrorCode::kUsage, "waves: '" + item.substr(0, 16) + "' is not a percentage");
    auto p = percent_from(v);
    if (!p) return fail(ErrorCode::kUsage, p.error().message);
    out.push_back(*p);
    pos = comma + 1;
  }
  if (auto st = check_waves(out); !st) return fail(ErrorCode::kUsage, st.error().message);
  return out;
}

std::string format_percent(std::uint32_t h) {
  char buf[16];
  if (h % 10) std::snprintf(buf, sizeof buf, "%u.%02u%%", h / 100, h % 100);
  else if (h % 100) std::snprintf(buf, sizeof buf, "%u.%u%%", h / 100, h % 100 / 10);
  else std::snprintf(buf, sizeof buf, "%u%%", h / 100);
  return buf;
}

Result<std::int64_t> parse_duration(std::string_view text) {
  if (text.empty() || text.size() > 20) return fail(ErrorCode::kUsage, "a duration looks like 90s, 15m, 2h or 7d");
  std::int64_t unit = 1;
  std::string_view num = text;
  switch (text.back()) {
    case 's': unit = 1, num.remove_suffix(1); break;
    case 'm': unit = 60, num.remove_suffix(1); break;
    case 'h': unit = 3600, num.remove_suffix(1); break;
    case 'd': unit = 86400, num.remove_suffix(1); break;
    default: break;
  }
  if (num.empty() || num.size() > 12 || !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail(ErrorCode::kUsage, std::string(text).append(" is not a duration (90s, 15m, 2h, 7d)"));
  return static_cast<std::int64_t>(std::stoll(std::string(num))) * unit;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  auto bad = [&] { return fail(ErrorCode::kUsage, std::string(text).append(" is not a size (4096, 512K, 20M, 1G)")); };
  std::string_view num = text;
  if (num.size() > 3 && num.substr(num.size() - 2) == "iB") num.remove_suffix(2);  // 20MiB
  else if (num.size() > 1 && num.back() == 'B') num.remove_suffix(1);             // 20MB is 20 MiB too
  std::uint64_t unit = 1;
  if (!num.empty()) {
    switch (num.back()) {
      case 'K': case 'k': unit = 1ull << 10, num.remove_suffix(1); break;
      case 'M': unit = 1ull << 20, num.remove_suffix(1); break;
      case 'G': unit = 1ull << 30, num.remove_suffix(1); break;
      default: break;
    }
  }
  if (num.empty() || num.size() > 12 || !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad();
  return static_cast<std::uint64_t>(std::stoull(std::string(num))) * unit;
}

}  // namespace ota::campaign
