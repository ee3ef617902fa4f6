// Pacing (issue 17 item 6): which devices of the open waves may start, and
// how fast the controller lets more in. Pure functions of the campaign, the
// controller's state, the device views and the tokens.
#include <algorithm>
#include <vector>

#include "ota/fleet/campaign.hpp"

namespace ota::campaign {

bool admitted(const Campaign& c, const Control& k, std::string_view device_id) {
  return !k.admit || position(c.id, device_id) < *k.admit;
}

std::uint64_t fetch_estimate(const Pace& p, const std::optional<Digest>& image) {
  if (image)
    for (const auto& [base, size] : p.deltas)
      if (base == *image) return size;
  return p.full_size;
}

trust::Time admitted_at(const ControllerState& s, std::uint32_t position) {
  // admissions grow: the first whose bound passed the position.
  for (const auto& [bound, when] : s.admissions)
    if (position < bound) return when;
  return 0;
}

void refill(const Pace& p, PaceTokens& t, double seconds) {
  if (seconds <= 0) return;
  const double minutes = seconds / 60.0;
  if (p.devices_per_minute)
    t.devices = std::min<double>(t.devices + static_cast<double>(p.devices_per_minute) * minutes,
                                 static_cast<double>(p.devices_per_minute));
  if (p.bytes_per_minute)
    t.bytes = std::min<double>(t.bytes + static_cast<double>(p.bytes_per_minute) * minutes,
                               static_cast<double>(p.bytes_per_minute));
}

std::optional<PaceStep> pace_step(const Campaign& c, const ControllerState& s,
                                  const std::map<std::string, DeviceView>& view, PaceTokens& tokens) {
  if (!c.pace || s.control.state != RunState::kRunning) return std::nullopt;
  const Pace& p = *c.pace;
  const std::uint64_t current = s.control.admit.value_or(std::uint64_t{1} << 32);
  // The candidates: devices of the open waves that have not started, above the bound.
  struct Candidate {
    std::uint32_t position;
    std::uint64_t bytes;
  };
  std::vector<Candidate> next;
  for (const auto& [id, v] : view) {
    if (v.wave > s.control.wave) continue;
    if (v.phase != Phase::kIdle && v.phase != Phase::kWaiting) continue;
    const std::uint32_t pos = position(c.id, id);
    if (pos < current) continue;
    next.push_back({pos, fetch_estimate(p, v.image)});
  }
  std::sort(next.begin(), next.end(), [](const Candidate& a, const Candidate& b) { return a.position < b.position; });
  PaceStep step;
  for (std::size_t i = 0; i < next.size();) {
    // Devices at the same position start together (they cannot be told apart).
    std::size_t j = i;
    std::uint64_t bytes = 0;
    while (j < next.size() && next[j].position == next[i].position) bytes += next[j++].bytes;
    const auto n = static_cast<double>(j - i);
    if (p.devices_per_minute && tokens.devices < n) break;
    if (p.bytes_per_minute && tokens.bytes < static_cast<double>(bytes)) {
      // Larger than a minute's budget: alone, once the bucket is full.
      const bool full = tokens.bytes >= static_cast<double>(p.bytes_per_minute);
      if (!(full && step.devices == 0)) break;
    }
    if (p.devices_per_minute) tokens.devices -= n;
    if (p.bytes_per_minute) tokens.bytes -= static_cast<double>(bytes);
    step.devices += j - i;
    step.bytes += bytes;
    step.admit = static_cast<std::uint64_t>(next[i].position) + 1;
    i = j;
  }
  if (step.devices == 0) return std::nullopt;
  return step;
}

}  // namespace ota::campaign
