// Prometheus text exposition of a running campaign (ota/fleet/metrics.hpp).
#include "ota/fleet/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <type_traits>

namespace ota::campaign {

void RateWindow::add(double t_s, std::uint64_t total) {
  samples_.emplace_back(t_s, total);
  // Keep one sample at or before the window's start, so the rate spans it.
  while (samples_.size() > 2 && samples_[1].first <= t_s - window_s_) samples_.pop_front();
}

double RateWindow::per_second() const {
  if (samples_.size() < 2) return 0;
  const auto& [t0, n0] = samples_.front();
  const auto& [t1, n1] = samples_.back();
  if (t1 - t0 < 0.1 || n1 < n0) return 0;
  return static_cast<double>(n1 - n0) / (t1 - t0);
}

namespace {

using Labels = std::initializer_list<std::pair<const char*, std::string>>;

// A label value in the exposition format: \ " and newline escaped.
void append_escaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

// Cut to at most n bytes without splitting a UTF-8 sequence.
std::string cut_utf8(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

class Exposition {
 public:
  Exposition(const std::string& campaign, const std::string& fleet) {
    base_ = "campaign=\"";
    append_escaped(base_, campaign);
    base_ += "\",fleet=\"";
    append_escaped(base_, fleet);
    base_ += "\"";
  }

  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  // An integer (std::uint64_t, std::int64_t) or a double, in its shortest exact form.
  template <typename T>
  void sample(const char* name, Labels labels, T v) {
    static_assert(std::is_same_v<T, std::uint64_t> || std::is_same_v<T, std::int64_t> || std::is_same_v<T, double>);
    head(name, labels);
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
    out_ += '\n';
  }

  std::string take() { return std::move(out_); }

 private:
  void head(const char* name, Labels labels) {
    out_ += name;
    out_ += '{';
    out_ += base_;
    for (const auto& [k, v] : labels) {
      out_ += ',';
      out_ += k;
      out_ += "=\"";
      append_escaped(out_, v);
      out_ += '"';
    }
    out_ += "} ";
  }

  std::string base_;
  std::string out_;
};

constexpr Phase kPhases[] = {Phase::kIdle,       Phase::kWaiting,   Phase::kDeferred,  Phase::kDownloading,
                             Phase::kRebooting,  Phase::kSucceeded, Phase::kRolledBack, Phase::kFailed,
                             Phase::kAborted,    Phase::kSkipped,   Phase::kReverting, Phase::kReverted,
                             Phase::kRevertFailed};
constexpr RunState kStates[] = {RunState::kRunning, RunState::kPaused, RunState::kAborted, RunState::kCompleted};

// Devices whose last report is a failure, by reason (the most frequent
// kMetricsMaxReasons; the rest as "other"), and the timed-out ones.
std::vector<std::pair<std::string, std::uint64_t>> failure_reasons(const MetricsInput& in) {
  std::map<std::string, std::uint64_t> by;
  for (const auto& [id, d] : in.devices)
    if (is_failure(d.phase) || d.phase == Phase::kRevertFailed)
      ++by[d.reason.empty() ? std::string("unknown") : cut_utf8(d.reason, kMetricsReasonBytes)];
  std::uint64_t timed_out = 0;
  for (const auto& w : in.waves) timed_out += w.timed_out;
  if (timed_out > 0) by["timed out (no report within the device timeout)"] += timed_out;
  std::vector<std::pair<std::string, std::uint64_t>> out(by.begin(), by.end());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > kMetricsMaxReasons) {
    std::uint64_t rest = 0;
    for (std::size_t i = kMetricsMaxReasons - 1; i < out.size(); ++i) rest += out[i].second;
    out.resize(kMetricsMaxReasons - 1);
    out.emplace_back("other", rest);
  }
  return out;
}

}  // namespace

std::string encode_metrics(const MetricsInput& in) {
  const Campaign& c = in.campaign;
  const Control& k = in.state.control;
  Exposition x(c.id, c.fleet);

  x.family("ota_campaign_info", "gauge", "The campaign: its version and revisions (always 1).");
  x.sample("ota_campaign_info",
           {{"version", c.version}, {"revision", std::to_string(c.revision)}, {"control_revision", std::to_string(k.revision)}},
           std::uint64_t{1});
  x.family("ota_campaign_state", "gauge", "1 for the run state the campaign is in, 0 for the others.");
  for (RunState s : kStates) x.sample("ota_campaign_state", {{"state", std::string(run_state_name(s))}}, std::uint64_t{k.state == s});

  x.family("ota_campaign_waves", "gauge", "Waves in the campaign.");
  x.sample("ota_campaign_waves", {}, std::uint64_t{c.waves.size()});
  x.family("ota_campaign_waves_open", "gauge", "Waves opened so far (waves 1..N may install).");
  x.sample("ota_campaign_waves_open", {}, std::uint64_t{k.wave} + 1);
  x.family("ota_campaign_wave_share", "gauge", "The share of the fleet that waves 1..wave cover (cumulative, 0..1).");
  for (std::size_t i = 0; i < c.waves.size(); ++i)
    x.sample("ota_campaign_wave_share", {{"wave", std::to_string(i + 1)}}, static_cast<double>(c.waves[i]) / 10000.0);
  x.family("ota_campaign_wave_opened_timestamp_seconds", "gauge", "When each open wave opened (Unix seconds).");
  for (std::size_t i = 0; i < in.state.wave_opened.size(); ++i)
    x.sample("ota_campaign_wave_opened_timestamp_seconds", {{"wave", std::to_string(i + 1)}},
             static_cast<std::int64_t>(in.state.wave_opened[i]));

  x.family("ota_campaign_wave_devices", "gauge",
           "Devices of each wave by outcome (failed includes timed_out; pending includes deferred).");
  for (std::size_t i = 0; i < in.waves.size(); ++i) {
    const auto& w = in.waves[i];
    const std::string wave = std::to_string(i + 1);
    const std::pair<const char*, std::uint64_t> outcomes[] = {
        {"targeted", w.targeted},   {"succeeded", w.succeeded}, {"rolled_back", w.rolled_back},
        {"failed", w.failed},       {"timed_out", w.timed_out}, {"aborted", w.aborted},
        {"skipped", w.skipped},     {"pending", w.pending},     {"deferred", w.deferred},
        {"reverting", w.reverting}, {"reverted", w.reverted},   {"revert_failed", w.revert_failed}};
    for (const auto& [name, n] : outcomes) x.sample("ota_campaign_wave_devices", {{"wave", wave}, {"outcome", name}}, n);
  }
  x.family("ota_campaign_wave_bytes_fetched", "gauge", "Bytes the devices of each wave reported fetching.");
  for (std::size_t i = 0; i < in.waves.size(); ++i)
    x.sample("ota_campaign_wave_bytes_fetched", {{"wave", std::to_string(i + 1)}}, in.waves[i].bytes_fetched);

  x.family("ota_campaign_gate_threshold", "gauge",
           "The gates: successes/finished must reach success, failures/finished above failure trips the failure gate.");
  x.sample("ota_campaign_gate_threshold", {{"gate", "success"}}, c.gates.success_threshold);
  x.sample("ota_campaign_gate_threshold", {{"gate", "failure"}}, c.gates.failure_threshold);
  x.family("ota_campaign_gate_min_sample", "gauge", "Finished devices of the newest wave before it is judged.");
  x.sample("ota_campaign_gate_min_sample", {}, std::uint64_t{c.gates.min_sample});

  x.family("ota_campaign_devices", "gauge", "Devices by the phase of their last report.");
  std::map<Phase, std::uint64_t> phases;
  std::uint64_t bytes = 0;
  for (const auto& [id, d] : in.devices) {
    ++phases[d.phase];
    bytes += d.bytes_fetched;
  }
  for (Phase p : kPhases) x.sample("ota_campaign_devices", {{"phase", std::string(phase_name(p))}}, phases[p]);
  x.family("ota_campaign_device_failures", "gauge",
           "Devices whose last report is a failure (failed, rolled back, revert failed) or that timed out, by reason.");
  for (const auto& [reason, n] : failure_reasons(in)) x.sample("ota_campaign_device_failures", {{"reason", reason}}, n);
  x.family("ota_campaign_bytes_fetched", "gauge", "Bytes the devices reported fetching, summed over the fleet.");
  x.sample("ota_campaign_bytes_fetched", {}, bytes);

  const ControllerCounters& n = in.counters;
  x.family("ota_campaign_reports_total", "counter", "Device reports the controller took since it started.");
  x.sample("ota_campaign_reports_total", {}, n.reports);
  x.family("ota_campaign_reports_per_second", "gauge", "Device reports per second over the last 10 seconds.");
  x.sample("ota_campaign_reports_per_second", {}, in.reports_per_second);
  x.family("ota_campaign_reports_dropped_total", "counter", "Reports a signed campaign dropped since the start, by reason.");
  for (const auto& [reason, v] : in.dropped_reports) x.sample("ota_campaign_reports_dropped_total", {{"reason", reason}}, v);
  x.family("ota_campaign_commands_ignored_total", "counter", "Operator commands ignored since the start, by reason.");
  for (const auto& [reason, v] : in.ignored_commands) x.sample("ota_campaign_commands_ignored_total", {{"reason", reason}}, v);
  x.family("ota_campaign_results_total", "counter", "Final device results journaled since the start.");
  x.sample("ota_campaign_results_total", {}, n.results);
  x.family("ota_campaign_decisions_total", "counter", "Decisions (waves, pauses, aborts, admissions) since the start.");
  x.sample("ota_campaign_decisions_total", {}, n.decisions);
  x.family("ota_campaign_state_requests_total", "counter",
           "Requests to every device to publish its state again (on connecting, and while pending devices are quiet).");
  x.sample("ota_campaign_state_requests_total", {}, n.state_requests);
  x.family("ota_campaign_device_documents_total", "counter",
           "Campaign documents sent to one device that came online (its broker node may lack the retained one).");
  x.sample("ota_campaign_device_documents_total", {}, n.greetings);
  x.family("ota_campaign_journal_unsynced_results", "gauge",
           "Results appended to the journal but not yet fsync'd (the journal's lag; lost in a crash, sent again by devices).");
  x.sample("ota_campaign_journal_unsynced_results", {}, n.journal_unsynced);
  x.family("ota_campaign_journal_syncs_total", "counter", "fsyncs of the journal since the start.");
  x.sample("ota_campaign_journal_syncs_total", {}, n.journal_syncs);
  x.family("ota_campaign_journal_last_sync_timestamp_seconds", "gauge", "The journal's last fsync (Unix seconds; 0: none yet).");
  x.sample("ota_campaign_journal_last_sync_timestamp_seconds", {}, static_cast<std::int64_t>(n.journal_synced));
  x.family("ota_campaign_controller_start_timestamp_seconds", "gauge", "When this controller started (Unix seconds).");
  x.sample("ota_campaign_controller_start_timestamp_seconds", {}, static_cast<std::int64_t>(n.started));
  return x.take();
}

}  // namespace ota::campaign
