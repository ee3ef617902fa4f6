// What devices and operators send: reports, availability, commands.
#include "ota/fleet/campaign.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "fleet/campaign/fields.hpp"

namespace ota::campaign {

using namespace detail;

// ---- Reports ----

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::kIdle: return "idle";
    case Phase::kWaiting: return "waiting";
    case Phase::kDownloading: return "downloading";
    case Phase::kRebooting: return "rebooting";
    case Phase::kSucceeded: return "succeeded";
    case Phase::kRolledBack: return "rolled-back";
    case Phase::kFailed: return "failed";
    case Phase::kAborted: return "aborted";
    case Phase::kSkipped: return "skipped";
    case Phase::kReverting: return "reverting";
    case Phase::kReverted: return "reverted";
    case Phase::kRevertFailed: return "revert-failed";
    case Phase::kDeferred: return "deferred";
  }
  return "idle";
}

bool is_final(Phase p) {
  return p == Phase::kSucceeded || p == Phase::kRolledBack || p == Phase::kFailed || p == Phase::kAborted ||
         p == Phase::kSkipped || p == Phase::kReverted || p == Phase::kRevertFailed;
}
bool is_failure(Phase p) { return p == Phase::kRolledBack || p == Phase::kFailed; }

std::string encode_report(const Report& r) {
  json::Ordered j;
  j["device"] = r.device;
  j["seq"] = r.seq;
  j["boot"] = r.boot;
  j["time"] = trust::format_time(r.time);
  j["campaign"] = r.campaign;
  j["phase"] = phase_name(r.phase);
  j["version"] = r.version;
  j["reason"] = r.reason;
  j["code"] = r.code;
  j["bytes_fetched"] = r.bytes_fetched;
  if (!r.slot.empty()) j["slot"] = r.slot;
  if (r.image_hash) j["image_hash"] = to_hex(*r.image_hash);
  if (r.signals)
    j["signals"] = {{"observed_s", r.signals->observed_s},
                    {"health_failures", r.signals->health_failures},
                    {"unexpected_reboots", r.signals->unexpected_reboots},
                    {"counter", r.signals->counter}};
  return j.dump();
}

Result<Report> parse_report(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, parse_object(text, kMaxReportBytes, "report"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "report"));
  OTA_TRY(o.only({"device", "seq", "boot", "time", "campaign", "phase", "version", "reason", "code", "bytes_fetched", "slot", "image_hash", "signals"}));
  Report r;
  OTA_TRY_ASSIGN(auto dev, name_field(o, "device"));
  r.device = dev;
  OTA_TRY_ASSIGN(auto seq, o.u64("seq"));
  r.seq = seq;
  OTA_TRY_ASSIGN(auto boot, o.string("boot", 64));
  r.boot = boot;
  OTA_TRY_ASSIGN(auto t, time_field(o, "time"));
  r.time = t;
  OTA_TRY_ASSIGN(auto camp, o.string("campaign", 64));
  if (!camp.empty() && !is_valid_name(camp)) return fail(ErrorCode::kMalformed, "report.campaign is not a name");
  r.campaign = camp;
  OTA_TRY_ASSIGN(auto phase, o.string("phase", 16));
  bool known = false;
  for (auto p : {Phase::kIdle, Phase::kWaiting, Phase::kDownloading, Phase::kRebooting, Phase::kSucceeded,
                 Phase::kRolledBack, Phase::kFailed, Phase::kAborted, Phase::kSkipped, Phase::kReverting,
                 Phase::kReverted, Phase::kRevertFailed, Phase::kDeferred})
    if (phase == phase_name(p)) r.phase = p, known = true;
  if (!known) return fail(ErrorCode::kMalformed, "report.phase is not a known phase");
  OTA_TRY_ASSIGN(auto version, o.string("version", 128));
  r.version = version;
  OTA_TRY_ASSIGN(auto reason, o.string("reason", 1024));
  r.reason = reason;
  OTA_TRY_ASSIGN(auto code, o.u64("code", 255));
  r.code = static_cast<int>(code);
  OTA_TRY_ASSIGN(auto bytes, o.u64("bytes_fetched"));
  r.bytes_fetched = bytes;
  if (o.has("slot")) {
    OTA_TRY_ASSIGN(auto slot, o.string("slot", 1));
    if (slot != "a" && slot != "b") return fail(ErrorCode::kMalformed, "report.slot is not a or b");
    r.slot = slot;
  }
  if (o.has("image_hash")) {
    OTA_TRY_ASSIGN(auto ih, o.digest("image_hash"));
    r.image_hash = ih;
  }
  if (o.has("signals")) {
    OTA_TRY_ASSIGN(auto sj, o.object("signals"));
    OTA_TRY_ASSIGN(auto so, json::Object::of(*sj, "report.signals"));
    OTA_TRY(so.only({"observed_s", "health_failures", "unexpected_reboots", "counter"}));
    Signals sig;
    OTA_TRY_ASSIGN(auto obs, so.u64("observed_s", 30 * 86400));
    OTA_TRY_ASSIGN(auto hf, so.u64("health_failures", 1ull << 40));
    OTA_TRY_ASSIGN(auto ur, so.u64("unexpected_reboots", 1ull << 40));
    OTA_TRY_ASSIGN(auto ctr, so.u64("counter", 1ull << 60));
    sig.observed_s = static_cast<std::int64_t>(obs);
    sig.health_failures = hf;
    sig.unexpected_reboots = ur;
    sig.counter = ctr;
    r.signals = sig;
  }
  return r;
}

std::string encode_availability(const Availability& a) {
  json::Ordered j;
  j["device"] = a.device;
  j["boot"] = a.boot;
  j["online"] = a.online;
  return j.dump();
}

Result<Availability> parse_availability(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, parse_object(text, kMaxReportBytes, "availability"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "availability"));
  OTA_TRY(o.only({"device", "boot", "online"}));
  Availability a;
  OTA_TRY_ASSIGN(auto dev, name_field(o, "device"));
  a.device = dev;
  OTA_TRY_ASSIGN(auto boot, o.string("boot", 64));
  a.boot = boot;
  auto it = j.find("online");
  if (it == j.end() || !it->is_boolean()) return fail(ErrorCode::kMalformed, "availability.online is not a boolean");
  a.online = it->get<bool>();
  return a;
}

std::string encode_command(const Command& c) {
  json::Ordered j;
  j["id"] = c.id;
  j["action"] = c.action;
  j["time"] = trust::format_time(c.time);
  j["reason"] = c.reason;
  return j.dump();
}

Result<Command> parse_command(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, parse_object(text, kMaxReportBytes, "command"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "command"));
  OTA_TRY(o.only({"id", "action", "time", "reason"}));
  Command c;
  OTA_TRY_ASSIGN(auto id, name_field(o, "id"));
  c.id = id;
  OTA_TRY_ASSIGN(auto action, o.string("action", 16));
  if (action != "pause" && action != "resume" && action != "abort")
    return fail(ErrorCode::kMalformed, "command.action is not pause, resume or abort");
  c.action = action;
  OTA_TRY_ASSIGN(auto t, time_field(o, "time"));
  c.time = t;
  OTA_TRY_ASSIGN(auto reason, o.string("reason", 1024));
  c.reason = reason;
  return c;
}

}  // namespace ota::campaign
