// The signed documents: the campaign (release keys), its control (the controller key), the
// retained document that carries both (and root updates); verification and freshness.
#include "ota/fleet/campaign.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "fleet/campaign/fields.hpp"

namespace ota::campaign {

using namespace detail;

// ---- Campaign document ----

namespace {

constexpr const char* kDayNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::string clock_text(int minutes) {  // 0..1440
  const int h = minutes / 60, m = minutes % 60;
  return {static_cast<char>('0' + h / 10), static_cast<char>('0' + h % 10), ':', static_cast<char>('0' + m / 10),
          static_cast<char>('0' + m % 10)};
}

json::Ordered policy_json(const Policy& p) {
  json::Ordered windows = json::Ordered::array();
  for (const auto& w : p.windows) {
    json::Ordered days = json::Ordered::array();
    for (int d = 0; d < 7; ++d)
      if (w.days & (1u << d)) days.push_back(kDayNames[d]);
    windows.push_back({{"days", days}, {"start", clock_text(w.start)}, {"end", clock_text(w.end)}});
  }
  json::Ordered defer = json::Ordered::array();
  for (const auto& c : p.defer_on) defer.push_back(c);
  return {{"windows", windows},       {"timezone", p.timezone},   {"download_early", p.download_early},
          {"start_delay_s", p.start_delay_s}, {"max_age_s", p.max_age_s}, {"defer_on", defer}};
}

Result<int> clock_field(const json::Object& o, std::string_view key, bool end) {
  OTA_TRY_ASSIGN(auto text, o.string(key, 5));
  const bool digits = text.size() == 5 && text[2] == ':' && std::isdigit(static_cast<unsigned char>(text[0])) &&
                      std::isdigit(static_cast<unsigned char>(text[1])) && std::isdigit(static_cast<unsigned char>(text[3])) &&
                      std::isdigit(static_cast<unsigned char>(text[4]));
  const int v = digits ? ((text[0] - '0') * 10 + (text[1] - '0')) * 60 + (text[3] - '0') * 10 + (text[4] - '0') : -1;
  if (!digits || text[3] > '5' || v < (end ? 1 : 0) || v > (end ? 1440 : 1439))
    return fail(ErrorCode::kMalformed, "campaign.policy.windows[]." + std::string(key) + " is not HH:MM");
  return v;
}

Result<Policy> policy_from(const json::Json& j) {
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "campaign.policy"));
  OTA_TRY(o.only({"windows", "timezone", "download_early", "start_delay_s", "max_age_s", "defer_on"}));
  Policy p;
  OTA_TRY_ASSIGN(auto wj, o.array("windows", kMaxWindows));
  for (const auto& e : *wj) {
    OTA_TRY_ASSIGN(auto wo, json::Object::of(e, "campaign.policy.windows[]"));
    OTA_TRY(wo.only({"days", "start", "end"}));
    Window w;
    w.days = 0;
    OTA_TRY_ASSIGN(auto dj, wo.array("days", 7));
    for (const auto& d : *dj) {
      OTA_TRY_ASSIGN(auto name, json::as_string(d, "campaign.policy.windows[].days[]", 3));
      int idx = -1;
      for (int i = 0; i < 7; ++i)
        if (name == kDayNames[i]) idx = i;
      if (idx < 0 || (w.days & (1u << idx)))
        return fail(ErrorCode::kMalformed, "campaign.policy.windows[].days[] is not a day (mon..sun, each once)");
      w.days = static_cast<std::uint8_t>(w.days | (1u << idx));
    }
    OTA_TRY_ASSIGN(auto start, clock_field(wo, "start", false));
    OTA_TRY_ASSIGN(auto end, clock_field(wo, "end", true));
    w.start = static_cast<std::uint16_t>(start);
    w.end = static_cast<std::uint16_t>(end);
    p.windows.push_back(w);
  }
  OTA_TRY_ASSIGN(auto tz, o.string("timezone", 64));
  p.timezone = tz;
  OTA_TRY_ASSIGN(auto early, o.boolean("download_early"));
  p.download_early = early;
  OTA_TRY_ASSIGN(auto delay, o.u64("start_delay_s", 30 * 86400));
  p.start_delay_s = static_cast<std::int64_t>(delay);
  OTA_TRY_ASSIGN(auto age, o.u64("max_age_s", 100ull * 365 * 86400));
  p.max_age_s = static_cast<std::int64_t>(age);
  OTA_TRY_ASSIGN(auto cj, o.array("defer_on", kMaxConditions));
  for (const auto& c : *cj) {
    OTA_TRY_ASSIGN(auto name, json::as_string(c, "campaign.policy.defer_on[]", 32));
    p.defer_on.push_back(name);
  }
  OTA_TRY_CTX(validate(p), "campaign");
  return p;
}

}  // namespace

Status validate(const Campaign& c) {
  if (c.advisory) OTA_TRY_CTX(manifest::validate_security(*c.advisory), "campaign advisory");
  if (!is_valid_name(c.id)) return fail(ErrorCode::kMalformed, "campaign: id is not a name ([A-Za-z0-9._-]{1,64})");
  if (!is_valid_name(c.fleet)) return fail(ErrorCode::kMalformed, "campaign: fleet is not a name ([A-Za-z0-9._-]{1,64})");
  if (c.revision == 0) return fail(ErrorCode::kMalformed, "campaign: revision starts at 1");
  if (c.expires <= c.created) return fail(ErrorCode::kMalformed, "campaign: expires before it is created");
  if (c.version.empty() || c.version.size() > 128) return fail(ErrorCode::kMalformed, "campaign: version is missing");
  if (c.hardware.empty() || c.hardware.size() > kMaxHardware)
    return fail(ErrorCode::kMalformed, "campaign: hardware lists 1 to 64 ids");
  if (c.url.empty() || c.url.size() > 2048) return fail(ErrorCode::kMalformed, "campaign: url is missing or too long");
  OTA_TRY(check_waves(c.waves));
  const Gates& g = c.gates;
  if (!(g.success_threshold >= 0 && g.success_threshold <= 1) || !(g.failure_threshold >= 0 && g.failure_threshold <= 1))
    return fail(ErrorCode::kMalformed, "campaign: thresholds are between 0 and 1");
  if (g.min_sample == 0) return fail(ErrorCode::kMalformed, "campaign: min_sample is at least 1");
  if (g.soak_s < 0 || g.device_timeout_s <= 0)
    return fail(ErrorCode::kMalformed, "campaign: soak is not negative and the device timeout is positive");
  if (c.control_ttl_s < 10 || c.control_ttl_s > 7 * 86400)
    return fail(ErrorCode::kMalformed, "campaign: control_ttl_s is from 10 s to 7 days");
  if (c.security && (c.security->operators.empty() || c.security->operators.size() > 16))
    return fail(ErrorCode::kMalformed, "campaign: security lists 1 to 16 operator keys");
  if (c.policy) OTA_TRY_CTX(validate(*c.policy), "campaign");
  if (c.pace) {
    if (c.pace->devices_per_minute == 0 && c.pace->bytes_per_minute == 0)
      return fail(ErrorCode::kMalformed, "campaign: pace limits devices or bytes per minute");
    if (c.pace->deltas.size() > kMaxPaceDeltas)
      return fail(ErrorCode::kMalformed, "campaign: pace lists at most " + std::to_string(kMaxPaceDeltas) + " deltas");
  }
  if (c.regression) {
    const Regression& r = *c.regression;
    if (r.observe_s < 1 || r.observe_s > 30 * 86400 || r.interval_s < 1 || r.interval_s > r.observe_s)
      return fail(ErrorCode::kMalformed, "campaign: regression observes 1 s to 30 days, reporting at most every observe_s");
    if (!(r.margin >= 0 && r.margin < 1)) return fail(ErrorCode::kMalformed, "campaign: regression margin is in [0, 1)");
    if (r.min_sample == 0) return fail(ErrorCode::kMalformed, "campaign: regression min_sample is at least 1");
    if (!(r.z >= 0 && r.z <= 10)) return fail(ErrorCode::kMalformed, "campaign: regression z is from 0 to 10");
  }
  return ok();
}

Bytes encode_campaign(const Campaign& c) {
  json::Ordered j;
  j["format"] = kCampaignFormat;
  j["id"] = c.id;
  j["fleet"] = c.fleet;
  j["revision"] = c.revision;
  j["created"] = trust::format_time(c.created);
  j["expires"] = trust::format_time(c.expires);
  j["bundle"] = {{"manifest_hash", to_hex(c.manifest_hash)},
                 {"version", c.version},
                 {"hardware", c.hardware},
                 {"url", c.url},
                 {"size", c.bundle_size}};
  json::Ordered waves = json::Ordered::array();
  for (auto w : c.waves) waves.push_back(percent_json(w));
  j["waves"] = waves;
  j["gates"] = {{"success_threshold", c.gates.success_threshold},
                {"failure_threshold", c.gates.failure_threshold},
                {"min_sample", c.gates.min_sample},
                {"soak_s", c.gates.soak_s},
                {"device_timeout_s", c.gates.device_timeout_s},
                {"on_failure", c.gates.abort_on_failure ? "abort" : "pause"}};
  j["controller"] = {{"keyid", to_hex(c.controller.id())}, {"public", to_hex(c.controller.bytes)}};
  j["control_ttl_s"] = c.control_ttl_s;
  if (c.security) {
    json::Ordered ops = json::Ordered::array();
    for (const auto& k : c.security->operators) ops.push_back({{"keyid", to_hex(k.id())}, {"public", to_hex(k.bytes)}});
    j["security"] = {{"registry", {{"hash", to_hex(c.security->registry_hash)}, {"devices", c.security->registry_devices}}},
                     {"operators", ops}};
  }
  if (c.pace) {
    json::Ordered deltas = json::Ordered::array();
    for (const auto& [base, size] : c.pace->deltas) deltas.push_back({{"base", to_hex(base)}, {"size", size}});
    j["pace"] = {{"devices_per_minute", c.pace->devices_per_minute},
                 {"bytes_per_minute", c.pace->bytes_per_minute},
                 {"full_size", c.pace->full_size},
                 {"deltas", deltas}};
  }
  // Only when set: a campaign without it stays byte for byte what agents
  // that predate the field accept (docs/formats.md, campaign changelog).
  if (c.revert_on_abort) j["revert_on_abort"] = true;
  if (c.policy) j["policy"] = policy_json(*c.policy);
  if (c.advisory) j["advisory"] = {{"text", c.advisory->advisory}, {"ids", c.advisory->ids}};
  if (c.regression) {
    const Regression& r = *c.regression;
    j["regression"] = {{"observe_s", r.observe_s}, {"interval_s", r.interval_s}, {"margin", r.margin},
                       {"min_sample", r.min_sample}, {"z", r.z},         {"action", r.abort ? "abort" : "pause"}};
  }
  return to_bytes(j.dump());
}

Result<Campaign> parse_campaign(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j, parse_object(as_text(bytes), kMaxDocumentBytes, "campaign"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "campaign"));
  OTA_TRY(o.only({"format", "id", "fleet", "revision", "created", "expires", "bundle", "waves", "gates", "controller",
                   "control_ttl_s", "security", "pace", "revert_on_abort", "policy", "regression", "advisory"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kCampaignFormat)
    return fail(ErrorCode::kMalformed, "campaign: format is not " + std::string(kCampaignFormat));
  Campaign c;
  OTA_TRY_ASSIGN(auto id, name_field(o, "id"));
  c.id = id;
  OTA_TRY_ASSIGN(auto fleet, name_field(o, "fleet"));
  c.fleet = fleet;
  OTA_TRY_ASSIGN(auto rev, o.u64("revision"));
  c.revision = rev;
  OTA_TRY_ASSIGN(auto created, time_field(o, "created"));
  c.created = created;
  OTA_TRY_ASSIGN(auto expires, time_field(o, "expires"));
  c.expires = expires;

  OTA_TRY_ASSIGN(auto bj, o.object("bundle"));
  OTA_TRY_ASSIGN(auto b, json::Object::of(*bj, "campaign.bundle"));
  OTA_TRY(b.only({"manifest_hash", "version", "hardware", "url", "size"}));
  OTA_TRY_ASSIGN(auto mh, b.digest("manifest_hash"));
  c.manifest_hash = mh;
  OTA_TRY_ASSIGN(auto version, b.string("version", 128));
  c.version = version;
  OTA_TRY_ASSIGN(auto hw, b.array("hardware", kMaxHardware));
  for (const auto& h : *hw) {
    OTA_TRY_ASSIGN(auto s, json::as_string(h, "campaign.bundle.hardware[]", 128));
    c.hardware.push_back(s);
  }
  OTA_TRY_ASSIGN(auto url, b.string("url", 2048));
  c.url = url;
  OTA_TRY_ASSIGN(auto size, b.u64("size"));
  c.bundle_size = size;

  OTA_TRY_ASSIGN(auto wj, o.array("waves", kMaxWaves));
  for (const auto& w : *wj) {
    if (!w.is_number()) return fail(ErrorCode::kMalformed, "campaign.waves[] is not a number");
    auto p = percent_from(w.get<double>());
    if (!p) return fail(p.error().with_context("campaign"));
    c.waves.push_back(*p);
  }

  OTA_TRY_ASSIGN(auto gj, o.object("gates"));
  OTA_TRY_ASSIGN(auto g, json::Object::of(*gj, "campaign.gates"));
  OTA_TRY(g.only({"success_threshold", "failure_threshold", "min_sample", "soak_s", "device_timeout_s", "on_failure"}));
  OTA_TRY_ASSIGN(auto st, ratio_field(g, *gj, "success_threshold"));
  OTA_TRY_ASSIGN(auto ft, ratio_field(g, *gj, "failure_threshold"));
  OTA_TRY_ASSIGN(auto ms, g.u64("min_sample", 1u << 30));
  OTA_TRY_ASSIGN(auto soak, g.u64("soak_s", 10ull * 365 * 86400));
  OTA_TRY_ASSIGN(auto dt, g.u64("device_timeout_s", 10ull * 365 * 86400));
  auto of = g.string("on_failure", 16);
  if (!of) return fail(of.error());
  if (*of != "pause" && *of != "abort")
    return fail(ErrorCode::kMalformed, "campaign.gates.on_failure is not \"pause\" or \"abort\"");
  c.gates = Gates{st, ft, static_cast<std::uint32_t>(ms), static_cast<std::int64_t>(soak),
                  static_cast<std::int64_t>(dt), *of == "abort"};

  OTA_TRY_ASSIGN(auto kj, o.object("controller"));
  OTA_TRY_ASSIGN(auto k, json::Object::of(*kj, "campaign.controller"));
  OTA_TRY(k.only({"keyid", "public"}));
  OTA_TRY_ASSIGN(auto pub, k.digest("public"));
  c.controller.bytes = pub;
  OTA_TRY_ASSIGN(auto kid, k.digest("keyid"));
  if (kid != c.controller.id()) return fail(ErrorCode::kMalformed, "campaign.controller: keyid does not match its key");
  if (o.has("control_ttl_s")) {
    OTA_TRY_ASSIGN(auto ttl, o.u64("control_ttl_s", 7 * 86400));
    c.control_ttl_s = static_cast<std::int64_t>(ttl);
  }
  if (o.has("security")) {
    OTA_TRY_ASSIGN(auto sj, o.object("security"));
    OTA_TRY_ASSIGN(auto so, json::Object::of(*sj, "campaign.security"));
    OTA_TRY(so.only({"registry", "operators"}));
    OTA_TRY_ASSIGN(auto rj, so.object("registry"));
    OTA_TRY_ASSIGN(auto ro, json::Object::of(*rj, "campaign.security.registry"));
    OTA_TRY(ro.only({"hash", "devices"}));
    Security sec;
    OTA_TRY_ASSIGN(auto rh, ro.digest("hash"));
    sec.registry_hash = rh;
    OTA_TRY_ASSIGN(auto n, ro.u64("devices", 1u << 30));
    sec.registry_devices = n;
    OTA_TRY_ASSIGN(auto oj, so.array("operators", 16));
    for (const auto& e : *oj) {
      OTA_TRY_ASSIGN(auto eo, json::Object::of(e, "campaign.security.operators[]"));
      OTA_TRY(eo.only({"keyid", "public"}));
      keys::PublicKey op;
      OTA_TRY_ASSIGN(auto op_pub, eo.digest("public"));
      op.bytes = op_pub;
      OTA_TRY_ASSIGN(auto op_id, eo.digest("keyid"));
      if (op_id != op.id()) return fail(ErrorCode::kMalformed, "campaign.security.operators[]: keyid does not match its key");
      sec.operators.push_back(op);
    }
    c.security = std::move(sec);
  }
  if (o.has("pace")) {
    OTA_TRY_ASSIGN(auto pj, o.object("pace"));
    OTA_TRY_ASSIGN(auto po, json::Object::of(*pj, "campaign.pace"));
    OTA_TRY(po.only({"devices_per_minute", "bytes_per_minute", "full_size", "deltas"}));
    Pace pace;
    OTA_TRY_ASSIGN(auto dpm, po.u64("devices_per_minute", 1ull << 40));
    OTA_TRY_ASSIGN(auto bpm, po.u64("bytes_per_minute", 1ull << 60));
    OTA_TRY_ASSIGN(auto full, po.u64("full_size", 1ull << 60));
    pace.devices_per_minute = dpm;
    pace.bytes_per_minute = bpm;
    pace.full_size = full;
    OTA_TRY_ASSIGN(auto dj, po.array("deltas", kMaxPaceDeltas));
    for (const auto& e : *dj) {
      OTA_TRY_ASSIGN(auto eo, json::Object::of(e, "campaign.pace.deltas[]"));
      OTA_TRY(eo.only({"base", "size"}));
      OTA_TRY_ASSIGN(auto base, eo.digest("base"));
      OTA_TRY_ASSIGN(auto delta_size, eo.u64("size", 1ull << 60));
      pace.deltas.emplace_back(base, delta_size);
    }
    c.pace = std::move(pace);
  }
  if (o.has("advisory")) {
    OTA_TRY_ASSIGN(auto aj, o.object("advisory"));
    OTA_TRY_ASSIGN(auto ao, json::Object::of(*aj, "campaign.advisory"));
    OTA_TRY(ao.only({"text", "ids"}));
    manifest::Security a;
    OTA_TRY_ASSIGN(auto text, ao.string("text", manifest::kMaxAdvisoryBytes));
    a.advisory = text;
    OTA_TRY_ASSIGN(auto ids, ao.array("ids", manifest::kMaxAdvisoryIds));
    for (const auto& item : *ids) {
      OTA_TRY_ASSIGN(auto v, json::as_string(item, "campaign.advisory.ids[]", 64));
      a.ids.push_back(v);
    }
    c.advisory = std::move(a);
  }
  if (o.has("revert_on_abort")) {
    OTA_TRY_ASSIGN(auto revert, o.boolean("revert_on_abort"));
    c.revert_on_abort = revert;
  }
  if (o.has("policy")) {
    OTA_TRY_ASSIGN(auto pj, o.object("policy"));
    OTA_TRY_ASSIGN(auto policy, policy_from(*pj));
    c.policy = std::move(policy);
  }
  if (o.has("regression")) {
    OTA_TRY_ASSIGN(auto rj, o.object("regression"));
    OTA_TRY_ASSIGN(auto ro, json::Object::of(*rj, "campaign.regression"));
    OTA_TRY(ro.only({"observe_s", "interval_s", "margin", "min_sample", "z", "action"}));
    Regression reg;
    OTA_TRY_ASSIGN(auto obs, ro.u64("observe_s", 30 * 86400));
    OTA_TRY_ASSIGN(auto iv, ro.u64("interval_s", 30 * 86400));
    OTA_TRY_ASSIGN(auto margin, ratio_field(ro, *rj, "margin"));
    OTA_TRY_ASSIGN(auto reg_sample, ro.u64("min_sample", 1u << 30));
    if (!rj->contains("z") || !rj->at("z").is_number()) return fail(ErrorCode::kMalformed, "campaign.regression.z is not a number");
    OTA_TRY_ASSIGN(auto action, ro.string("action", 16));
    if (action != "pause" && action != "abort")
      return fail(ErrorCode::kMalformed, "campaign.regression.action is not \"pause\" or \"abort\"");
    reg.observe_s = static_cast<std::int64_t>(obs);
    reg.interval_s = static_cast<std::int64_t>(iv);
    reg.margin = margin;
    reg.min_sample = static_cast<std::uint32_t>(reg_sample);
    reg.z = rj->at("z").get<double>();
    reg.abort = action == "abort";
    c.regression = reg;
  }
  OTA_TRY(validate(c));
  return c;
}

// ---- Control document ----

Bytes encode_control(const Control& c) {
  json::Ordered j;
  j["format"] = kControlFormat;
  j["campaign"] = c.campaign;
  j["campaign_revision"] = c.campaign_revision;
  j["revision"] = c.revision;
  j["wave"] = c.wave;
  j["state"] = run_state_name(c.state);
  j["issued"] = trust::format_time(c.issued);
  if (c.expires != 0) j["expires"] = trust::format_time(c.expires);
  j["reason"] = c.reason;
  if (c.admit) j["admit"] = *c.admit;
  return to_bytes(j.dump());
}

Result<Control> parse_control(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j, parse_object(as_text(bytes), kMaxReportBytes, "control"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "control"));
  OTA_TRY(o.only({"format", "campaign", "campaign_revision", "revision", "wave", "state", "issued", "expires", "reason", "admit"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kControlFormat) return fail(ErrorCode::kMalformed, "control: format is not " + std::string(kControlFormat));
  Control c;
  OTA_TRY_ASSIGN(auto id, name_field(o, "campaign"));
  c.campaign = id;
  OTA_TRY_ASSIGN(auto cr, o.u64("campaign_revision"));
  c.campaign_revision = cr;
  OTA_TRY_ASSIGN(auto rev, o.u64("revision"));
  c.revision = rev;
  OTA_TRY_ASSIGN(auto wave, o.u64("wave", kMaxWaves - 1));
  c.wave = static_cast<std::uint32_t>(wave);
  OTA_TRY_ASSIGN(auto state, o.string("state", 16));
  bool known = false;
  for (auto s : {RunState::kRunning, RunState::kPaused, RunState::kAborted, RunState::kCompleted})
    if (state == run_state_name(s)) c.state = s, known = true;
  if (!known) return fail(ErrorCode::kMalformed, "control.state is not running, paused, aborted or completed");
  OTA_TRY_ASSIGN(auto issued, time_field(o, "issued"));
  c.issued = issued;
  if (o.has("expires")) {
    OTA_TRY_ASSIGN(auto expires, time_field(o, "expires"));
    if (expires <= c.issued) return fail(ErrorCode::kMalformed, "control: expires is not after issued");
    c.expires = expires;
  }
  OTA_TRY_ASSIGN(auto reason, o.string("reason", 1024));
  c.reason = reason;
  if (o.has("admit")) {
    OTA_TRY_ASSIGN(auto admit, o.u64("admit", std::uint64_t{1} << 32));
    c.admit = admit;
  }
  return c;
}

// ---- The retained document ----

std::string encode_document(const Document& d) {
  json::Ordered j;
  j["campaign"] = json::Ordered::parse(trust::encode_envelope(d.campaign));
  j["control"] = json::Ordered::parse(trust::encode_envelope(d.control));
  if (!d.roots.empty()) {
    json::Ordered roots = json::Ordered::array();
    for (const auto& r : d.roots) roots.push_back(json::Ordered::parse(trust::encode_envelope(r)));
    j["roots"] = roots;
  }
  return j.dump();
}

Result<Document> parse_document(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, parse_object(text, kMaxDocumentBytes * 2, "campaign document"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "campaign document"));
  OTA_TRY(o.only({"campaign", "control", "roots"}));
  Document d;
  OTA_TRY_ASSIGN(auto cj, o.object("campaign"));
  auto ce = trust::parse_envelope((cj)->dump());
  if (!ce) return fail(ce.error().with_context("campaign document: campaign"));
  d.campaign = std::move(*ce);
  OTA_TRY_ASSIGN(auto kj, o.object("control"));
  auto ke = trust::parse_envelope((kj)->dump());
  if (!ke) return fail(ke.error().with_context("campaign document: control"));
  d.control = std::move(*ke);
  if (o.has("roots")) {
    OTA_TRY_ASSIGN(auto rj, o.array("roots", kMaxRootUpdates));
    for (const auto& r : *rj) {
      auto re = trust::parse_envelope(r.dump());
      if (!re) return fail(re.error().with_context("campaign document: roots[]"));
      if (re->payload_type != trust::kRootType)
        return fail(ErrorCode::kMalformed, "campaign document: roots[] holds a document that is not a trust root");
      d.roots.push_back(std::move(*re));
    }
  }
  return d;
}

Result<Verified> verify_document(const trust::TrustStore& trust, const Document& d, trust::Time now) {
  if (d.campaign.payload_type != kCampaignType)
    return fail(ErrorCode::kMalformed, "campaign: payload type is not " + std::string(kCampaignType));
  OTA_TRY_CTX(trust.check_fresh(now), "campaign");
  OTA_TRY_CTX(trust.verify(kCampaignType, d.campaign.payload, d.campaign.signatures), "campaign");
  OTA_TRY_ASSIGN(auto c, parse_campaign(d.campaign.payload));
  if (now >= c.expires)
    return fail(ErrorCode::kExpired, "campaign " + c.id + " expired at " + trust::format_time(c.expires));
  if (d.control.payload_type != kControlType)
    return fail(ErrorCode::kMalformed, "control: payload type is not " + std::string(kControlType));
  // The control document needs the controller key's signature, and only it.
  trust::Root controller;
  controller.threshold = 1;
  controller.keys.emplace(c.controller.id(), c.controller);
  OTA_TRY_CTX(trust::check_threshold(controller, trust::signing_message(kControlType, d.control.payload),
                                     d.control.signatures),
              "campaign " + c.id + " control");
  OTA_TRY_ASSIGN(auto k, parse_control(d.control.payload));
  if (k.campaign != c.id || k.campaign_revision != c.revision)
    return fail(ErrorCode::kMalformed, "control: names campaign " + k.campaign + " revision " +
                                           std::to_string(k.campaign_revision) + ", not " + c.id + " revision " +
                                           std::to_string(c.revision));
  if (k.wave >= c.waves.size()) return fail(ErrorCode::kMalformed, "control: wave is past the campaign's last wave");
  return Verified{std::move(c), std::move(k)};
}

trust::Envelope sign_control(const Control& c, const keys::SecretKey& controller) {
  trust::Envelope e;
  e.payload_type = std::string(kControlType);
  e.payload = encode_control(c);
  e.signatures.push_back({controller.public_key().id(), controller.sign(trust::signing_message(kControlType, e.payload))});
  return e;
}

Status check_control_fresh(const Campaign& c, const Control& k, trust::Time now) {
  // A pause or an abort only restrains: honoured however old.
  if (k.state == RunState::kPaused || k.state == RunState::kAborted) return ok();
  if (k.expires == 0)
    return fail(ErrorCode::kStaleCampaign, "control revision " + std::to_string(k.revision) +
                                               " has no expiry: this device acts only on fresh control");
  if (now >= k.expires)
    return fail(ErrorCode::kStaleCampaign, "control revision " + std::to_string(k.revision) + " expired at " +
                                               trust::format_time(k.expires) + " (is the controller running?)");
  // Running control lives at most the campaign's control TTL (a completed
  // campaign's last control lives as long as the campaign).
  if (k.state == RunState::kRunning && k.expires - k.issued > c.control_ttl_s)
    return fail(ErrorCode::kStaleCampaign, "control revision " + std::to_string(k.revision) +
                                               " is valid longer than the campaign's control_ttl_s");
  return ok();
}

int compare_revisions(const Control& a, const Control& b) {
  if (a.campaign_revision != b.campaign_revision) return a.campaign_revision < b.campaign_revision ? -1 : 1;
  if (a.revision != b.revision) return a.revision < b.revision ? -1 : 1;
  return 0;
}

}  // namespace ota::campaign
