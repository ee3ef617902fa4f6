#include "ota/campaign.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/json.hpp"

namespace ota::campaign {

namespace {

constexpr std::string_view kCampaignFormat = "ota-campaign-v1";
constexpr std::string_view kControlFormat = "ota-campaign-control-v1";
constexpr std::size_t kMaxHardware = 64;

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string_view as_text(ByteSpan b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

Result<std::string> name_field(const json::Object& o, std::string_view key) {
  auto s = o.string(key, 64);
  if (!s) return fail(s.error());
  if (!is_valid_name(*s))
    return fail(ErrorCode::kMalformed, o.what() + "." + std::string(key) + " is not a name ([A-Za-z0-9._-]{1,64})");
  return s;
}

Result<double> ratio_field(const json::Object& o, const json::Json& j, std::string_view key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number())
    return fail(ErrorCode::kMalformed, o.what() + "." + std::string(key) + " is not a number");
  const double v = it->get<double>();
  if (!(v >= 0.0 && v <= 1.0))
    return fail(ErrorCode::kMalformed, o.what() + "." + std::string(key) + " is not between 0 and 1");
  return v;
}

Result<trust::Time> time_field(const json::Object& o, std::string_view key) {
  auto s = o.string(key, 32);
  if (!s) return fail(s.error());
  auto t = trust::parse_time(*s);
  if (!t) return fail(t.error().with_context(o.what() + "." + std::string(key)));
  return t;
}

json::Ordered percent_json(std::uint32_t hundredths) {
  if (hundredths % 100 == 0) return json::Ordered(hundredths / 100);
  return json::Ordered(static_cast<double>(hundredths) / 100.0);
}

Result<std::uint32_t> percent_from(double v) {
  const double h = v * 100.0;
  // Rounded by hand: <cmath> would make the ota CLI map libm for this alone.
  const double r = static_cast<double>(static_cast<std::int64_t>(h + 0.5));
  const double off = h > r ? h - r : r - h;
  if (!(v > 0.0 && v <= 100.0) || off > 1e-6)
    return fail(ErrorCode::kMalformed, "a wave is a percentage in (0, 100] with at most two decimals");
  return static_cast<std::uint32_t>(r);
}

Status check_waves(const std::vector<std::uint32_t>& w) {
  if (w.empty() || w.size() > kMaxWaves)
    return fail(ErrorCode::kMalformed, "waves: between 1 and " + std::to_string(kMaxWaves) + " waves");
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0 || w[i] > 10000) return fail(ErrorCode::kMalformed, "waves: each is in (0, 100]");
    if (i > 0 && w[i] <= w[i - 1]) return fail(ErrorCode::kMalformed, "waves: percentages must increase");
  }
  if (w.back() != 10000) return fail(ErrorCode::kMalformed, "waves: the last wave must be 100");
  return ok();
}

Result<json::Json> parse_object(std::string_view text, std::size_t max, std::string_view what) {
  auto j = json::parse_strict(text, max, what);
  if (!j) return fail(j.error());
  return j;
}

}  // namespace

// ---- Topics and names ----

std::string campaign_topic(std::string_view fleet, std::string_view id) {
  return "ota/" + std::string(fleet) + "/campaigns/" + std::string(id);
}
std::string commands_topic(std::string_view fleet, std::string_view id) {
  return campaign_topic(fleet, id) + "/commands";
}
std::string status_topic(std::string_view fleet, std::string_view id) { return campaign_topic(fleet, id) + "/status"; }
std::string state_topic(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/state";
}
std::string events_topic(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/events";
}
std::string availability_topic(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/availability";
}

bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string_view run_state_name(RunState s) {
  switch (s) {
    case RunState::kRunning: return "running";
    case RunState::kPaused: return "paused";
    case RunState::kAborted: return "aborted";
    case RunState::kCompleted: return "completed";
  }
  return "running";
}

// ---- Campaign document ----

Status validate(const Campaign& c) {
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
  return to_bytes(j.dump());
}

Result<Campaign> parse_campaign(ByteSpan bytes) {
  auto j = parse_object(as_text(bytes), kMaxDocumentBytes, "campaign");
  if (!j) return fail(j.error());
  auto o = json::Object::of(*j, "campaign");
  if (!o) return fail(o.error());
  OTA_TRY(o->only({"format", "id", "fleet", "revision", "created", "expires", "bundle", "waves", "gates", "controller",
                   "control_ttl_s"}));
  auto format = o->string("format", 32);
  if (!format) return fail(format.error());
  if (*format != kCampaignFormat)
    return fail(ErrorCode::kMalformed, "campaign: format is not " + std::string(kCampaignFormat));
  Campaign c;
  auto id = name_field(*o, "id");
  if (!id) return fail(id.error());
  c.id = *id;
  auto fleet = name_field(*o, "fleet");
  if (!fleet) return fail(fleet.error());
  c.fleet = *fleet;
  auto rev = o->u64("revision");
  if (!rev) return fail(rev.error());
  c.revision = *rev;
  auto created = time_field(*o, "created");
  if (!created) return fail(created.error());
  c.created = *created;
  auto expires = time_field(*o, "expires");
  if (!expires) return fail(expires.error());
  c.expires = *expires;

  auto bj = o->object("bundle");
  if (!bj) return fail(bj.error());
  auto b = json::Object::of(**bj, "campaign.bundle");
  if (!b) return fail(b.error());
  OTA_TRY(b->only({"manifest_hash", "version", "hardware", "url", "size"}));
  auto mh = b->digest("manifest_hash");
  if (!mh) return fail(mh.error());
  c.manifest_hash = *mh;
  auto version = b->string("version", 128);
  if (!version) return fail(version.error());
  c.version = *version;
  auto hw = b->array("hardware", kMaxHardware);
  if (!hw) return fail(hw.error());
  for (const auto& h : **hw) {
    auto s = json::as_string(h, "campaign.bundle.hardware[]", 128);
    if (!s) return fail(s.error());
    c.hardware.push_back(*s);
  }
  auto url = b->string("url", 2048);
  if (!url) return fail(url.error());
  c.url = *url;
  auto size = b->u64("size");
  if (!size) return fail(size.error());
  c.bundle_size = *size;

  auto wj = o->array("waves", kMaxWaves);
  if (!wj) return fail(wj.error());
  for (const auto& w : **wj) {
    if (!w.is_number()) return fail(ErrorCode::kMalformed, "campaign.waves[] is not a number");
    auto p = percent_from(w.get<double>());
    if (!p) return fail(p.error().with_context("campaign"));
    c.waves.push_back(*p);
  }

  auto gj = o->object("gates");
  if (!gj) return fail(gj.error());
  auto g = json::Object::of(**gj, "campaign.gates");
  if (!g) return fail(g.error());
  OTA_TRY(g->only({"success_threshold", "failure_threshold", "min_sample", "soak_s", "device_timeout_s", "on_failure"}));
  auto st = ratio_field(*g, **gj, "success_threshold");
  if (!st) return fail(st.error());
  auto ft = ratio_field(*g, **gj, "failure_threshold");
  if (!ft) return fail(ft.error());
  auto ms = g->u64("min_sample", 1u << 30);
  if (!ms) return fail(ms.error());
  auto soak = g->u64("soak_s", 10ull * 365 * 86400);
  if (!soak) return fail(soak.error());
  auto dt = g->u64("device_timeout_s", 10ull * 365 * 86400);
  if (!dt) return fail(dt.error());
  auto of = g->string("on_failure", 16);
  if (!of) return fail(of.error());
  if (*of != "pause" && *of != "abort")
    return fail(ErrorCode::kMalformed, "campaign.gates.on_failure is not \"pause\" or \"abort\"");
  c.gates = Gates{*st, *ft, static_cast<std::uint32_t>(*ms), static_cast<std::int64_t>(*soak),
                  static_cast<std::int64_t>(*dt), *of == "abort"};

  auto kj = o->object("controller");
  if (!kj) return fail(kj.error());
  auto k = json::Object::of(**kj, "campaign.controller");
  if (!k) return fail(k.error());
  OTA_TRY(k->only({"keyid", "public"}));
  auto pub = k->digest("public");
  if (!pub) return fail(pub.error());
  c.controller.bytes = *pub;
  auto kid = k->digest("keyid");
  if (!kid) return fail(kid.error());
  if (*kid != c.controller.id()) return fail(ErrorCode::kMalformed, "campaign.controller: keyid does not match its key");
  if (o->has("control_ttl_s")) {
    auto ttl = o->u64("control_ttl_s", 7 * 86400);
    if (!ttl) return fail(ttl.error());
    c.control_ttl_s = static_cast<std::int64_t>(*ttl);
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
  return to_bytes(j.dump());
}

Result<Control> parse_control(ByteSpan bytes) {
  auto j = parse_object(as_text(bytes), kMaxReportBytes, "control");
  if (!j) return fail(j.error());
  auto o = json::Object::of(*j, "control");
  if (!o) return fail(o.error());
  OTA_TRY(o->only({"format", "campaign", "campaign_revision", "revision", "wave", "state", "issued", "expires", "reason"}));
  auto format = o->string("format", 32);
  if (!format) return fail(format.error());
  if (*format != kControlFormat) return fail(ErrorCode::kMalformed, "control: format is not " + std::string(kControlFormat));
  Control c;
  auto id = name_field(*o, "campaign");
  if (!id) return fail(id.error());
  c.campaign = *id;
  auto cr = o->u64("campaign_revision");
  if (!cr) return fail(cr.error());
  c.campaign_revision = *cr;
  auto rev = o->u64("revision");
  if (!rev) return fail(rev.error());
  c.revision = *rev;
  auto wave = o->u64("wave", kMaxWaves - 1);
  if (!wave) return fail(wave.error());
  c.wave = static_cast<std::uint32_t>(*wave);
  auto state = o->string("state", 16);
  if (!state) return fail(state.error());
  bool known = false;
  for (auto s : {RunState::kRunning, RunState::kPaused, RunState::kAborted, RunState::kCompleted})
    if (*state == run_state_name(s)) c.state = s, known = true;
  if (!known) return fail(ErrorCode::kMalformed, "control.state is not running, paused, aborted or completed");
  auto issued = time_field(*o, "issued");
  if (!issued) return fail(issued.error());
  c.issued = *issued;
  if (o->has("expires")) {
    auto expires = time_field(*o, "expires");
    if (!expires) return fail(expires.error());
    if (*expires <= c.issued) return fail(ErrorCode::kMalformed, "control: expires is not after issued");
    c.expires = *expires;
  }
  auto reason = o->string("reason", 1024);
  if (!reason) return fail(reason.error());
  c.reason = *reason;
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
  auto j = parse_object(text, kMaxDocumentBytes * 2, "campaign document");
  if (!j) return fail(j.error());
  auto o = json::Object::of(*j, "campaign document");
  if (!o) return fail(o.error());
  OTA_TRY(o->only({"campaign", "control", "roots"}));
  Document d;
  auto cj = o->object("campaign");
  if (!cj) return fail(cj.error());
  auto ce = trust::parse_envelope((*cj)->dump());
  if (!ce) return fail(ce.error().with_context("campaign document: campaign"));
  d.campaign = std::move(*ce);
  auto kj = o->object("control");
  if (!kj) return fail(kj.error());
  auto ke = trust::parse_envelope((*kj)->dump());
  if (!ke) return fail(ke.error().with_context("campaign document: control"));
  d.control = std::move(*ke);
  if (o->has("roots")) {
    auto rj = o->array("roots", kMaxRootUpdates);
    if (!rj) return fail(rj.error());
    for (const auto& r : **rj) {
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
  auto c = parse_campaign(d.campaign.payload);
  if (!c) return fail(c.error());
  if (now >= c->expires)
    return fail(ErrorCode::kExpired, "campaign " + c->id + " expired at " + trust::format_time(c->expires));
  if (d.control.payload_type != kControlType)
    return fail(ErrorCode::kMalformed, "control: payload type is not " + std::string(kControlType));
  // The control document needs the controller key's signature, and only it.
  trust::Root controller;
  controller.threshold = 1;
  controller.keys.emplace(c->controller.id(), c->controller);
  OTA_TRY_CTX(trust::check_threshold(controller, trust::signing_message(kControlType, d.control.payload),
                                     d.control.signatures),
              "campaign " + c->id + " control");
  auto k = parse_control(d.control.payload);
  if (!k) return fail(k.error());
  if (k->campaign != c->id || k->campaign_revision != c->revision)
    return fail(ErrorCode::kMalformed, "control: names campaign " + k->campaign + " revision " +
                                           std::to_string(k->campaign_revision) + ", not " + c->id + " revision " +
                                           std::to_string(c->revision));
  if (k->wave >= c->waves.size()) return fail(ErrorCode::kMalformed, "control: wave is past the campaign's last wave");
  return Verified{std::move(*c), std::move(*k)};
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

// ---- Membership ----

std::uint32_t bucket(std::string_view campaign_id, std::string_view device_id) {
  std::string m = "ota-wave-v1";
  m.push_back('\0');
  m.append(campaign_id);
  m.push_back('\0');
  m.append(device_id);
  const Digest d = content_hash(ByteSpan(reinterpret_cast<const std::uint8_t*>(m.data()), m.size()));
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<std::size_t>(i)];
  // floor(v * 10000 / 2^64), exactly, in 64-bit arithmetic.
  const std::uint64_t hi = v >> 32, lo = v & 0xffffffffu;
  return static_cast<std::uint32_t>((hi * 10000u + ((lo * 10000u) >> 32)) >> 32);
}

std::size_t wave_of(const Campaign& c, std::string_view device_id) {
  const std::uint32_t b = bucket(c.id, device_id);
  for (std::size_t i = 0; i < c.waves.size(); ++i)
    if (c.waves[i] > b) return i;
  return c.waves.empty() ? 0 : c.waves.size() - 1;
}

Result<std::vector<std::uint32_t>> parse_waves(std::string_view text) {
  std::vector<std::uint32_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item(text.substr(pos, comma - pos));
    char* end = nullptr;
    errno = 0;
    const double v = item.empty() ? 0 : std::strtod(item.c_str(), &end);
    if (item.empty() || errno != 0 || end != item.c_str() + item.size())
      return fail(ErrorCode::kUsage, "waves: '" + item.substr(0, 16) + "' is not a percentage");
    auto p = percent_from(v);
    if (!p) return fail(ErrorCode::kUsage, p.error().message);
    out.push_back(*p);
    pos = comma + 1;
  }
  if (auto st = check_waves(out); !st) return fail(ErrorCode::kUsage, st.error().message);
  return out;
}

std::string format_percent(std::uint32_t h) {
  char buf[16];
  if (h % 10) std::snprintf(buf, sizeof buf, "%u.%02u%%", h / 100, h % 100);
  else if (h % 100) std::snprintf(buf, sizeof buf, "%u.%u%%", h / 100, h % 100 / 10);
  else std::snprintf(buf, sizeof buf, "%u%%", h / 100);
  return buf;
}

Result<std::int64_t> parse_duration(std::string_view text) {
  if (text.empty() || text.size() > 20) return fail(ErrorCode::kUsage, "a duration looks like 90s, 15m, 2h or 7d");
  std::int64_t unit = 1;
  std::string_view num = text;
  switch (text.back()) {
    case 's': unit = 1, num.remove_suffix(1); break;
    case 'm': unit = 60, num.remove_suffix(1); break;
    case 'h': unit = 3600, num.remove_suffix(1); break;
    case 'd': unit = 86400, num.remove_suffix(1); break;
    default: break;
  }
  if (num.empty() || num.size() > 12 || !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail(ErrorCode::kUsage, std::string(text).append(" is not a duration (90s, 15m, 2h, 7d)"));
  return static_cast<std::int64_t>(std::stoll(std::string(num))) * unit;
}

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

// ---- View and gates ----

bool observe(std::map<std::string, DeviceView>& view, const Campaign& c, const Report& r) {
  auto it = view.find(r.device);
  if (it != view.end() && r.seq <= it->second.seq) return false;  // duplicate or older
  DeviceView& v = view[r.device];
  const bool first = it == view.end();
  v.seq = r.seq;
  v.boot = r.boot;
  v.version = r.version;
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
      default: {
        // Silent past the timeout in an open wave: failed until it reports.
        const bool open = v.wave <= s.control.wave && v.wave < s.wave_opened.size();
        if (open && s.control.state == RunState::kRunning) {
          const trust::Time heard = std::max(v.last, s.wave_opened[v.wave]);
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

// ---- Journal ----

Result<Journal> Journal::open(const std::string& path) {
  Journal j;
  j.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (j.fd_ < 0) return fail(ErrorCode::kIo, "journal " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::pread(j.fd_, buf, sizeof buf, static_cast<off_t>(text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrorCode::kIo, "journal " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    ++line;
    if (nl == std::string::npos) {
      // A crash cut the last append short: drop it (it was never acted on,
      // since a decision is acted on only after its record is synced).
      if (::ftruncate(j.fd_, static_cast<off_t>(pos)) != 0 || ::fdatasync(j.fd_) != 0)
        return fail(ErrorCode::kIo, "journal " + path + ": cutting a torn record: " + std::strerror(errno));
      break;
    }
    std::string rec = text.substr(pos, nl - pos);
    auto parsed = json::parse_strict(rec, 1u << 20, "journal record");
    if (!parsed || !parsed->is_object())
      return fail(ErrorCode::kMalformed, "journal " + path + ": line " + std::to_string(line) + " is not a JSON object");
    j.records_.push_back(std::move(rec));
    pos = nl + 1;
  }
  return j;
}

Journal::Journal(Journal&& o) noexcept : fd_(o.fd_), records_(std::move(o.records_)) { o.fd_ = -1; }
Journal& Journal::operator=(Journal&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
    records_ = std::move(o.records_);
  }
  return *this;
}
Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

Status Journal::sync() {
  if (::fdatasync(fd_) != 0) return fail(ErrorCode::kIo, std::string("journal: fsync: ") + std::strerror(errno));
  return ok();
}

Status Journal::append(const std::string& record, bool sync_now) {
  if (record.find('\n') != std::string::npos) return fail(ErrorCode::kInternal, "journal: a record spans lines");
  const std::string line = record + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrorCode::kIo, std::string("journal: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  records_.push_back(record);
  if (sync_now) return sync();
  return ok();
}

}  // namespace ota::campaign
