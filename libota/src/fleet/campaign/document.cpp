// The signed documents: the campaign (release keys), its control (the controller key), the
// retained document that carries both (and root updates); verification and freshness.
#include "ota/fleet/campaign.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "fleet/campaign/fields.hpp"

namespace ota::campaign {

using namespace detail;

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

}  // namespace ota::campaign
