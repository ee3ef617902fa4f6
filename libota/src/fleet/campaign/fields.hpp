// Internal to the campaign component: field readers shared by the document,
// report and gate parsers. Not installed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"
#include "ota/fleet/campaign.hpp"

namespace ota::campaign::detail {

inline constexpr std::string_view kCampaignFormat = "ota-campaign-v1";
inline constexpr std::string_view kControlFormat = "ota-campaign-control-v1";
inline constexpr std::size_t kMaxHardware = 64;
inline constexpr std::size_t kMaxPaceDeltas = 256;

inline Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }
inline std::string_view as_text(ByteSpan b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A name ([A-Za-z0-9._-]{1,64}) at key.
Result<std::string> name_field(const json::Object& o, std::string_view key);
// A number in [0, 1] at key.
Result<double> ratio_field(const json::Object& o, const json::Json& j, std::string_view key);
// A UTC time (YYYY-MM-DDTHH:MM:SSZ) at key.
Result<trust::Time> time_field(const json::Object& o, std::string_view key);
// Hundredths of a percent as JSON (an integer when whole) and back.
json::Ordered percent_json(std::uint32_t hundredths);
Result<std::uint32_t> percent_from(double v);
// 1..kMaxWaves increasing percentages (hundredths), the last 100 %.
Status check_waves(const std::vector<std::uint32_t>& w);
// A JSON object of at most max bytes (strict: no duplicate keys).
Result<json::Json> parse_object(std::string_view text, std::size_t max, std::string_view what);

}  // namespace ota::campaign::detail
