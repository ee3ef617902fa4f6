// The campaign controller: watches device reports, applies the gates, opens
// waves, pauses, aborts, completes (docs/protocol.md, "Controller").
//
// Contract:
// - Its state lives in a campaign directory: controller.key (the key that
//   signs control documents, 0600) and journal.jsonl, an append-only,
//   fsync'd journal of the publication, every final device result and every
//   decision with the counts behind it (the audit log).
// - A decision is journaled (synced) before it is published. On start the
//   controller rebuilds its view from the journal, then from the retained
//   device states, and republishes the current document: killed at any
//   instant and started again it reaches the same outcome; a broker that lost
//   its retained messages (kill -9) gets them again.
// - Operator commands (pause, resume, abort) arrive retained on the
//   commands topic and are applied once per command id.
// - A campaign with a security section (signed campaigns, identity.hpp)
//   makes the controller strict: its directory holds registry.json, whose
//   hash must be the one the campaign names (else open() fails); only
//   reports judge_report() accepts are counted and only commands
//   judge_command() accepts are obeyed; the others are dropped, logged and
//   counted by reason in the status (since the controller started). Final
//   results are journaled with their signed envelope (the receipt), and an
//   applied command with its envelope.
// - While the campaign runs, the current control document is signed again
//   (same revision, new issued and expires) once a third of the campaign's
//   control_ttl_s has passed, and republished retained: devices act only on
//   fresh control (check_control_fresh), so a stopped controller stops the
//   rollout and an old "running" document cannot be replayed for long.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/fleet/campaign.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/fleet/metrics.hpp"
#include "ota/core/error.hpp"
#include "ota/release/keys.hpp"
#include "ota/fleet/mqtt.hpp"

namespace ota::campaign {

inline constexpr char kControllerKeyFile[] = "controller.key";
inline constexpr char kJournalFile[] = "journal.jsonl";
inline constexpr char kRegistryFile[] = "registry.json";

// The controller's MQTT client queue (mqtt::Options::max_queued_events and
// max_queued_bytes): on every (re)subscription the broker sends the retained
// state of every device at once, faster than reports are judged (about
// 12,000 signed reports/s, bench/controller_bench.sh). What overflows is
// dropped and read again by the reconciliation, which meets the same flood:
// so the queue holds a whole fleet's states, up to a million signed reports
// of about 1 KiB (the memory is used only while a flood lasts).
inline constexpr std::size_t kControllerQueueEvents = 1u << 21;
inline constexpr std::size_t kControllerQueueBytes = std::size_t{1} << 30;
void use_controller_queue(mqtt::Options& o);

// Creates (or reopens, for a new revision) DIR and its controller key;
// returns the key's public half.
Result<keys::PublicKey> prepare_directory(const std::string& dir);

// Starts the journal of a campaign directory with the published document
// (the first record; a republication with a new campaign revision appends).
Status journal_publication(const std::string& dir, const std::string& document_text, trust::Time now);

// Sets a control document's issued and expires at `now`: a running control
// expires after the campaign's control_ttl_s, any other at the campaign's
// expiry.
void stamp_control(const Campaign& c, Control& k, trust::Time now);

// Signs the first control document of a campaign (wave 0 open, running).
Result<trust::Envelope> initial_control(const std::string& dir, const Campaign& c, trust::Time now);

struct Snapshot {
  Campaign campaign;
  ControllerState state;
  std::vector<WaveCounts> waves;
  std::map<std::string, DeviceView> devices;
  trust::Time now = 0;
  // Signed campaigns: what was dropped, by reason (drop_name,
  // command_drop_name), since the controller started.
  std::map<std::string, std::uint64_t> dropped_reports;
  std::map<std::string, std::uint64_t> ignored_commands;
};
// The status document the controller keeps retained on status_topic().
std::string encode_status(const Snapshot& s);

struct RunOptions {
  bool exit_on_pause = false;
  std::chrono::milliseconds tick{250};
  // While devices are pending and the fleet is quiet, read the retained
  // device states again this often (a broker may have dropped queued
  // reports), and publish the document again (a device may have missed it):
  // after this interval, then twice as long each time nothing changed, up
  // to 32 times it.
  std::chrono::milliseconds reconcile{30000};
  // Paced campaigns: how often the controller lets more devices in (each
  // step is a new control revision). The rates stay per minute.
  std::chrono::milliseconds pace_step{60000};
  std::function<trust::Time()> now;                   // default: the system clock
  std::function<void(const Snapshot&)> on_change;     // after new results or a decision (at most every 500 ms)
  bool change_devices = true;  // on_change's Snapshot carries the device views (a copy of the fleet's)
  std::function<void(const std::string&)> log;        // one line per decision or ignored message
  // Prometheus metrics (metrics.hpp): the text, every metrics_every and once
  // more when the campaign ends. Called on run()'s thread; not computed
  // when unset.
  std::function<void(const std::string&)> on_metrics;
  std::chrono::milliseconds metrics_every{1000};
  const volatile bool* stop = nullptr;                // set (by a signal handler) to return
  // Signed campaigns: threads that check report signatures when several
  // reports wait (0: one per core).
  unsigned verify_threads = 0;
};

class Controller {
 public:
  static Result<std::unique_ptr<Controller>> open(const std::string& dir);
  ~Controller();

  // Runs until the campaign completes (ok, kCompleted), is aborted
  // (kCampaignAborted; a revert_on_abort campaign first waits, at most the
  // device timeout, until every device that committed reported reverted or
  // revert-failed, so that the status counts them), or pauses with exit_on_pause (kCampaignPaused); or
  // until *stop (ok, state as it is).
  Result<RunState> run(mqtt::Client& client, const RunOptions& o);

  // with_devices false: Snapshot::devices stays empty (no copy of the fleet's views).
  Snapshot snapshot(trust::Time now, bool with_devices = true) const;
  // The campaign as Prometheus text (encode_metrics) at `now`.
  std::string metrics(trust::Time now, double reports_per_second) const;
  const std::string& document() const { return document_; }

 private:
  Controller() = default;
  Status replay();
  Status decide(mqtt::Client& client, Decision d, const std::string& command_id, trust::Time now,
                const RunOptions& o, const trust::Envelope* command = nullptr);
  Status publish_document(mqtt::Client& client);
  Status sync_journal(trust::Time now);
  // The retained status document, then o.on_change.
  Status publish_status(mqtt::Client& client, trust::Time now, const RunOptions& o);
  // Signs the running control again when a third of its TTL is gone; true when it did.
  bool refresh_control(trust::Time now);
  Status take_report(const Report& r, trust::Time now, const trust::Envelope* signed_report = nullptr);
  // A message on the commands topic / a device's state topic.
  Status on_command(mqtt::Client& client, const std::string& payload, trust::Time now, const RunOptions& o, bool& dirty);
  // checked: check_report() done beforehand (check_batch), or empty.
  Status on_report(const mqtt::Message& m, trust::Time now, const RunOptions& o, bool& dirty,
                   std::optional<JudgedReport>* checked = nullptr);
  // The device of ota/FLEET/devices/DEVICE/LEAF; "" for any other topic.
  std::string device_of(const std::string& topic, std::string_view leaf = "state") const;
  // Asks every device for its latest state again (sync_topic).
  Status request_states(mqtt::Client& client);
  // A message on a device's availability topic (true; false for any other):
  // a device that came online, and has not reported about this campaign,
  // gets the document on device_campaign_topic().
  bool greet(mqtt::Client& client, const mqtt::Message& m);
  static constexpr std::chrono::seconds kGreetInterval{10};
  static constexpr std::size_t kMaxGreeted = 1u << 21;
  // Signed campaigns: check_report() of every report in a batch, on up to
  // o.verify_threads threads; empty entries for commands (and unsigned campaigns).
  std::vector<std::optional<JudgedReport>> check_batch(const std::vector<mqtt::Message>& batch,
                                                       const std::string& commands, const RunOptions& o) const;

  std::string dir_;
  std::optional<Journal> journal_;
  std::unique_ptr<keys::SecretKey> key_;
  Campaign campaign_;
  trust::Envelope campaign_env_;
  ControllerState state_;
  trust::Envelope control_env_;
  std::vector<trust::Envelope> roots_;  // root updates published with the campaign
  std::string document_;
  std::map<std::string, DeviceView> view_;
  std::vector<std::string> applied_commands_;
  Registry registry_;  // signed campaigns
  std::map<std::string, std::uint64_t> dropped_reports_, ignored_commands_;
  std::uint64_t unsynced_ = 0;  // results appended since the last journal sync
  ControllerCounters counters_;  // since this object was opened (metrics)
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> greeted_;  // greet(): when each was sent the document
};

}  // namespace ota::campaign
