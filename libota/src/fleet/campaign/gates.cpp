// The controller's view of its devices and the gate decisions made on it.
#include "ota/fleet/campaign.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "fleet/campaign/fields.hpp"

namespace ota::campaign {

using namespace detail;

// ---- View and gates ----

bool observe(std::map<std::string, DeviceView>& view, const Campaign& c, const Report& r) {
  auto it = view.find(r.device);
  if (it != view.end() && r.seq <= it->second.seq) return false;  // duplicate or older
  DeviceView& v = view[r.device];
  const bool first = it == view.end();
  v.seq = r.seq;
  v.boot = r.boot;
  v.version = r.version;
  if (r.image_hash) v.image = r.image_hash;
  if (first) v.wave = wave_of(c, r.device);
  if (r.campaign != c.id) {
    // A device idle or busy elsewhere: it is in the fleet, with no progress here.
    // One already running this campaign's version has nothing to do.
    if (first || !is_final(v.phase)) {
      v.phase = Phase::kIdle;
      if (r.version == c.version) v.phase = Phase::kSkipped;
    }
    return true;
  }
  v.phase = r.phase;
  v.signals = r.signals;
  v.last = r.time;
  v.reason = r.reason;
  if (r.bytes_fetched) v.bytes_fetched = r.bytes_fetched;
  return true;
}

std::string_view action_name(Decision::Action a) {
  switch (a) {
    case Decision::Action::kNone: return "none";
    case Decision::Action::kOpenWave: return "open-wave";
    case Decision::Action::kPause: return "pause";
    case Decision::Action::kAbort: return "abort";
    case Decision::Action::kComplete: return "complete";
    case Decision::Action::kAdmit: return "admit";
  }
  return "none";
}

std::vector<WaveCounts> count(const Campaign& c, const ControllerState& s,
                              const std::map<std::string, DeviceView>& view, trust::Time now) {
  std::vector<WaveCounts> w(c.waves.size());
  for (const auto& [id, v] : view) {
    if (v.wave >= w.size()) continue;
    WaveCounts& k = w[v.wave];
    if (v.phase == Phase::kSkipped) {
      ++k.skipped;
      continue;
    }
    ++k.targeted;
    k.bytes_fetched += v.bytes_fetched;
    switch (v.phase) {
      case Phase::kSucceeded: ++k.succeeded; break;
      case Phase::kRolledBack: ++k.rolled_back; break;
      case Phase::kFailed: ++k.failed; break;
      case Phase::kAborted: ++k.aborted; break;
      case Phase::kReverting: ++k.reverting; break;
      case Phase::kReverted: ++k.reverted; break;
      case Phase::kRevertFailed: ++k.revert_failed; break;
      case Phase::kDeferred:
        // Held by its own policy (a window days away): pending, never timed out.
        ++k.deferred;
        ++k.pending;
        break;
      default: {
        // Silent past the timeout in an open wave: failed until it reports.
        const bool open = v.wave <= s.control.wave && v.wave < s.wave_opened.size();
        if (open && s.control.state == RunState::kRunning) {
          // Paced: a device waits for its turn without timing out; the
          // timeout runs from when it was let in.
          trust::Time since = s.wave_opened[v.wave];
          if (c.pace && s.control.admit) {
            const std::uint32_t pos = position(c.id, id);
            if (pos >= *s.control.admit) {
              ++k.pending;
              break;
            }
            since = std::max(since, admitted_at(s, pos));
          }
          const trust::Time heard = std::max(v.last, since);
          if (now - heard > c.gates.device_timeout_s) {
            ++k.failed;
            ++k.timed_out;
            break;
          }
        }
        ++k.pending;
      }
    }
  }
  return w;
}

std::uint64_t reverts_pending(const Campaign& c, const std::vector<WaveCounts>& waves) {
  if (!c.revert_on_abort) return 0;
  std::uint64_t n = 0;
  for (const auto& w : waves) n += w.succeeded + w.reverting;
  return n;
}

Decision evaluate(const Campaign& c, const ControllerState& s, const std::map<std::string, DeviceView>& view,
                  trust::Time now) {
  if (s.control.state != RunState::kRunning) return {};
  const auto w = count(c, s, view, now);
  const std::size_t open = std::min<std::size_t>(s.control.wave, w.size() - 1);
  WaveCounts all;
  for (std::size_t i = 0; i <= open; ++i) {
    all.targeted += w[i].targeted;
    all.succeeded += w[i].succeeded;
    all.rolled_back += w[i].rolled_back;
    all.failed += w[i].failed;
    all.pending += w[i].pending;
  }
  const WaveCounts& newest = w[open];
  const std::uint64_t sample = std::min<std::uint64_t>(c.gates.min_sample, all.targeted);
  auto ratio = [](std::uint64_t a, std::uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); };
  const std::string counts = std::to_string(all.succeeded) + " succeeded, " + std::to_string(all.failures()) +
                             " failed of " + std::to_string(all.finished()) + " finished, " +
                             std::to_string(all.targeted) + " targeted";
  // Failure gate: over every open wave, once a sample has finished (minus
  // what an operator accepted when resuming).
  const std::uint64_t failures = all.failures() - std::min(all.failures(), s.accepted_failures);
  const std::uint64_t finished = all.finished() - std::min(all.finished(), s.accepted_finished);
  if (finished > 0 && finished >= std::min<std::uint64_t>(sample, all.targeted - std::min(all.targeted, s.accepted_finished)) &&
      ratio(failures, finished) > c.gates.failure_threshold) {
    Decision d;
    d.action = c.gates.abort_on_failure ? Decision::Action::kAbort : Decision::Action::kPause;
    d.reason = "failure gate: " + counts + " (failure threshold " + std::to_string(c.gates.failure_threshold) + ")";
    return d;
  }
  // Regression gate (regression.cpp): health signals, updated against control.
  if (Decision r = regression_gate(c, s, view); r.action != Decision::Action::kNone) return r;
  if (open + 1 == w.size()) {
    if (all.pending == 0) return {Decision::Action::kComplete, "every targeted device finished: " + counts};
    return {};
  }
  // Success gate: the newest wave's sample finished, ratio met, soak passed.
  const std::uint64_t wave_sample = std::min<std::uint64_t>(c.gates.min_sample, newest.targeted);
  const trust::Time opened = open < s.wave_opened.size() ? s.wave_opened[open] : now;
  if (newest.finished() < wave_sample) return {};
  if (all.finished() > 0 && ratio(all.succeeded, all.finished()) < c.gates.success_threshold) return {};
  if (now - opened < c.gates.soak_s) return {};
  return {Decision::Action::kOpenWave, "wave " + std::to_string(open + 1) + " (" + format_percent(c.waves[open]) +
                                           ") passed its gate: " + counts};
}

}  // namespace ota::campaign
