// A running campaign as Prometheus metrics: the text exposition format
// (version 0.0.4) that `ota campaign run --metrics ADDRESS` serves on
// /metrics (docs/protocol.md, "Metrics", lists every metric).
//
// Contract:
// - encode_metrics() is pure: the same input gives the same text. Every
//   sample carries the labels campaign and fleet; label values are escaped
//   (backslash, double quote, newline) and every family has HELP and TYPE.
// - Every phase, outcome and run state is written, zeros included, so a
//   dashboard's series exist from the first scrape.
// - Failure reasons are device-written text: at most kMetricsMaxReasons
//   distinct values (the most frequent; the rest summed as "other"), each
//   cut to kMetricsReasonBytes at a UTF-8 boundary, so a fleet cannot grow
//   the scrape without bound.
// - Counters (_total) count since the controller started; they restart at
//   0 with it, which Prometheus's rate() expects.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ota/fleet/campaign.hpp"

namespace ota::campaign {

inline constexpr std::size_t kMetricsMaxReasons = 20;
inline constexpr std::size_t kMetricsReasonBytes = 120;

// What the controller counts about itself since it started (not journaled).
struct ControllerCounters {
  std::uint64_t reports = 0;           // messages taken on the device state topics (duplicates, dropped ones too)
  std::uint64_t results = 0;           // final device results appended to the journal
  std::uint64_t decisions = 0;         // decisions journaled and published
  std::uint64_t state_requests = 0;    // "say your state again" requests to the fleet (sync_topic)
  std::uint64_t greetings = 0;         // documents sent to one device that came online
  std::uint64_t journal_syncs = 0;     // fsyncs of the journal
  std::uint64_t journal_unsynced = 0;  // results appended but not yet fsync'd: the journal's lag
  trust::Time started = 0;             // when the controller started (Unix seconds)
  trust::Time journal_synced = 0;      // the last fsync (Unix seconds; 0: none since the start)
};

// The rate of a running total over a sliding window: add() a sample (time in
// seconds, any monotonic origin, and the total), per_second() the increase
// over the window's samples divided by their time span (0 until two samples
// lie at least a tenth of a second apart).
class RateWindow {
 public:
  explicit RateWindow(double window_s = 10.0) : window_s_(window_s) {}
  void add(double t_s, std::uint64_t total);
  double per_second() const;

 private:
  double window_s_;
  std::deque<std::pair<double, std::uint64_t>> samples_;
};

struct MetricsInput {
  const Campaign& campaign;
  const ControllerState& state;
  const std::vector<WaveCounts>& waves;  // count() at the same time
  const std::map<std::string, DeviceView>& devices;
  const std::map<std::string, std::uint64_t>& dropped_reports;   // by drop_name
  const std::map<std::string, std::uint64_t>& ignored_commands;  // by command_drop_name
  const ControllerCounters& counters;
  double reports_per_second = 0;
};

std::string encode_metrics(const MetricsInput& in);

// The content type of encode_metrics()'s text.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace ota::campaign
