#include "fleet/campaign/fields.hpp"

namespace ota::campaign::detail {

Result<std::string> name_field(const json::Object& o, std::string_view key) {
  auto s = o.string(key, 64);
  if (!s) return fail(s.error());
  if (!is_valid_name(*s))
    return fail(ErrorCode::kMalformed, o.what() + "." + std::string(key) + " is not a name ([A-Za-z0-9._-]{1,64})");
  return s;
}

Result<double> ratio_field(const json::Object& o, const json::Json& j, std::string_view key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number())
    return fail(ErrorCode::kMalformed, o.what() + "." + std::string(key) + " is not a number");
  const double v = it->get<double>();
  if (!(v >= 0.0 && v <= 1.0))
    return fail(ErrorCode::kMalformed, o.what() + "." + std::string(key) + " is not between 0 and 1");
  return v;
}

Result<trust::Time> time_field(const json::Object& o, std::string_view key) {
  OTA_TRY_ASSIGN(auto s, o.string(key, 32));
  auto t = trust::parse_time(s);
  if (!t) return fail(t.error().with_context(o.what() + "." + std::string(key)));
  return t;
}

json::Ordered percent_json(std::uint32_t hundredths) {
  if (hundredths % 100 == 0) return json::Ordered(hundredths / 100);
  return json::Ordered(static_cast<double>(hundredths) / 100.0);
}

Result<std::uint32_t> percent_from(double v) {
  const double h = v * 100.0;
  // Rounded by hand: <cmath> would make the ota CLI map libm for this alone.
  const double r = static_cast<double>(static_cast<std::int64_t>(h + 0.5));
  const double off = h > r ? h - r : r - h;
  if (!(v > 0.0 && v <= 100.0) || off > 1e-6)
    return fail(ErrorCode::kMalformed, "a wave is a percentage in (0, 100] with at most two decimals");
  return static_cast<std::uint32_t>(r);
}

Status check_waves(const std::vector<std::uint32_t>& w) {
  if (w.empty() || w.size() > kMaxWaves)
    return fail(ErrorCode::kMalformed, "waves: between 1 and " + std::to_string(kMaxWaves) + " waves");
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0 || w[i] > 10000) return fail(ErrorCode::kMalformed, "waves: each is in (0, 100]");
    if (i > 0 && w[i] <= w[i - 1]) return fail(ErrorCode::kMalformed, "waves: percentages must increase");
  }
  if (w.back() != 10000) return fail(ErrorCode::kMalformed, "waves: the last wave must be 100");
  return ok();
}

Result<json::Json> parse_object(std::string_view text, std::size_t max, std::string_view what) {
  auto j = json::parse_strict(text, max, what);
  if (!j) return fail(j.error());
  return j;
}

}  // namespace ota::campaign::detail
