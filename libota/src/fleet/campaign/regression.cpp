// The regression gate: health signals of the updated devices against the
// control group's, a one-sided test of two proportions (docs/protocol.md,
// "Regression gates").
#include <cmath>
#include <cstdio>

#include "ota/fleet/campaign.hpp"

namespace ota::campaign {

double two_proportion_z(std::uint64_t x1, std::uint64_t n1, std::uint64_t x2, std::uint64_t n2) {
  if (n1 == 0 || n2 == 0) return 0.0;
  const double p1 = static_cast<double>(x1) / static_cast<double>(n1);
  const double p2 = static_cast<double>(x2) / static_cast<double>(n2);
  const double p = static_cast<double>(x1 + x2) / static_cast<double>(n1 + n2);
  const double var = p * (1.0 - p) * (1.0 / static_cast<double>(n1) + 1.0 / static_cast<double>(n2));
  if (!(var > 0.0)) return 0.0;
  return (p1 - p2) / std::sqrt(var);
}

RegressionCounts regression_counts(const Campaign& c, const std::map<std::string, DeviceView>& view) {
  RegressionCounts k;
  if (!c.regression) return k;
  for (const auto& [id, v] : view) {
    if (!v.signals) continue;
    if (v.phase == Phase::kSucceeded) {
      ++k.updated;
      if (v.signals->regressed()) ++k.updated_regressed;
    } else if (v.phase == Phase::kWaiting) {
      ++k.control;
      if (v.signals->regressed()) ++k.control_regressed;
    }
  }
  return k;
}

namespace {
std::string fixed(double v, int digits) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}
}  // namespace

Decision regression_gate(const Campaign& c, const ControllerState& s, const std::map<std::string, DeviceView>& view) {
  if (!c.regression || s.regression_accepted || s.control.state != RunState::kRunning) return {};
  const Regression& g = *c.regression;
  const RegressionCounts k = regression_counts(c, view);
  if (k.updated < g.min_sample || k.control < g.min_sample) return {};
  const double diff = k.p_updated() - k.p_control();
  const double z = k.z();
  if (!(diff > g.margin) || !(z > g.z)) return {};
  Decision d;
  d.action = g.abort ? Decision::Action::kAbort : Decision::Action::kPause;
  d.reason = std::string(kRegressionReason) + ": " + std::to_string(k.updated_regressed) + " of " +
             std::to_string(k.updated) + " updated devices regressed (" + fixed(100 * k.p_updated(), 1) + " %) against " +
             std::to_string(k.control_regressed) + " of " + std::to_string(k.control) + " in the control group (" +
             fixed(100 * k.p_control(), 1) + " %): difference " + fixed(diff, 3) + " > margin " + fixed(g.margin, 3) +
             ", z " + fixed(z, 3) + " > " + fixed(g.z, 3);
  return d;
}

}  // namespace ota::campaign
