// Staged campaigns: the signed documents, deterministic wave membership,
// device reports, the success gates and the controller's journal
// (docs/protocol.md). Pure: no I/O but the journal file; the MQTT side lives
// in publish.hpp (publishing), controller.hpp and the agent.
//
// Contract:
// - A campaign (what to install, where to fetch it, the waves and the gates)
//   is signed by the release keys under the trust root that signs bundles,
//   and names a controller key. The controller key signs control documents
//   (which waves are open; running, paused, aborted, completed), so the
//   controller opens waves without holding release keys, and a holder of the
//   controller key can never change what is installed.
// - Both documents carry revisions; a device accepts (campaign revision,
//   control revision) pairs that increase, ignores an equal pair (QoS 1
//   redelivery), and rejects an older one as stale. A campaign past its
//   expiry is rejected. Signatures are checked before the payloads are parsed.
// - Wave membership: a device is in the first wave whose percentage exceeds
//   bucket(campaign id, device id), a hash mapped to [0, 100) in hundredths
//   of a percent. It depends on nothing else, so devices compute it
//   themselves and it stays stable as the fleet grows.
// - Success counts only once a device reports it committed the new image
//   after rebooting into it; a rollback or a failed install is a failure; a
//   device silent past the device timeout counts as failed until it reports.
// - evaluate() is a pure function of the campaign, the control state, the
//   device views and the time: the controller rebuilt from its journal and
//   the retained device states reaches the same decisions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/fleet/policy.hpp"
#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"

namespace ota::campaign {

inline constexpr std::string_view kCampaignType = "application/vnd.ota.campaign+json";
inline constexpr std::string_view kControlType = "application/vnd.ota.campaign-control+json";
inline constexpr std::size_t kMaxDocumentBytes = 256u << 10;
inline constexpr std::size_t kMaxReportBytes = 16u << 10;
inline constexpr std::size_t kMaxWaves = 32;
inline constexpr std::size_t kMaxRootUpdates = 16;

// Topic names under the fleet prefix (docs/protocol.md, "Topics").
std::string campaign_topic(std::string_view fleet, std::string_view id);
std::string commands_topic(std::string_view fleet, std::string_view id);
std::string status_topic(std::string_view fleet, std::string_view id);
std::string state_topic(std::string_view fleet, std::string_view device);
std::string events_topic(std::string_view fleet, std::string_view device);
std::string availability_topic(std::string_view fleet, std::string_view device);
// Asked by the controller (QoS 1, not retained): "every device, publish your
// latest state again". The same request as re-reading the retained states,
// for brokers whose retained store does not span every node (a cluster).
// Devices subscribe to sync_filter(); the payload is not read.
std::string sync_topic(std::string_view fleet, std::string_view id);
std::string sync_filter(std::string_view fleet);
// The campaign document sent to one device (QoS 1, not retained): what a
// device that just connected to a node without the retained document gets
// from the controller. Devices subscribe to device_campaigns_filter().
std::string device_campaign_topic(std::string_view fleet, std::string_view device, std::string_view id);
std::string device_campaigns_filter(std::string_view fleet, std::string_view device);
// A fleet, campaign or device id: [A-Za-z0-9._-]{1,64} (safe in topics and file names).
bool is_valid_name(std::string_view s);

struct Gates {
  double success_threshold = 0.95;  // successes / finished, over the open waves
  double failure_threshold = 0.05;  // failures / finished above this trips the failure gate
  std::uint32_t min_sample = 1;     // finished devices of the newest wave before it is judged
  std::int64_t soak_s = 0;          // the newest wave stays open at least this long
  std::int64_t device_timeout_s = 3600;  // silent this long in an open wave: failed
  bool abort_on_failure = false;    // the failure gate aborts instead of pausing
};

// Signed reports and operator commands (ota/fleet/identity.hpp): present in a
// campaign, it makes the controller strict: only reports signed by a device
// key of the registry whose hash it names count, and only commands signed by
// one of its operator keys are obeyed. Absent: the old unsigned mode.
struct Security {
  Digest registry_hash{};                  // content_hash of the exact registry file bytes
  std::uint64_t registry_devices = 0;      // how many devices it lists (informational)
  std::vector<keys::PublicKey> operators;  // may sign pause, resume, abort (1..16)
};

// Pacing (issue 17): how fast the devices of the open waves may start, so a
// CDN or a cellular plan sets the pace. The controller admits devices in the
// order of their position() (the same hash as the waves, finer), while a
// token bucket of one minute's budget allows, and says how far in the
// control's `admit`; a device starts only below it. The bytes a device will
// fetch are estimated from the image hash it reports: the size of the delta
// from that image when the bundle holds one, else the full payload's.
struct Pace {
  std::uint64_t devices_per_minute = 0;  // 0: no limit on devices
  std::uint64_t bytes_per_minute = 0;    // 0: no limit on bytes
  std::uint64_t full_size = 0;           // the full payload (stored bytes)
  std::vector<std::pair<Digest, std::uint64_t>> deltas;  // base image hash -> delta payload size
};

// Regression gate (issue 17, docs/protocol.md "Regression gates"): after
// the install, devices keep reporting health signals for an observation
// period; devices of the campaign not yet updated report the same signals as
// the control group. The controller compares the share of regressed devices
// (any health-check failure, unexpected reboot or counter increase while
// observed) of both groups with a one-sided test of two proportions.
struct Regression {
  std::int64_t observe_s = 3600;     // how long a device observes after it committed (or began waiting)
  std::int64_t interval_s = 300;     // between two observations (health check, counter) and their report
  double margin = 0.05;              // p_updated - p_control must exceed this
  std::uint32_t min_sample = 20;     // devices reporting signals in each group before it is judged
  double z = 1.645;                  // the one-sided z threshold (1.645: alpha 0.05)
  bool abort = false;                // the gate aborts instead of pausing
};

struct Campaign {
  std::string id;
  std::string fleet;
  std::uint64_t revision = 1;
  trust::Time created = 0;
  trust::Time expires = 0;
  // The bundle: its manifest's content hash, version and hardware (copied
  // from the signed manifest so a device can decide before fetching).
  Digest manifest_hash{};
  std::string version;
  std::vector<std::string> hardware;
  std::string url;
  std::uint64_t bundle_size = 0;
  std::vector<std::uint32_t> waves;  // cumulative, in hundredths of a percent; last is 10000
  Gates gates;
  keys::PublicKey controller;  // signs the control documents
  // A running control document is valid at most this long after it was
  // issued; the controller signs it again well before (a timestamp role, as
  // in TUF), so a device acts only while the controller is alive and an old
  // "running" document cannot be replayed after a pause or an abort.
  std::int64_t control_ttl_s = 900;
  std::optional<Security> security;  // absent: unsigned reports and commands (legacy)
  std::optional<Pace> pace;          // absent: every device of an open wave may start at once
  // On an abort, devices that committed this campaign's image switch back to
  // the image they ran before, when it still verifies (docs/protocol.md,
  // "Revert on abort"). Encoded only when true.
  bool revert_on_abort = false;
  std::optional<Policy> policy;      // absent: a device installs as soon as its wave lets it (policy.hpp)
  std::optional<Regression> regression;  // absent: no health signals, no regression gate
  // A security update: the advisory text and ids of the bundle's signed
  // manifest (`ota publish` copies them; a device refuses a bundle whose
  // manifest does not say the same). A device configured to take security
  // updates at any time installs such a campaign outside its install windows.
  std::optional<manifest::Security> advisory;
};

enum class RunState { kRunning, kPaused, kAborted, kCompleted };
std::string_view run_state_name(RunState s);

struct Control {
  std::string campaign;
  std::uint64_t campaign_revision = 1;
  std::uint64_t revision = 1;
  std::uint32_t wave = 0;  // waves 0..wave are open
  RunState state = RunState::kRunning;
  trust::Time issued = 0;
  std::string reason;
  trust::Time expires = 0;  // 0: none (refused by devices unless paused or aborted)
  // Paced campaigns: only devices whose position() is below this may start
  // (in [0, 2^32]; it only grows). Absent: the open waves start at once.
  std::optional<std::uint64_t> admit;
};

Bytes encode_campaign(const Campaign& c);
Result<Campaign> parse_campaign(ByteSpan bytes);
Status validate(const Campaign& c);
Bytes encode_control(const Control& c);
Result<Control> parse_control(ByteSpan bytes);

// The retained document on campaign_topic(): both signed envelopes.
// `roots`: optional trust root updates (root envelopes, each signed as for
// bundles: a threshold of the previous root's keys and of its own); devices
// walk and save them before they verify the campaign.
struct Document {
  trust::Envelope campaign;
  trust::Envelope control;
  std::vector<trust::Envelope> roots;
};
std::string encode_document(const Document& d);
Result<Document> parse_document(std::string_view text);

// A document whose signatures verified, parsed.
struct Verified {
  Campaign campaign;
  Control control;
};
// Verifies the campaign envelope against the trust store (threshold of the
// release keys, fresh root), then the control envelope against the
// campaign's controller key; parses each only after its signatures verify.
// kExpired past the campaign's expiry; kMalformed when the control names
// another campaign or revision.
Result<Verified> verify_document(const trust::TrustStore& trust, const Document& d, trust::Time now);

// Freshness of a verified control document at `now` (kStaleCampaign): a
// running or completed control needs an expiry in the future, and a running
// one may live no longer than the campaign's control_ttl_s; paused and
// aborted controls only restrain, and are honoured whatever their age.
Status check_control_fresh(const Campaign& c, const Control& k, trust::Time now);

// Signs a control document with the controller key.
trust::Envelope sign_control(const Control& c, const keys::SecretKey& controller);

// Orders what a device has accepted: <0 older (stale), 0 same, >0 newer.
int compare_revisions(const Control& a, const Control& b);

// [0, 10000): hundredths of a percent.
std::uint32_t bucket(std::string_view campaign_id, std::string_view device_id);
// The index of the first wave whose percentage exceeds the device's bucket.
std::size_t wave_of(const Campaign& c, std::string_view device_id);
// [0, 2^32): the same hash as bucket(), finer (monotonic with it: a device
// of an earlier wave never has a higher position than one of a later wave).
std::uint32_t position(std::string_view campaign_id, std::string_view device_id);
// Whether the control lets this device start as far as pacing goes (the
// wave and the run state are checked apart): no admit, or position below it.
bool admitted(const Campaign& c, const Control& k, std::string_view device_id);
// What a device whose running image hashes to `image` will fetch: the delta
// from that image when the paced campaign lists one, else the full payload.
std::uint64_t fetch_estimate(const Pace& p, const std::optional<Digest>& image);
// Parses "1,10,50,100" (percentages, up to two decimals; increasing; last 100).
Result<std::vector<std::uint32_t>> parse_waves(std::string_view text);
std::string format_percent(std::uint32_t hundredths);
// Parses "90s", "15m", "2h", "7d" or plain seconds.
Result<std::int64_t> parse_duration(std::string_view text);
// Parses "4096", "512K", "20M", "1G" (also "20MiB", "20MB": powers of 1024).
Result<std::uint64_t> parse_size(std::string_view text);

// ---- Device reports ----------------------------------------------------

enum class Phase {
  kIdle,         // no campaign in progress
  kWaiting,      // accepted the campaign, its wave is not open yet
  kDownloading,  // fetching and writing the inactive bank
  kRebooting,    // written and verified; trial boot begun
  kSucceeded,    // rebooted into the new image and committed it (final)
  kRolledBack,   // the trial was rolled back (final, a failure)
  kFailed,       // the install failed; the old image runs (final, a failure)
  kAborted,      // stopped or skipped by an abort; the old image runs (final)
  kSkipped,      // not for this device: hardware, or already running the version (final)
  // Revert on abort (Campaign::revert_on_abort), after kSucceeded:
  kReverting,     // the previous image verified; its trial boot begun
  kReverted,      // rebooted into the previous image and committed it (final)
  kRevertFailed,  // no revert: not recorded, no longer verifies, or failed its health check; the new image runs (final)
  // The device's rollout policy (Campaign::policy) holds it: outside its
  // install windows, its start delay, a condition (metered, battery, busy);
  // the reason says which and until when. Written early, it waits for a window.
  kDeferred,
};
std::string_view phase_name(Phase p);
bool is_final(Phase p);
bool is_failure(Phase p);

// Health signals a device observed for a campaign with a regression section
// (the updated devices after they committed; the control group while they
// wait). Counted since the observation began, durable across restarts.
struct Signals {
  std::int64_t observed_s = 0;           // seconds observed so far (at most Regression::observe_s)
  std::uint64_t health_failures = 0;     // health checks that failed
  std::uint64_t unexpected_reboots = 0;  // agent starts not caused by an install or a revert of its own
  std::uint64_t counter = 0;             // increase of the configured counter command's value
  bool regressed() const { return health_failures + unexpected_reboots + counter > 0; }
};

struct Report {
  std::string device;
  std::uint64_t seq = 0;   // per device, increases across reboots
  std::string boot;        // boot session: a new id on every agent start
  trust::Time time = 0;
  std::string campaign;    // empty when idle
  Phase phase = Phase::kIdle;
  std::string version;     // the running version
  std::string reason;      // failures: why (an error message)
  int code = 0;            // failures: the ErrorCode value
  std::uint64_t bytes_fetched = 0;
  // The install receipt (final results; optional, when known): the slot the
  // device booted and the hash of the image that runs in it.
  std::string slot;                 // "a", "b" or empty
  std::optional<Digest> image_hash;
  std::optional<Signals> signals;   // campaigns with a regression section, while observing
};
std::string encode_report(const Report& r);
Result<Report> parse_report(std::string_view text);

// Retained on availability_topic(); the last will says online=false.
struct Availability {
  std::string device;
  std::string boot;
  bool online = false;
};
std::string encode_availability(const Availability& a);
Result<Availability> parse_availability(std::string_view text);

// An operator's command, retained on commands_topic(); applied once per id.
// In a signed campaign it travels as an envelope signed by an operator key
// (identity.hpp: sign_command), and names its campaign and fleet and expires.
struct Command {
  std::string id;      // random, unique per command
  std::string action;  // "pause", "resume" or "abort"
  trust::Time time = 0;
  std::string reason;
  // Signed commands only (empty/0 in the legacy bare document):
  std::string campaign;
  std::string fleet;
  trust::Time expires = 0;
};
std::string encode_command(const Command& c);
Result<Command> parse_command(std::string_view text);

// ---- The controller's view and gates ---------------------------------------

struct DeviceView {
  std::size_t wave = 0;
  Phase phase = Phase::kIdle;
  std::uint64_t seq = 0;
  std::string boot;
  trust::Time last = 0;   // time of the last report received
  std::string reason;
  std::string version;
  std::uint64_t bytes_fetched = 0;
  std::optional<keys::Signature> sig;  // signed campaigns: the signature of the report taken
  std::optional<Digest> image;         // the running image's hash, when the device reports it
  std::optional<Signals> signals;      // the last report's health signals (regression gate)
};

// Takes a report into the view when it is newer than what the view holds
// (per device sequence number); a duplicate or an older report returns false.
// Reports about other campaigns update nothing but the running version.
bool observe(std::map<std::string, DeviceView>& view, const Campaign& c, const Report& r);

struct WaveCounts {
  std::uint64_t targeted = 0;     // devices known to be in this wave
  std::uint64_t succeeded = 0;
  std::uint64_t rolled_back = 0;
  std::uint64_t failed = 0;       // install failures and timeouts (rolled back not included)
  std::uint64_t timed_out = 0;    // of failed: silent past the device timeout
  std::uint64_t aborted = 0;
  std::uint64_t skipped = 0;
  std::uint64_t pending = 0;      // not final yet
  std::uint64_t bytes_fetched = 0;
  // Revert on abort: devices switching back, switched back, and refused or failed.
  std::uint64_t reverting = 0;
  std::uint64_t reverted = 0;
  std::uint64_t revert_failed = 0;
  std::uint64_t deferred = 0;     // of pending: held by their own rollout policy (never timed out)
  std::uint64_t finished() const { return succeeded + rolled_back + failed; }
  std::uint64_t failures() const { return rolled_back + failed; }
};

// The controller's own state, rebuilt from its journal.
struct ControllerState {
  Control control;
  std::vector<trust::Time> wave_opened;  // when each open wave opened
  // Failures an operator accepted by resuming a campaign the failure gate
  // paused: the gate then judges only what finished after the resume.
  std::uint64_t accepted_failures = 0;
  std::uint64_t accepted_finished = 0;
  // Paced campaigns: each growth of control.admit and when it was decided,
  // in order (a device's wait for the device timeout starts when it was
  // admitted, not when its wave opened).
  std::vector<std::pair<std::uint64_t, trust::Time>> admissions;
  // An operator resumed a campaign the regression gate paused: the gate
  // does not judge it again (the operator accepted the difference).
  bool regression_accepted = false;
};
// When the device at `position` was admitted (0: not yet, or not paced).
trust::Time admitted_at(const ControllerState& s, std::uint32_t position);

struct Decision {
  enum class Action { kNone, kOpenWave, kPause, kAbort, kComplete, kAdmit };
  Action action = Action::kNone;
  std::string reason;
  std::uint64_t admit = 0;  // kAdmit: the new control.admit
};
std::string_view action_name(Decision::Action a);

// Counts per wave (all waves, open or not), with timeouts applied at `now`.
std::vector<WaveCounts> count(const Campaign& c, const ControllerState& s,
                              const std::map<std::string, DeviceView>& view, trust::Time now);
// Devices an aborted revert_on_abort campaign still waits for: committed
// (succeeded, the revert not yet begun) or reverting. 0 for other campaigns.
std::uint64_t reverts_pending(const Campaign& c, const std::vector<WaveCounts>& waves);
// The gates (see the contract above and docs/protocol.md, "Gates").
Decision evaluate(const Campaign& c, const ControllerState& s, const std::map<std::string, DeviceView>& view,
                  trust::Time now);

// Pacing: the tokens left (devices and bytes; a dimension without a limit is
// not counted), refilled by the controller at the campaign's rates and
// capped at one minute's budget.
struct PaceTokens {
  double devices = 0;
  double bytes = 0;
};
void refill(const Pace& p, PaceTokens& t, double seconds);
// Admits, in position order, the pending devices of the open waves above
// the current admit while the tokens last (a device larger than a minute's
// bytes goes alone when the bucket is full); the new admit bound, the
// devices and bytes it lets start, or nothing to admit. Consumes tokens.
struct PaceStep {
  std::uint64_t admit = 0;
  std::uint64_t devices = 0;
  std::uint64_t bytes = 0;
};
std::optional<PaceStep> pace_step(const Campaign& c, const ControllerState& s,
                                  const std::map<std::string, DeviceView>& view, PaceTokens& tokens);

// ---- Regression gate (regression.cpp) ---------------------------------------

// The one-sided pooled test of two proportions: x1 of n1 regressed among
// the updated devices, x2 of n2 in the control group. z = (p1 - p2) / sqrt(
// p (1 - p) (1/n1 + 1/n2)) with p = (x1 + x2) / (n1 + n2); 0 when either
// sample is empty or the pooled variance is 0 (both all or none regressed).
double two_proportion_z(std::uint64_t x1, std::uint64_t n1, std::uint64_t x2, std::uint64_t n2);

struct RegressionCounts {
  std::uint64_t updated = 0;             // committed devices of the open waves that reported signals
  std::uint64_t updated_regressed = 0;
  std::uint64_t control = 0;             // devices waiting in the campaign that reported signals
  std::uint64_t control_regressed = 0;
  double p_updated() const { return updated ? static_cast<double>(updated_regressed) / static_cast<double>(updated) : 0.0; }
  double p_control() const { return control ? static_cast<double>(control_regressed) / static_cast<double>(control) : 0.0; }
  double z() const { return two_proportion_z(updated_regressed, updated, control_regressed, control); }
};
// The two groups from the device views (devices of every wave).
RegressionCounts regression_counts(const Campaign& c, const std::map<std::string, DeviceView>& view);
// The regression gate alone: kPause (kAbort) when both groups hold at least
// min_sample devices, p_updated - p_control > margin and z > the threshold;
// kNone otherwise, for campaigns without a regression section, and once an
// operator accepted a regression (ControllerState::regression_accepted).
Decision regression_gate(const Campaign& c, const ControllerState& s, const std::map<std::string, DeviceView>& view);
// "regression gate: ..." reasons start with this (a resume after one accepts it).
inline constexpr std::string_view kRegressionReason = "regression gate";

// ---- The journal: append-only, one JSON record per line, fsync'd ------------

class Journal {
 public:
  // Opens (creating) path; reads every complete record. A torn last line (a
  // crash mid-append) is dropped and cut off; any other bad line is kMalformed.
  static Result<Journal> open(const std::string& path);
  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) noexcept;
  ~Journal();

  // The records read at open (appended ones are in the file, not kept in
  // memory: a million results would be held twice).
  const std::vector<std::string>& records() const { return records_; }
  // Frees them (once replayed).
  void drop_records() {
    records_.clear();
    records_.shrink_to_fit();
  }
  // Appends one record (a single-line JSON object) and fsyncs it, or with
  // sync false leaves it to the next sync() (group commit: what is written
  // but not synced may be lost in a crash, never torn into another record).
  Status append(const std::string& record, bool sync = true);
  Status sync();

 private:
  Journal() = default;
  int fd_ = -1;
  std::vector<std::string> records_;
};

}  // namespace ota::campaign
