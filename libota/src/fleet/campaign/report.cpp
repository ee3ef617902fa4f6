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
  }
  return "idle";
}

bool is_final(Phase p) {
  return p == Phase::kSucceeded || p == Phase::kRolledBack || p == Phase::kFailed || p == Phase::kAborted ||
         p == Phase::kSkipped;
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
  return j.dump();
}

Result<Report> parse_report(std::string_view text) {
  auto j = parse_object(text, kMaxReportBytes, "report");
  if (!j) return fail(j.error());
  auto o = json::Object::of(*j, "report");
  if (!o) return fail(o.error());
  OTA_TRY(o->only({"device", "seq", "boot", "time", "campaign", "phase", "version", "reason", "code", "bytes_fetched"}));
  Report r;
  auto dev = name_field(*o, "device");
  if (!dev) return fail(dev.error());
  r.device = *dev;
  auto seq = o->u64("seq");
  if (!seq) return fail(seq.error());
  r.seq = *seq;
  auto boot = o->string("boot", 64);
  if (!boot) return fail(boot.error());
  r.boot = *boot;
  auto t = time_field(*o, "time");
  if (!t) return fail(t.error());
  r.time = *t;
  auto camp = o->string("campaign", 64);
  if (!camp) return fail(camp.error());
  if (!camp->empty() && !is_valid_name(*camp)) return fail(ErrorCode::kMalformed, "report.campaign is not a name");
  r.campaign = *camp;
  auto phase = o->string("phase", 16);
  if (!phase) return fail(phase.error());
  bool known = false;
  for (auto p : {Phase::kIdle, Phase::kWaiting, Phase::kDownloading, Phase::kRebooting, Phase::kSucceeded,
                 Phase::kRolledBack, Phase::kFailed, Phase::kAborted, Phase::kSkipped})
    if (*phase == phase_name(p)) r.phase = p, known = true;
  if (!known) return fail(ErrorCode::kMalformed, "report.phase is not a known phase");
  auto version = o->string("version", 128);
  if (!version) return fail(version.error());
  r.version = *version;
  auto reason = o->string("reason", 1024);
  if (!reason) return fail(reason.error());
  r.reason = *reason;
  auto code = o->u64("code", 255);
  if (!code) return fail(code.error());
  r.code = static_cast<int>(*code);
  auto bytes = o->u64("bytes_fetched");
  if (!bytes) return fail(bytes.error());
  r.bytes_fetched = *bytes;
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
  auto j = parse_object(text, kMaxReportBytes, "availability");
  if (!j) return fail(j.error());
  auto o = json::Object::of(*j, "availability");
  if (!o) return fail(o.error());
  OTA_TRY(o->only({"device", "boot", "online"}));
  Availability a;
  auto dev = name_field(*o, "device");
  if (!dev) return fail(dev.error());
  a.device = *dev;
  auto boot = o->string("boot", 64);
  if (!boot) return fail(boot.error());
  a.boot = *boot;
  auto it = j->find("online");
  if (it == j->end() || !it->is_boolean()) return fail(ErrorCode::kMalformed, "availability.online is not a boolean");
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
  auto j = parse_object(text, kMaxReportBytes, "command");
  if (!j) return fail(j.error());
  auto o = json::Object::of(*j, "command");
  if (!o) return fail(o.error());
  OTA_TRY(o->only({"id", "action", "time", "reason"}));
  Command c;
  auto id = name_field(*o, "id");
  if (!id) return fail(id.error());
  c.id = *id;
  auto action = o->string("action", 16);
  if (!action) return fail(action.error());
  if (*action != "pause" && *action != "resume" && *action != "abort")
    return fail(ErrorCode::kMalformed, "command.action is not pause, resume or abort");
  c.action = *action;
  auto t = time_field(*o, "time");
  if (!t) return fail(t.error());
  c.time = *t;
  auto reason = o->string("reason", 1024);
  if (!reason) return fail(reason.error());
  c.reason = *reason;
  return c;
}

}  // namespace ota::campaign
