// Internal: the daemon's two records in its state directory, as JSON
// (docs/design.md, "Daemon records"): campaigns.json (what it did for each
// campaign, so a restart neither repeats nor forgets an action) and
// outbox.json (reports not yet acknowledged by the broker, in order).
// Both are the daemon's own files, but a crash or a bad disk may leave
// anything: they are parsed strictly and capped, and a bad one is refused
// (the daemon then starts it afresh).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/fleet/campaign.hpp"

namespace ota::agent::detail {

inline constexpr char kCampaignsRecord[] = "campaigns.json";
inline constexpr char kOutboxRecord[] = "outbox.json";
inline constexpr std::size_t kMaxCampaignRecords = 32;

// Health signals observed for a campaign with a regression section
// (docs/protocol.md, "Regression gates"): after the device committed it
// (updated group), or while it waits in it (control group).
struct Observation {
  bool control = false;              // observed while waiting (the control group)
  bool active = true;                // false once observe_s has passed: signals final
  trust::Time since = 0;             // when it began (the device clock)
  std::int64_t observe_s = 0;        // from the campaign's regression section
  std::int64_t interval_s = 0;
  campaign::Signals signals;
  bool counter_known = false;        // the counter command answered once
  std::uint64_t counter_last = 0;    // its last value
  bool restart_expected = false;     // the daemon asked for a reboot: the next start is not unexpected
};

struct CampaignRecord {
  std::uint64_t campaign_revision = 0;
  std::uint64_t control_revision = 0;
  campaign::Phase phase = campaign::Phase::kIdle;
  bool done = false;
  std::uint64_t seen = 0;  // insertion order, for trimming
  std::int64_t not_before = 0;  // the rollout policy's start delay ends then (0: none drawn)
  std::optional<Observation> observation;  // regression campaigns
};

struct Records {
  std::string current;  // the campaign whose install is in progress or in trial
  std::map<std::string, CampaignRecord> campaigns;
  std::uint64_t counter = 0;
};

struct Pending {
  std::string topic;
  std::string payload;
  bool retain = false;
  int mid = -1;  // in flight with this id; -1: not sent on this connection
  bool durable = true;  // false: never written to disk (rejected documents)
};

struct Outbox {
  std::uint64_t next_seq = 1;
  // Sequence numbers below this may have been used by reports never written
  // here (rejection events): a restart continues from max(next_seq, this).
  std::uint64_t seq_reserved = 0;
  std::string last_state;
  std::deque<Pending> pending;
};

// Unknown phase names read as kIdle.
campaign::Phase phase_from(const std::string& name);
// campaigns.json: at most 1 MiB.
Result<Records> parse_records(ByteSpan b);
std::string encode_records(const Records& r);
// outbox.json: at most 8 MiB; entries that are not durable are left out.
Result<Outbox> parse_outbox(ByteSpan b);
std::string encode_outbox(const Outbox& o);

}  // namespace ota::agent::detail
