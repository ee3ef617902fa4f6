#include "device/agent/daemon_records.hpp"

#include <algorithm>

#include "core/json.hpp"

namespace ota::agent::detail {

namespace cp = ota::campaign;
using json::Json;
using json::Ordered;

cp::Phase phase_from(const std::string& s) {
  for (auto p : {cp::Phase::kIdle, cp::Phase::kWaiting, cp::Phase::kDownloading, cp::Phase::kRebooting,
                 cp::Phase::kSucceeded, cp::Phase::kRolledBack, cp::Phase::kFailed, cp::Phase::kAborted,
                 cp::Phase::kSkipped, cp::Phase::kReverting, cp::Phase::kReverted, cp::Phase::kRevertFailed,
                 cp::Phase::kDeferred})
    if (s == cp::phase_name(p)) return p;
  return cp::Phase::kIdle;
}

Result<Records> parse_records(ByteSpan b) {
  OTA_TRY_ASSIGN(auto j,
                 json::parse_strict(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), 1u << 20, "campaign records"));
  Records r;
  if (!j.is_object() || !(j)["current"].is_string() || !(j)["campaigns"].is_object() ||
      !(j)["counter"].is_number_unsigned())
    return fail(ErrorCode::kMalformed, "campaign records: bad shape");
  r.current = (j)["current"].get<std::string>();
  r.counter = (j)["counter"].get<std::uint64_t>();
  for (auto it = (j)["campaigns"].begin(); it != (j)["campaigns"].end(); ++it) {
    const Json& c = it.value();
    if (!c.is_object() || !c["campaign_revision"].is_number_unsigned() || !c["control_revision"].is_number_unsigned() ||
        !c["phase"].is_string() || !c["done"].is_boolean() || !c["seen"].is_number_unsigned())
      return fail(ErrorCode::kMalformed, "campaign records: bad record");
    CampaignRecord cr;
    cr.campaign_revision = c["campaign_revision"].get<std::uint64_t>();
    cr.control_revision = c["control_revision"].get<std::uint64_t>();
    cr.phase = phase_from(c["phase"].get<std::string>());
    cr.done = c["done"].get<bool>();
    cr.seen = c["seen"].get<std::uint64_t>();
    // The start delay's end, drawn once (absent in records written before policies).
    if (c.contains("not_before")) {
      if (!c["not_before"].is_number_integer()) return fail(ErrorCode::kMalformed, "campaign records: bad record");
      cr.not_before = c["not_before"].get<std::int64_t>();
    }
    if (c.contains("observation")) {
      const Json& ob = c["observation"];
      auto u = [&](const char* k) { return ob.contains(k) && ob[k].is_number_unsigned(); };
      auto flag = [&](const char* k) { return ob.contains(k) && ob[k].is_boolean(); };
      if (!ob.is_object() || !flag("control") || !flag("active") || !u("since") || !u("observe_s") || !u("interval_s") ||
          !u("health_failures") || !u("unexpected_reboots") || !u("counter") || !u("observed_s") || !flag("counter_known") ||
          !u("counter_last") || !flag("restart_expected"))
        return fail(ErrorCode::kMalformed, "campaign records: bad observation");
      Observation o;
      o.control = ob["control"].get<bool>();
      o.active = ob["active"].get<bool>();
      o.since = ob["since"].get<trust::Time>();
      o.observe_s = ob["observe_s"].get<std::int64_t>();
      o.interval_s = ob["interval_s"].get<std::int64_t>();
      o.signals.observed_s = ob["observed_s"].get<std::int64_t>();
      o.signals.health_failures = ob["health_failures"].get<std::uint64_t>();
      o.signals.unexpected_reboots = ob["unexpected_reboots"].get<std::uint64_t>();
      o.signals.counter = ob["counter"].get<std::uint64_t>();
      o.counter_known = ob["counter_known"].get<bool>();
      o.counter_last = ob["counter_last"].get<std::uint64_t>();
      o.restart_expected = ob["restart_expected"].get<bool>();
      cr.observation = o;
    }
    r.campaigns[it.key()] = cr;
  }
  return r;
}

std::string encode_records(const Records& r) {
  Ordered j;
  j["current"] = r.current;
  j["counter"] = r.counter;
  Ordered cs = Ordered::object();
  for (const auto& [id, c] : r.campaigns) {
    cs[id] = {{"campaign_revision", c.campaign_revision},
              {"control_revision", c.control_revision},
              {"phase", std::string(cp::phase_name(c.phase))},
              {"done", c.done},
              {"seen", c.seen}};
    if (c.not_before != 0) cs[id]["not_before"] = c.not_before;
    if (const auto& o = c.observation)
      cs[id]["observation"] = {{"control", o->control},
                               {"active", o->active},
                               {"since", o->since},
                               {"observe_s", o->observe_s},
                               {"interval_s", o->interval_s},
                               {"observed_s", o->signals.observed_s},
                               {"health_failures", o->signals.health_failures},
                               {"unexpected_reboots", o->signals.unexpected_reboots},
                               {"counter", o->signals.counter},
                               {"counter_known", o->counter_known},
                               {"counter_last", o->counter_last},
                               {"restart_expected", o->restart_expected}};
  }
  j["campaigns"] = cs;
  return j.dump();
}

Result<Outbox> parse_outbox(ByteSpan b) {
  OTA_TRY_ASSIGN(auto j,
                 json::parse_strict(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), 8u << 20, "outbox"));
  if (!j.is_object() || !(j)["next_seq"].is_number_unsigned() || !(j)["last_state"].is_string() ||
      !(j)["pending"].is_array())
    return fail(ErrorCode::kMalformed, "outbox: bad shape");
  Outbox o;
  o.next_seq = (j)["next_seq"].get<std::uint64_t>();
  o.last_state = (j)["last_state"].get<std::string>();
  if (j.contains("seq_reserved")) {
    if (!j["seq_reserved"].is_number_unsigned()) return fail(ErrorCode::kMalformed, "outbox: bad seq_reserved");
    o.seq_reserved = j["seq_reserved"].get<std::uint64_t>();
    o.next_seq = std::max(o.next_seq, o.seq_reserved);
  }
  for (const auto& p : (j)["pending"]) {
    if (!p.is_object() || !p["topic"].is_string() || !p["payload"].is_string() || !p["retain"].is_boolean())
      return fail(ErrorCode::kMalformed, "outbox: bad entry");
    o.pending.push_back({p["topic"].get<std::string>(), p["payload"].get<std::string>(), p["retain"].get<bool>(), -1});
  }
  return o;
}

std::string encode_outbox(const Outbox& o) {
  Ordered j;
  j["next_seq"] = o.next_seq;
  j["last_state"] = o.last_state;
  if (o.seq_reserved) j["seq_reserved"] = o.seq_reserved;
  Ordered p = Ordered::array();
  for (const auto& e : o.pending)
    if (e.durable) p.push_back({{"topic", e.topic}, {"payload", e.payload}, {"retain", e.retain}});
  j["pending"] = p;
  return j.dump();
}

}  // namespace ota::agent::detail
