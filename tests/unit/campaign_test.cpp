// The campaign core: documents (strict parsing, signatures, revisions,
// expiry), wave membership, device reports, the gates, the journal, and the
// controller over a fake MQTT client (rebuild from the journal).
#include <functional>
#include <map>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>

#include "ota/fleet/campaign.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/release/keys.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/release/trust.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

namespace cp = ota::campaign;
using namespace std::chrono_literals;

keys::SecretKey key(std::uint8_t n) {
  Bytes seed(32, n);
  return *keys::SecretKey::from_seed(seed);
}

trust::TrustStore store_for(const keys::SecretKey& k) {
  trust::Root r;
  r.version = 1;
  r.expires = 4102444800;  // 2100
  r.threshold = 1;
  r.keys.emplace(k.public_key().id(), k.public_key());
  trust::Envelope e;
  e.payload_type = std::string(trust::kRootType);
  e.payload = trust::encode_root(r);
  e.signatures.push_back({k.public_key().id(), k.sign(trust::signing_message(trust::kRootType, e.payload))});
  return *trust::TrustStore::from_anchor(e);
}

cp::Campaign sample(const keys::SecretKey& controller) {
  cp::Campaign c;
  c.id = "fw-1.1";
  c.fleet = "meters";
  c.revision = 3;
  c.created = 1780000000;
  c.expires = 1780000000 + 86400;
  c.manifest_hash.fill(0xab);
  c.version = "1.1.0";
  c.hardware = {"board"};
  c.url = "http://127.0.0.1:8080/x.otb";
  c.bundle_size = 1234;
  c.waves = {100, 1000, 5000, 10000};
  c.gates.min_sample = 2;
  c.controller = controller.public_key();
  return c;
}

trust::Envelope sign_campaign(const cp::Campaign& c, const keys::SecretKey& k) {
  trust::Envelope e;
  e.payload_type = std::string(cp::kCampaignType);
  e.payload = cp::encode_campaign(c);
  e.signatures.push_back({k.public_key().id(), k.sign(trust::signing_message(cp::kCampaignType, e.payload))});
  return e;
}

cp::Control control_of(const cp::Campaign& c, std::uint64_t rev, std::uint32_t wave = 0,
                       cp::RunState s = cp::RunState::kRunning) {
  return cp::Control{c.id, c.revision, rev, wave, s, c.created, ""};
}

TEST(CampaignDocument, RoundTripsCanonically) {
  auto ctl = key(2);
  const cp::Campaign c = sample(ctl);
  const Bytes b = cp::encode_campaign(c);
  auto back = cp::parse_campaign(b);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(cp::encode_campaign(*back), b);
  EXPECT_EQ(back->waves, c.waves);
  EXPECT_EQ(back->controller, c.controller);
  const Bytes k = cp::encode_control(control_of(c, 7, 2, cp::RunState::kPaused));
  auto kb = cp::parse_control(k);
  ASSERT_TRUE(kb);
  EXPECT_EQ(kb->revision, 7u);
  EXPECT_EQ(kb->wave, 2u);
  EXPECT_EQ(kb->state, cp::RunState::kPaused);
}

// A security update's advisory rides in the signed campaign; an invalid one
// is refused like the manifest's; a campaign without it encodes as before.
TEST(CampaignDocument, TheAdvisoryRoundTripsAndIsChecked) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  const Bytes plain = cp::encode_campaign(c);
  EXPECT_EQ(std::string(plain.begin(), plain.end()).find("advisory"), std::string::npos);
  c.advisory = manifest::Security{"Fixes CVE-2026-1234 in the TLS stack.", {"CVE-2026-1234", "DSA-5555-1"}};
  const Bytes b = cp::encode_campaign(c);
  auto back = cp::parse_campaign(b);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->advisory);
  EXPECT_EQ(back->advisory->ids, c.advisory->ids);
  EXPECT_EQ(back->advisory->advisory, c.advisory->advisory);
  EXPECT_EQ(cp::encode_campaign(*back), b);
  c.advisory->ids = {"not an id"};
  std::string text = [&] { Bytes x = cp::encode_campaign(c); return std::string(x.begin(), x.end()); }();
  EXPECT_EQ(cp::parse_campaign(Bytes(text.begin(), text.end())).error().code, ErrorCode::kMalformed);
}

TEST(CampaignDocument, StrictParsing) {
  auto ctl = key(2);
  std::string text;
  {
    Bytes b = cp::encode_campaign(sample(ctl));
    text.assign(b.begin(), b.end());
  }
  auto parse = [](const std::string& s) { return cp::parse_campaign(Bytes(s.begin(), s.end())); };
  ASSERT_TRUE(parse(text));
  // Unknown field, duplicate key, a wave list that does not end at 100, bad id, wrong controller key id.
  std::string unknown = text;
  unknown.insert(1, "\"extra\":1,");
  EXPECT_EQ(parse(unknown).error().code, ErrorCode::kMalformed);
  std::string dup = text;
  dup.insert(1, "\"id\":\"x\",");
  EXPECT_EQ(parse(dup).error().code, ErrorCode::kMalformed);
  std::string waves = text;
  waves.replace(waves.find("[1,10,50,100]"), 13, "[1,10,50]");
  EXPECT_EQ(parse(waves).error().code, ErrorCode::kMalformed);
  std::string id = text;
  id.replace(id.find("\"fw-1.1\""), 8, "\"a/b\"");
  EXPECT_EQ(parse(id).error().code, ErrorCode::kMalformed);
  for (std::size_t cut = 0; cut < text.size(); cut += 7) EXPECT_FALSE(parse(text.substr(0, cut))) << cut;
}

TEST(CampaignDocument, RevertOnAbortIsEncodedOnlyWhenSetAndParsedStrictly) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  const Bytes plain = cp::encode_campaign(c);
  const std::string plain_text(plain.begin(), plain.end());
  // Not set: the document is what agents that predate the field accept.
  EXPECT_EQ(plain_text.find("revert_on_abort"), std::string::npos);
  EXPECT_FALSE(cp::parse_campaign(plain)->revert_on_abort);
  c.revert_on_abort = true;
  const Bytes set = cp::encode_campaign(c);
  const std::string set_text(set.begin(), set.end());
  EXPECT_NE(set_text.find("\"revert_on_abort\":true"), std::string::npos) << set_text;
  auto back = cp::parse_campaign(set);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->revert_on_abort);
  EXPECT_EQ(cp::encode_campaign(*back), set);
  // Not a boolean: refused.
  std::string bad = set_text;
  bad.replace(bad.find("\"revert_on_abort\":true"), 22, "\"revert_on_abort\":1");
  auto r = cp::parse_campaign(Bytes(bad.begin(), bad.end()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  // Signed with the campaign: a broker cannot add it to a signed document.
  auto rel = key(1);
  const trust::TrustStore trust = store_for(rel);
  cp::Campaign unsigned_c = sample(ctl);
  trust::Envelope env;
  env.payload_type = std::string(cp::kCampaignType);
  env.payload = cp::encode_campaign(unsigned_c);
  env.signatures.push_back({rel.public_key().id(), rel.sign(trust::signing_message(cp::kCampaignType, env.payload))});
  cp::Document d{env, cp::sign_control(control_of(unsigned_c, 1), ctl), {}};
  ASSERT_TRUE(cp::verify_document(trust, d, unsigned_c.created + 10));
  std::string forged(env.payload.begin(), env.payload.end());
  forged.insert(forged.size() - 1, ",\"revert_on_abort\":true");
  d.campaign.payload = Bytes(forged.begin(), forged.end());
  auto v = cp::verify_document(trust, d, unsigned_c.created + 10);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kBadSignature);
}

TEST(CampaignDocument, VerificationOrderAndErrors) {
  auto release = key(1), ctl = key(2), stranger = key(3);
  const auto trust = store_for(release);
  const cp::Campaign c = sample(ctl);
  cp::Document d{sign_campaign(c, release), cp::sign_control(control_of(c, 1), ctl)};
  const trust::Time now = c.created + 10;
  auto v = cp::verify_document(trust, d, now);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->campaign.id, "fw-1.1");
  // Through the text form too.
  auto parsed = cp::parse_document(cp::encode_document(d));
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(cp::verify_document(trust, *parsed, now));

  cp::Document unsigned_doc = d;
  unsigned_doc.campaign.signatures.clear();
  EXPECT_EQ(cp::verify_document(trust, unsigned_doc, now).error().code, ErrorCode::kTooFewSignatures);
  cp::Document forged{sign_campaign(c, stranger), d.control};
  EXPECT_EQ(cp::verify_document(trust, forged, now).error().code, ErrorCode::kUnknownKey);
  cp::Document tampered = d;
  tampered.campaign.payload[tampered.campaign.payload.size() / 2] ^= 1;
  EXPECT_EQ(cp::verify_document(trust, tampered, now).error().code, ErrorCode::kBadSignature);
  EXPECT_EQ(cp::verify_document(trust, d, c.expires).error().code, ErrorCode::kExpired);
  cp::Document wrong_controller{d.campaign, cp::sign_control(control_of(c, 2), stranger)};
  EXPECT_EQ(cp::verify_document(trust, wrong_controller, now).error().code, ErrorCode::kUnknownKey);
  cp::Control other = control_of(c, 2);
  other.campaign_revision = c.revision + 1;
  cp::Document mismatched{d.campaign, cp::sign_control(other, ctl)};
  EXPECT_EQ(cp::verify_document(trust, mismatched, now).error().code, ErrorCode::kMalformed);
  cp::Control past = control_of(c, 2, 4);
  cp::Document no_such_wave{d.campaign, cp::sign_control(past, ctl)};
  EXPECT_EQ(cp::verify_document(trust, no_such_wave, now).error().code, ErrorCode::kMalformed);
  // A control envelope passed off as a campaign (domain separation).
  cp::Document swapped{d.control, d.control};
  EXPECT_FALSE(cp::verify_document(trust, swapped, now));
}

TEST(CampaignDocument, RevisionsOrderCampaignThenControl) {
  auto ctl = key(2);
  const cp::Campaign c = sample(ctl);
  cp::Control a = control_of(c, 5), b = control_of(c, 6);
  EXPECT_LT(cp::compare_revisions(a, b), 0);
  EXPECT_EQ(cp::compare_revisions(a, a), 0);
  b.campaign_revision = c.revision - 1;
  b.revision = 100;
  EXPECT_GT(cp::compare_revisions(a, b), 0);
}

TEST(CampaignMembership, DeterministicUniformAndStable) {
  // Pinned: devices compute this themselves; it must never change.
  EXPECT_EQ(cp::bucket("fw-1.1", "meter-0001"), cp::bucket("fw-1.1", "meter-0001"));
  const std::uint32_t pinned = cp::bucket("campaign", "device");
  EXPECT_LT(pinned, 10000u);
  EXPECT_NE(cp::bucket("fw-1.1", "meter-0001"), cp::bucket("fw-1.2", "meter-0001"));
  auto ctl = key(2);
  const cp::Campaign c = sample(ctl);  // waves 1%, 10%, 50%, 100%
  std::vector<int> per_wave(4, 0);
  for (int i = 0; i < 20000; ++i) ++per_wave[cp::wave_of(c, "meter-" + std::to_string(i))];
  // Expected 200, 1800, 8000, 10000 of 20000; within 15 %.
  EXPECT_NEAR(per_wave[0], 200, 30);
  EXPECT_NEAR(per_wave[1], 1800, 270);
  EXPECT_NEAR(per_wave[2], 8000, 1200);
  EXPECT_NEAR(per_wave[3], 10000, 1500);
  // Growing a wave's percentage only moves devices into it.
  cp::Campaign wider = c;
  wider.waves = {500, 1000, 5000, 10000};
  for (int i = 0; i < 2000; ++i) {
    const std::string id = "meter-" + std::to_string(i);
    if (cp::wave_of(c, id) == 0) {
      EXPECT_EQ(cp::wave_of(wider, id), 0u);
    }
  }
}

TEST(CampaignMembership, WavesAndDurationsParse) {
  EXPECT_EQ(*cp::parse_waves("1,10,50,100"), (std::vector<std::uint32_t>{100, 1000, 5000, 10000}));
  EXPECT_EQ(*cp::parse_waves("0.5,100"), (std::vector<std::uint32_t>{50, 10000}));
  for (const char* bad : {"", "10,5,100", "1,50", "0,100", "1,,100", "1.001,100", "x", "100,100", "101"})
    EXPECT_EQ(cp::parse_waves(bad).error().code, ErrorCode::kUsage) << bad;
  EXPECT_EQ(cp::format_percent(50), "0.5%");
  EXPECT_EQ(cp::format_percent(1234), "12.34%");
  EXPECT_EQ(*cp::parse_duration("90s"), 90);
  EXPECT_EQ(*cp::parse_duration("15m"), 900);
  EXPECT_EQ(*cp::parse_duration("2h"), 7200);
  EXPECT_EQ(*cp::parse_duration("7d"), 604800);
  EXPECT_EQ(*cp::parse_duration("42"), 42);
  for (const char* bad : {"", "s", "-1s", "1x", "99999999999999999999"}) EXPECT_FALSE(cp::parse_duration(bad)) << bad;
}

TEST(CampaignReports, RoundTripAndDuplicatesIgnored) {
  cp::Report r{"meter-7", 12, "b00t", 1780000100, "fw-1.1", cp::Phase::kRolledBack, "1.0.0", "health", 42, 999};
  auto back = cp::parse_report(cp::encode_report(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(cp::encode_report(*back), cp::encode_report(r));
  EXPECT_FALSE(cp::parse_report("{\"device\":\"x\"}"));
  EXPECT_FALSE(cp::parse_report(cp::encode_report(r) + "x"));
  auto ctl = key(2);
  const cp::Campaign c = sample(ctl);
  std::map<std::string, cp::DeviceView> view;
  EXPECT_TRUE(cp::observe(view, c, r));
  EXPECT_FALSE(cp::observe(view, c, r));  // the same report again (QoS 1)
  cp::Report older = r;
  older.seq = 11;
  older.phase = cp::Phase::kDownloading;
  EXPECT_FALSE(cp::observe(view, c, older));  // a stale one arriving late
  EXPECT_EQ(view["meter-7"].phase, cp::Phase::kRolledBack);
  EXPECT_EQ(view["meter-7"].wave, cp::wave_of(c, "meter-7"));
  auto a = cp::parse_availability(cp::encode_availability({"meter-7", "b00t", false}));
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->online);
  auto cmd = cp::parse_command(cp::encode_command({"c0ffee", "abort", 1780000000, "bad build"}));
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->action, "abort");
  EXPECT_FALSE(cp::parse_command(cp::encode_command({"c0ffee", "reboot", 1780000000, ""})));
}

// A fleet view: n devices of each wave in the given phase.
struct Fleet {
  cp::Campaign c;
  std::map<std::string, cp::DeviceView> view;
  std::uint64_t seq = 0;
  void set(const std::string& id, cp::Phase p, trust::Time t) {
    cp::Report r{id, ++seq, "b", t, c.id, p, "", "", 0, 0};
    cp::observe(view, c, r);
  }
  std::vector<std::string> in_wave(std::size_t w, std::size_t n) {
    std::vector<std::string> out;
    for (int i = 0; out.size() < n; ++i)
      if (cp::wave_of(c, "d" + std::to_string(i)) == w) out.push_back("d" + std::to_string(i));
    return out;
  }
};

// ---- Signed reports and commands (identity.hpp) ----

cp::Registry registry_of(std::initializer_list<std::pair<std::string, std::uint8_t>> devices) {
  cp::Registry r;
  r.fleet = "meters";
  for (const auto& [id, n] : devices) EXPECT_TRUE(cp::register_device(r, id, key(n).public_key(), false));
  return r;
}

TEST(CampaignIdentity, RegistryRoundTripsAndIsStrict) {
  cp::Registry r = registry_of({{"m-2", 12}, {"m-1", 11}});
  const Bytes b = cp::encode_registry(r);
  auto back = cp::parse_registry(b);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(cp::encode_registry(*back), b);
  EXPECT_EQ(back->devices.size(), 2u);
  EXPECT_EQ(back->devices.at("m-1"), key(11).public_key());
  // Already registered, or the key of another device: refused.
  EXPECT_EQ(cp::register_device(r, "m-1", key(13).public_key(), false).error().code, ErrorCode::kUsage);
  EXPECT_EQ(cp::register_device(r, "m-3", key(11).public_key(), false).error().code, ErrorCode::kUsage);
  EXPECT_TRUE(cp::register_device(r, "m-1", key(13).public_key(), true));
  EXPECT_EQ(cp::register_device(r, "bad/id", key(14).public_key(), false).error().code, ErrorCode::kUsage);
  // A keyid that does not match, a device twice, unknown fields, bad format: kMalformed.
  std::string text(b.begin(), b.end());
  for (std::string bad : {text.substr(0, text.find("keyid") + 8) + "00" + text.substr(text.find("keyid") + 10),
                          std::string(R"({"format":"ota-device-registry-v1","fleet":"meters","devices":[],"x":1})"),
                          std::string(R"({"format":"ota-device-registry-v2","fleet":"meters","devices":[]})"),
                          std::string(R"({"format":"ota-device-registry-v1","fleet":"a/b","devices":[]})"), std::string("[]"),
                          std::string("{")}) {
    auto p = cp::parse_registry(Bytes(bad.begin(), bad.end()));
    EXPECT_FALSE(p) << bad;
    if (!p) EXPECT_EQ(p.error().code, ErrorCode::kMalformed);
  }
  const std::string entry = text.substr(text.find("\n{") + 1, text.find("}", text.find("\n{")) - text.find("\n{"));
  std::string twice = text;
  twice.insert(twice.find("\n]"), ",\n" + entry);
  EXPECT_FALSE(cp::parse_registry(Bytes(twice.begin(), twice.end())));
  // Every single-byte truncation fails cleanly (bounds).
  for (std::size_t n = 0; n < b.size(); n += 7) EXPECT_FALSE(cp::parse_registry(ByteSpan(b.data(), n)));
}

TEST(CampaignIdentity, CampaignSecuritySectionRoundTrips) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  cp::Registry r = registry_of({{"m-1", 11}});
  const Bytes rb = cp::encode_registry(r);
  c.security = cp::security_for(rb, r, {key(30).public_key(), key(31).public_key()});
  const Bytes b = cp::encode_campaign(c);
  auto back = cp::parse_campaign(b);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->security);
  EXPECT_EQ(back->security->registry_hash, content_hash(rb));
  EXPECT_EQ(back->security->registry_devices, 1u);
  EXPECT_EQ(back->security->operators.size(), 2u);
  EXPECT_EQ(cp::encode_campaign(*back), b);
  c.security->operators.clear();
  EXPECT_FALSE(cp::validate(c));
}

cp::Report report_of(const std::string& device, std::uint64_t seq, cp::Phase phase, const std::string& campaign = "fw-1.1") {
  cp::Report r;
  r.device = device;
  r.seq = seq;
  r.boot = "b00t";
  r.time = 1780000100;
  r.campaign = campaign;
  r.phase = phase;
  r.version = phase == cp::Phase::kSucceeded ? "1.1.0" : "1.0.0";
  r.slot = phase == cp::Phase::kSucceeded ? "b" : "a";
  r.image_hash = Digest{};
  r.image_hash->fill(0x11);
  return r;
}

TEST(CampaignIdentity, JudgeReportDropsForgedUnregisteredReplayedAndOtherCampaigns) {
  auto ctl = key(2);
  const cp::Campaign c = sample(ctl);
  const cp::Registry reg = registry_of({{"m-1", 11}, {"m-2", 12}});
  std::map<std::string, cp::DeviceView> view;
  auto judge = [&](const std::string& topic_device, const std::string& text) {
    return cp::judge_report(reg, c, topic_device, text, view).drop;
  };
  const std::string good = cp::sign_report(report_of("m-1", 5, cp::Phase::kDownloading), key(11));
  EXPECT_EQ(judge("m-1", good), cp::Drop::kNone);
  auto j = cp::judge_report(reg, c, "m-1", good, view);
  ASSERT_TRUE(j.envelope);
  EXPECT_EQ(j.report.seq, 5u);
  // Take it into the view, as the controller does.
  ASSERT_TRUE(cp::observe(view, c, j.report));
  view["m-1"].sig = j.envelope->signatures.front().sig;
  EXPECT_EQ(judge("m-1", good), cp::Drop::kDuplicate);
  // An older or equal sequence number with other content: replayed.
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-1", 4, cp::Phase::kWaiting), key(11))), cp::Drop::kReplayed);
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-1", 5, cp::Phase::kSucceeded), key(11))), cp::Drop::kReplayed);
  // Another device's key, another device's genuine report, an unknown device, unsigned, junk.
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-1", 9, cp::Phase::kSucceeded), key(12))), cp::Drop::kBadSignature);
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-2", 9, cp::Phase::kSucceeded), key(12))), cp::Drop::kBadSignature);
  EXPECT_EQ(judge("m-2", cp::sign_report(report_of("m-1", 9, cp::Phase::kSucceeded), key(12))), cp::Drop::kMalformed);
  EXPECT_EQ(judge("m-9", cp::sign_report(report_of("m-9", 9, cp::Phase::kSucceeded), key(19))), cp::Drop::kUnregistered);
  EXPECT_EQ(judge("m-1", cp::encode_report(report_of("m-1", 9, cp::Phase::kSucceeded))), cp::Drop::kUnsigned);
  EXPECT_EQ(judge("m-1", "{\"payloadType\":1}"), cp::Drop::kMalformed);
  EXPECT_EQ(judge("m-1", std::string(100000, '[')), cp::Drop::kMalformed);
  // Tampered payload: the signature no longer verifies.
  {
    auto e = trust::parse_envelope(cp::sign_report(report_of("m-1", 9, cp::Phase::kFailed), key(11)));
    ASSERT_TRUE(e);
    std::string p(e->payload.begin(), e->payload.end());
    p.replace(p.find("failed"), 6, "succeeded");
    e->payload.assign(p.begin(), p.end());
    EXPECT_EQ(judge("m-1", trust::encode_envelope(*e)), cp::Drop::kBadSignature);
  }
  // A campaign signature is not a report signature (type strings differ).
  {
    trust::Envelope e;
    e.payload_type = std::string(cp::kReportType);
    e.payload = Bytes();
    const std::string r = cp::encode_report(report_of("m-1", 9, cp::Phase::kSucceeded));
    e.payload.assign(r.begin(), r.end());
    e.signatures.push_back({key(11).public_key().id(), key(11).sign(trust::signing_message(cp::kCampaignType, e.payload))});
    EXPECT_EQ(judge("m-1", trust::encode_envelope(e)), cp::Drop::kBadSignature);
  }
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-1", 9, cp::Phase::kSucceeded, "other"), key(11))), cp::Drop::kOtherCampaign);
  // Idle reports (no campaign) count; a success needs its receipt.
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-1", 9, cp::Phase::kIdle, ""), key(11))), cp::Drop::kNone);
  cp::Report no_receipt = report_of("m-1", 9, cp::Phase::kSucceeded);
  no_receipt.image_hash.reset();
  EXPECT_EQ(judge("m-1", cp::sign_report(no_receipt, key(11))), cp::Drop::kBadReceipt);
  no_receipt = report_of("m-1", 9, cp::Phase::kSucceeded);
  no_receipt.version = "1.0.0";
  EXPECT_EQ(judge("m-1", cp::sign_report(no_receipt, key(11))), cp::Drop::kBadReceipt);
  EXPECT_EQ(judge("m-1", cp::sign_report(report_of("m-1", 9, cp::Phase::kSucceeded), key(11))), cp::Drop::kNone);
  // Observers read signed and bare reports alike.
  auto u = cp::read_report_unverified(good);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->seq, 5u);
}

TEST(CampaignIdentity, JudgeCommandObeysOnlyAuthorisedFreshNewCommands) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  const cp::Registry reg = registry_of({{"m-1", 11}});
  const Bytes rb = cp::encode_registry(reg);
  c.security = cp::security_for(rb, reg, {key(30).public_key()});
  const trust::Time now = 1780000500;
  cp::Command k;
  k.id = "cmd1";
  k.action = "pause";
  k.time = now - 10;
  k.expires = now + 3600;
  k.campaign = c.id;
  k.fleet = c.fleet;
  k.reason = "why";
  std::vector<std::string> applied;
  auto judge = [&](const std::string& text) { return cp::judge_command(c, text, applied, now).drop; };
  const std::string good = cp::sign_command(k, key(30));
  EXPECT_EQ(judge(good), cp::CommandDrop::kNone);
  auto back = cp::judge_command(c, good, applied, now);
  EXPECT_EQ(back.command.action, "pause");
  EXPECT_EQ(back.command.reason, "why");
  EXPECT_EQ(judge(cp::encode_command(k)), cp::CommandDrop::kUnsigned);
  EXPECT_EQ(judge(cp::sign_command(k, key(31))), cp::CommandDrop::kUnauthorised);
  {
    auto e = trust::parse_envelope(good);
    ASSERT_TRUE(e);
    std::string p(e->payload.begin(), e->payload.end());
    p.replace(p.find("pause"), 5, "abort");
    e->payload.assign(p.begin(), p.end());
    EXPECT_EQ(judge(trust::encode_envelope(*e)), cp::CommandDrop::kBadSignature);
  }
  cp::Command other = k;
  other.campaign = "fw-2";
  EXPECT_EQ(judge(cp::sign_command(other, key(30))), cp::CommandDrop::kOtherCampaign);
  other = k;
  other.fleet = "pumps";
  EXPECT_EQ(judge(cp::sign_command(other, key(30))), cp::CommandDrop::kOtherCampaign);
  other = k;
  other.expires = now;
  EXPECT_EQ(judge(cp::sign_command(other, key(30))), cp::CommandDrop::kExpired);
  other = k;
  other.time = now + 3000;
  other.expires = now + 6000;
  EXPECT_EQ(judge(cp::sign_command(other, key(30))), cp::CommandDrop::kExpired);
  // Applied: the last one again is a redelivery; an older one is a replay.
  applied = {"cmd1"};
  EXPECT_EQ(judge(good), cp::CommandDrop::kDuplicate);
  applied = {"cmd1", "cmd2"};
  EXPECT_EQ(judge(good), cp::CommandDrop::kReplayed);
  // Legacy campaigns (no security section) take bare commands.
  c.security.reset();
  applied.clear();
  EXPECT_EQ(judge(cp::encode_command(k)), cp::CommandDrop::kNone);
  // The signed command parser is strict and bounded.
  for (std::string bad : {std::string("{}"), std::string("[")}) EXPECT_FALSE(cp::parse_signed_command(Bytes(bad.begin(), bad.end())));
  const Bytes cb = cp::encode_signed_command(k);
  for (std::size_t n = 0; n < cb.size(); ++n) EXPECT_FALSE(cp::parse_signed_command(ByteSpan(cb.data(), n)));
}

TEST(CampaignGates, OpenPauseAbortTimeoutComplete) {
  auto ctl = key(2);
  Fleet f;
  f.c = sample(ctl);
  f.c.waves = {2000, 10000};
  f.c.gates.min_sample = 3;
  f.c.gates.soak_s = 60;
  f.c.gates.failure_threshold = 0.2;
  f.c.gates.device_timeout_s = 600;
  cp::ControllerState s;
  s.control = control_of(f.c, 1);
  s.wave_opened = {1000};
  const auto w0 = f.in_wave(0, 4), w1 = f.in_wave(1, 6);
  for (const auto& d : w0) f.set(d, cp::Phase::kWaiting, 1000);
  for (const auto& d : w1) f.set(d, cp::Phase::kWaiting, 1000);
  using A = cp::Decision::Action;
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 1100).action, A::kNone);
  f.set(w0[0], cp::Phase::kSucceeded, 1010);
  f.set(w0[1], cp::Phase::kSucceeded, 1010);
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 1100).action, A::kNone) << "below the minimum sample";
  f.set(w0[2], cp::Phase::kSucceeded, 1020);
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 1030).action, A::kNone) << "still soaking";
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 1061).action, A::kOpenWave);
  // A failure over the threshold pauses (or aborts, by option).
  cp::ControllerState s1 = s;
  s1.control.wave = 1;
  s1.wave_opened.push_back(1061);
  f.set(w1[0], cp::Phase::kRolledBack, 1070);
  auto d = cp::evaluate(f.c, s1, f.view, 1080);
  EXPECT_EQ(d.action, A::kPause) << d.reason;
  f.c.gates.abort_on_failure = true;
  EXPECT_EQ(cp::evaluate(f.c, s1, f.view, 1080).action, A::kAbort);
  f.c.gates.abort_on_failure = false;
  // Resumed: the operator accepted that failure; the gate judges what follows.
  s1.accepted_failures = 1;
  s1.accepted_finished = 4;
  EXPECT_EQ(cp::evaluate(f.c, s1, f.view, 1080).action, A::kNone);
  for (std::size_t i = 1; i < w1.size(); ++i) f.set(w1[i], cp::Phase::kSucceeded, 1090);
  f.set(w0[3], cp::Phase::kSucceeded, 1090);
  EXPECT_EQ(cp::evaluate(f.c, s1, f.view, 1100).action, A::kComplete);
  // A device silent past its timeout counts as failed.
  f.set(w0[3], cp::Phase::kDownloading, 1090);
  auto counts = cp::count(f.c, s1, f.view, 1090 + 601);
  EXPECT_EQ(counts[0].timed_out, 1u);
  EXPECT_EQ(counts[0].failed, 1u);
  EXPECT_EQ(cp::count(f.c, s1, f.view, 1100)[0].pending, 1u);
  // Paused campaigns decide nothing.
  s1.control.state = cp::RunState::kPaused;
  EXPECT_EQ(cp::evaluate(f.c, s1, f.view, 5000).action, A::kNone);
}

TEST(CampaignGates, RevertsAreCountedPerWaveAndAnAbortWaitsForThem) {
  auto ctl = key(2);
  Fleet f;
  f.c = sample(ctl);
  f.c.waves = {5000, 10000};
  cp::ControllerState s;
  s.control = control_of(f.c, 1);
  s.control.state = cp::RunState::kAborted;
  s.wave_opened = {1000};
  const auto w0 = f.in_wave(0, 4), w1 = f.in_wave(1, 2);
  for (const auto& d : w0) f.set(d, cp::Phase::kSucceeded, 1010);
  for (const auto& d : w1) f.set(d, cp::Phase::kAborted, 1010);
  EXPECT_EQ(cp::reverts_pending(f.c, cp::count(f.c, s, f.view, 1020)), 0u) << "no revert_on_abort: nothing to wait for";
  f.c.revert_on_abort = true;
  EXPECT_EQ(cp::reverts_pending(f.c, cp::count(f.c, s, f.view, 1020)), 4u);
  f.set(w0[0], cp::Phase::kReverting, 1030);
  f.set(w0[1], cp::Phase::kReverted, 1030);
  f.set(w0[2], cp::Phase::kRevertFailed, 1030);
  auto w = cp::count(f.c, s, f.view, 1040);
  EXPECT_EQ(w[0].targeted, 4u);
  EXPECT_EQ(w[0].succeeded, 1u);
  EXPECT_EQ(w[0].reverting, 1u);
  EXPECT_EQ(w[0].reverted, 1u);
  EXPECT_EQ(w[0].revert_failed, 1u);
  EXPECT_EQ(w[0].pending, 0u);
  EXPECT_EQ(w[0].failures(), 0u) << "a revert is not an install failure";
  EXPECT_EQ(w[1].aborted, 2u);
  EXPECT_EQ(w[1].reverted, 0u);
  EXPECT_EQ(cp::reverts_pending(f.c, w), 2u);
  f.set(w0[0], cp::Phase::kReverted, 1050);
  f.set(w0[3], cp::Phase::kReverted, 1050);
  w = cp::count(f.c, s, f.view, 1060);
  EXPECT_EQ(w[0].reverted, 3u);
  EXPECT_EQ(cp::reverts_pending(f.c, w), 0u);
  // The phases travel in reports and are final.
  for (auto p : {cp::Phase::kReverting, cp::Phase::kReverted, cp::Phase::kRevertFailed}) {
    cp::Report r{"d1", 5, "b", 1000, f.c.id, p, "", "why", 0, 0};
    auto back = cp::parse_report(cp::encode_report(r));
    ASSERT_TRUE(back) << cp::phase_name(p);
    EXPECT_EQ(back->phase, p);
    EXPECT_EQ(cp::is_final(p), p != cp::Phase::kReverting);
    EXPECT_FALSE(cp::is_failure(p));
  }
}

// ---- Pacing (campaign.hpp: Pace, position, admitted, pace_step) ----

TEST(CampaignPacing, DocumentsCarryThePaceAndTheAdmitBoundStrictly) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  cp::Pace pace;
  pace.devices_per_minute = 30;
  pace.bytes_per_minute = 5u << 20;
  pace.full_size = 900000;
  Digest base;
  base.fill(0x11);
  pace.deltas.emplace_back(base, 12345);
  c.pace = pace;
  const Bytes b = cp::encode_campaign(c);
  auto back = cp::parse_campaign(b);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(cp::encode_campaign(*back), b);
  ASSERT_TRUE(back->pace);
  EXPECT_EQ(back->pace->deltas, pace.deltas);
  EXPECT_EQ(back->pace->bytes_per_minute, 5u << 20);
  // A pace that limits nothing is refused; so is an unknown field in it.
  cp::Campaign none = c;
  none.pace = cp::Pace{};
  EXPECT_EQ(cp::validate(none).error().code, ErrorCode::kMalformed);
  std::string text(b.begin(), b.end());
  std::string extra = text;
  extra.insert(extra.find("\"devices_per_minute\"") , "\"burst\":1,");
  EXPECT_EQ(cp::parse_campaign(Bytes(extra.begin(), extra.end())).error().code, ErrorCode::kMalformed);

  cp::Control k = control_of(c, 2);
  k.admit = std::uint64_t{1} << 31;
  const Bytes kb = cp::encode_control(k);
  auto kback = cp::parse_control(kb);
  ASSERT_TRUE(kback);
  EXPECT_EQ(kback->admit, k.admit);
  std::string kt(kb.begin(), kb.end());
  kt.replace(kt.find("2147483648"), 10, "4294967297");  // beyond 2^32
  EXPECT_EQ(cp::parse_control(Bytes(kt.begin(), kt.end())).error().code, ErrorCode::kMalformed);
  // Without pacing the field is absent (older controllers' documents stay byte for byte).
  const Bytes plain = cp::encode_control(control_of(c, 2));
  EXPECT_EQ(std::string(plain.begin(), plain.end()).find("admit"), std::string::npos);
}

TEST(CampaignPacing, PositionsFollowTheWavesAndAdmitIsABound) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  // Monotonic with the waves: a device of an earlier wave never sits after one of a later wave.
  std::vector<std::pair<std::uint32_t, std::size_t>> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = "d" + std::to_string(i);
    seen.emplace_back(cp::position(c.id, id), cp::wave_of(c, id));
  }
  std::sort(seen.begin(), seen.end());
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_LE(seen[i - 1].second, seen[i].second);
  cp::Control k = control_of(c, 1);
  EXPECT_TRUE(cp::admitted(c, k, "d1"));  // no bound: not paced
  k.admit = 0;
  EXPECT_FALSE(cp::admitted(c, k, "d1"));
  k.admit = std::uint64_t{cp::position(c.id, "d1")};
  EXPECT_FALSE(cp::admitted(c, k, "d1"));
  k.admit = *k.admit + 1;
  EXPECT_TRUE(cp::admitted(c, k, "d1"));
  k.admit = std::uint64_t{1} << 32;
  EXPECT_TRUE(cp::admitted(c, k, "d1"));
  EXPECT_EQ(cp::parse_size("20M").value(), 20u << 20);
  EXPECT_EQ(cp::parse_size("512KiB").value(), 512u << 10);
  EXPECT_EQ(cp::parse_size("4096").value(), 4096u);
  EXPECT_FALSE(cp::parse_size("-1"));
  EXPECT_FALSE(cp::parse_size("1T"));
  EXPECT_FALSE(cp::parse_size(""));
}

TEST(CampaignPacing, StepsAdmitInPositionOrderWithinDeviceAndByteBudgets) {
  auto ctl = key(2);
  Fleet f;
  f.c = sample(ctl);
  f.c.waves = {5000, 10000};
  cp::Pace pace;
  pace.devices_per_minute = 3;
  pace.full_size = 1000;
  Digest base;
  base.fill(0x22);
  pace.deltas.emplace_back(base, 100);
  f.c.pace = pace;
  cp::ControllerState s;
  s.control = control_of(f.c, 1);
  s.control.admit = 0;
  s.wave_opened = {1000};
  const auto w0 = f.in_wave(0, 8), w1 = f.in_wave(1, 4);
  for (const auto& d : w0) f.set(d, cp::Phase::kIdle, 1000);
  for (const auto& d : w1) f.set(d, cp::Phase::kWaiting, 1000);
  auto by_position = w0;
  std::sort(by_position.begin(), by_position.end(),
            [&](const std::string& a, const std::string& b) { return cp::position(f.c.id, a) < cp::position(f.c.id, b); });
  // Devices per minute: three now (a full bucket), the next ones as tokens come back.
  cp::PaceTokens t;
  cp::refill(*f.c.pace, t, 3600);  // capped at one minute's budget
  EXPECT_EQ(t.devices, 3.0);
  auto step = cp::pace_step(f.c, s, f.view, t);
  ASSERT_TRUE(step);
  EXPECT_EQ(step->devices, 3u);
  EXPECT_EQ(step->bytes, 3000u);  // no image hash known: the full payload each
  s.control.admit = step->admit;
  for (std::size_t i = 0; i < by_position.size(); ++i)
    EXPECT_EQ(cp::admitted(f.c, s.control, by_position[i]), i < 3) << i;
  EXPECT_FALSE(cp::pace_step(f.c, s, f.view, t)) << "no tokens left";
  cp::refill(*f.c.pace, t, 20);  // a third of a minute: one device
  step = cp::pace_step(f.c, s, f.view, t);
  ASSERT_TRUE(step);
  EXPECT_EQ(step->devices, 1u);
  s.control.admit = step->admit;
  EXPECT_TRUE(cp::admitted(f.c, s.control, by_position[3]));
  EXPECT_FALSE(cp::admitted(f.c, s.control, by_position[4]));
  // Devices of a wave not open yet are never let in, whatever the budget.
  cp::refill(*f.c.pace, t, 3600);
  for (int i = 0; i < 5; ++i) {
    cp::refill(*f.c.pace, t, 60);
    if (auto more = cp::pace_step(f.c, s, f.view, t)) s.control.admit = more->admit;
  }
  for (const auto& d : w0) EXPECT_TRUE(cp::admitted(f.c, s.control, d)) << d;
  for (const auto& d : w1) EXPECT_FALSE(cp::admitted(f.c, s.control, d)) << d;
  EXPECT_FALSE(cp::pace_step(f.c, s, f.view, t)) << "wave 2 is closed";

  // Bytes per minute: a device that reports a base with a delta counts at
  // the delta's size; one larger than a minute's budget goes alone once the
  // bucket is full, and the debt delays the next.
  Fleet g;
  g.c = f.c;
  g.c.pace->devices_per_minute = 0;
  g.c.pace->bytes_per_minute = 250;
  cp::ControllerState s2;
  s2.control = control_of(g.c, 1);
  s2.control.admit = 0;
  s2.wave_opened = {1000};
  std::vector<std::string> ids = by_position;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    cp::Report r{ids[i], 1, "b", 1000, "", cp::Phase::kIdle, "1.0.0", "", 0, 0};
    if (i < 2) r.image_hash = base;  // the first two fetch the 100-byte delta
    cp::observe(g.view, g.c, r);
  }
  cp::PaceTokens t2;
  cp::refill(*g.c.pace, t2, 60);
  step = cp::pace_step(g.c, s2, g.view, t2);
  ASSERT_TRUE(step);
  EXPECT_EQ(step->devices, 2u);  // 100 + 100; the third would fetch 1000
  EXPECT_EQ(step->bytes, 200u);
  s2.control.admit = step->admit;
  EXPECT_FALSE(cp::pace_step(g.c, s2, g.view, t2));
  cp::refill(*g.c.pace, t2, 60);  // full again: the 1000-byte device goes alone
  step = cp::pace_step(g.c, s2, g.view, t2);
  ASSERT_TRUE(step);
  EXPECT_EQ(step->devices, 1u);
  EXPECT_LT(t2.bytes, 0.0);
  s2.control.admit = step->admit;
  cp::refill(*g.c.pace, t2, 60);
  EXPECT_FALSE(cp::pace_step(g.c, s2, g.view, t2)) << "still paying the debt";

  // A held device does not time out; an admitted one times out from when it was let in.
  f.c.gates.device_timeout_s = 600;
  cp::ControllerState s3;
  s3.control = control_of(f.c, 1);
  s3.wave_opened = {1000};
  const std::uint64_t bound = std::uint64_t{cp::position(f.c.id, by_position[0])} + 1;
  s3.control.admit = bound;
  s3.admissions = {{bound, 5000}};
  EXPECT_EQ(cp::admitted_at(s3, cp::position(f.c.id, by_position[0])), 5000);
  EXPECT_EQ(cp::admitted_at(s3, cp::position(f.c.id, by_position[1])), 0);
  auto counts = cp::count(f.c, s3, f.view, 5000 + 599);
  EXPECT_EQ(counts[0].timed_out, 0u);
  EXPECT_EQ(counts[0].pending, 8u);
  counts = cp::count(f.c, s3, f.view, 5000 + 601);
  EXPECT_EQ(counts[0].timed_out, 1u) << "only the admitted device, silent since it was let in";
}

// ---- The devices' rollout policy (policy.hpp) ----

TEST(CampaignPolicy, WindowsParseFormatAndWrapPastMidnight) {
  auto w = cp::parse_window("mon-fri 02:00-05:00");
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->days, 0x1f);
  EXPECT_EQ(w->start, 120);
  EXPECT_EQ(w->end, 300);
  EXPECT_EQ(cp::format_window(*w), "mon,tue,wed,thu,fri 02:00-05:00");
  EXPECT_EQ(cp::parse_window("sat,sun")->days, 0x60);
  EXPECT_EQ(cp::parse_window("sat,sun")->end, 1440);
  EXPECT_EQ(cp::parse_window("fri-mon 22:00-24:00")->days, 0x71);  // ranges wrap the week
  EXPECT_EQ(cp::parse_window("02:00-03:30")->days, 0x7f);
  for (const char* bad : {"", "funday", "mon 25:00-26:00", "mon 02:00", "mon 02:00-02:00", "mon 02:60-03:00", "mon-",
                          "24:00-01:00", "mon 02:00-00:00"})
    EXPECT_FALSE(cp::parse_window(bad)) << bad;
  // Past midnight: Friday 22:00 to Saturday 04:00 belongs to Friday's window.
  const std::vector<cp::Window> night{*cp::parse_window("fri 22:00-04:00")};
  EXPECT_TRUE(cp::in_window(night, {4, 23 * 60}));   // Fri 23:00
  EXPECT_TRUE(cp::in_window(night, {5, 3 * 60}));    // Sat 03:00
  EXPECT_FALSE(cp::in_window(night, {5, 4 * 60}));   // Sat 04:00: closed
  EXPECT_FALSE(cp::in_window(night, {3, 23 * 60}));  // Thu 23:00
  EXPECT_FALSE(cp::in_window(night, {4, 3 * 60}));   // Fri 03:00 (Thursday night is not named)
  EXPECT_TRUE(cp::in_window({}, {0, 0})) << "no windows: any time";
}

TEST(CampaignPolicy, LocalTimesAndTheNextOpeningInUtcAndANamedZone) {
  const trust::Time mon_0100 = 1780275600;  // 2026-06-01T01:00:00Z, a Monday
  auto utc = cp::local_time(mon_0100, "UTC");
  ASSERT_TRUE(utc);
  EXPECT_EQ(utc->weekday, 0);
  EXPECT_EQ(utc->minute, 60);
  const std::vector<cp::Window> w{*cp::parse_window("mon 02:00-03:00")};
  auto next = cp::next_open(w, "UTC", mon_0100);
  ASSERT_TRUE(next && *next);
  EXPECT_EQ(**next, mon_0100 + 3600);
  auto now_open = cp::next_open(w, "UTC", mon_0100 + 3600 + 59);
  ASSERT_TRUE(now_open && *now_open);
  EXPECT_EQ(**now_open, mon_0100 + 3600 + 59) << "open now: now";
  // A whole week later at the latest.
  auto later = cp::next_open(w, "UTC", mon_0100 + 2 * 3600);
  ASSERT_TRUE(later && *later);
  EXPECT_EQ(**later, mon_0100 + 3600 + 7 * 86400);
  // Unknown or unsafe zones are errors, never UTC in disguise.
  EXPECT_FALSE(cp::local_time(mon_0100, "Mars/Olympus_Mons"));
  EXPECT_FALSE(cp::local_time(mon_0100, "../etc/passwd"));
  EXPECT_FALSE(cp::is_valid_zone_name("Europe/../../x"));
  if (::access("/usr/share/zoneinfo/Europe/Berlin", R_OK) != 0) GTEST_SKIP() << "no tzdata";
  // 01:00 UTC in June is 03:00 in Berlin (CEST), and the zone is restored after.
  auto berlin = cp::local_time(mon_0100, "Europe/Berlin");
  ASSERT_TRUE(berlin) << berlin.error().message;
  EXPECT_EQ(berlin->weekday, 0);
  EXPECT_EQ(berlin->minute, 180);
  EXPECT_EQ(cp::local_time(mon_0100, "UTC")->minute, 60);
  auto in_berlin = cp::next_open(w, "Europe/Berlin", mon_0100 - 2 * 3600);  // Sunday 23:00 UTC = Monday 01:00 CEST
  ASSERT_TRUE(in_berlin && *in_berlin);
  EXPECT_EQ(**in_berlin, mon_0100 - 3600);  // Monday 02:00 CEST is 00:00 UTC
}

TEST(CampaignPolicy, ThePolicyIsSignedWithTheCampaignAndParsedStrictly) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  cp::Policy p;
  p.windows = {*cp::parse_window("mon-fri 02:00-05:00"), *cp::parse_window("sat,sun")};
  p.timezone = "local";
  p.download_early = true;
  p.start_delay_s = 1800;
  p.max_age_s = 30 * 86400;
  p.defer_on = {"metered", "battery"};
  c.policy = p;
  const Bytes b = cp::encode_campaign(c);
  auto back = cp::parse_campaign(b);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->policy);
  EXPECT_EQ(*back->policy, p);
  EXPECT_EQ(cp::encode_campaign(*back), b);
  const std::string text(b.begin(), b.end());
  EXPECT_NE(text.find("\"start\":\"02:00\",\"end\":\"05:00\""), std::string::npos) << text;
  auto parse = [](std::string t) { return cp::parse_campaign(Bytes(t.begin(), t.end())); };
  auto swap = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  EXPECT_FALSE(parse(swap("\"end\":\"05:00\"", "\"end\":\"05:61\"")));
  EXPECT_FALSE(parse(swap("\"mon\"", "\"moon\"")));
  EXPECT_FALSE(parse(swap("\"timezone\":\"local\"", "\"timezone\":\"../x\"")));
  EXPECT_FALSE(parse(swap("\"download_early\":true", "\"download_early\":1")));
  EXPECT_FALSE(parse(swap("\"metered\"", "\"Metered!\"")));
  EXPECT_FALSE(parse(swap("\"defer_on\"", "\"defer\"")));
  // Download early needs windows; a campaign without a policy has no field.
  cp::Campaign bad = c;
  bad.policy->windows.clear();
  EXPECT_EQ(cp::validate(bad).error().code, ErrorCode::kMalformed);
  const Bytes plain = cp::encode_campaign(sample(ctl));
  EXPECT_EQ(std::string(plain.begin(), plain.end()).find("policy"), std::string::npos);
}

TEST(CampaignJournal, AppendsReopensAndCutsATornRecord) {
  test::TempDir dir;
  const std::string path = dir.file("journal.jsonl");
  {
    auto j = cp::Journal::open(path);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->append("{\"type\":\"a\"}"));
    ASSERT_TRUE(j->append("{\"type\":\"b\"}"));
    EXPECT_FALSE(j->append("{\"x\":\n1}"));
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ofstream(path, std::ios::app) << "{\"type\":\"c";  // a crash mid-append
  {
    auto j = cp::Journal::open(path);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->records().size(), 2u);
    ASSERT_TRUE(j->append("{\"type\":\"d\"}"));
  }
  auto j = cp::Journal::open(path);
  ASSERT_TRUE(j);
  ASSERT_EQ(j->records().size(), 3u);
  EXPECT_EQ(j->records()[2], "{\"type\":\"d\"}");
  std::ofstream(path, std::ios::app) << "garbage\n{\"type\":\"e\"}\n";
  EXPECT_EQ(cp::Journal::open(path).error().code, ErrorCode::kMalformed);
}

// An in-memory broker stand-in: what the controller publishes, and the events it is fed.
class FakeClient final : public mqtt::Client {
 public:
  Result<int> publish(const mqtt::Message& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    published_.push_back(m);
    events_.push_back(mqtt::Event{mqtt::Event::Kind::kPublished, {}, false, ++mid_, 0});
    return mid_;
  }
  Status subscribe(const std::string& filter, int) override {
    std::lock_guard<std::mutex> lock(mu_);
    subscriptions_.push_back(filter);
    return ok();
  }
  Status unsubscribe(const std::string&) override { return ok(); }
  std::vector<std::string> subscriptions() {
    std::lock_guard<std::mutex> lock(mu_);
    return subscriptions_;
  }
  std::optional<mqtt::Event> next(std::chrono::milliseconds timeout) override {
    if (auto e = take_requeued()) return e;
    const auto end = std::chrono::steady_clock::now() + timeout;
    do {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!events_.empty()) {
          auto e = events_.front();
          events_.pop_front();
          return e;
        }
      }
      std::this_thread::sleep_for(1ms);
    } while (std::chrono::steady_clock::now() < end);
    return std::nullopt;
  }
  bool connected() const override { return true; }
  void stop() override {}
  void feed(const std::string& topic, const std::string& payload) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(mqtt::Event{mqtt::Event::Kind::kMessage, {topic, payload, 1, true, 0, {}}, true, 0, 0});
  }
  // A message as it happens (not from the retained store).
  void feed_live(const std::string& topic, const std::string& payload) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(mqtt::Event{mqtt::Event::Kind::kMessage, {topic, payload, 1, false, 0, {}}, false, 0, 0});
  }
  std::vector<mqtt::Message> published() {
    std::lock_guard<std::mutex> lock(mu_);
    return published_;
  }

 private:
  std::mutex mu_;
  std::deque<mqtt::Event> events_;
  std::vector<mqtt::Message> published_;
  std::vector<std::string> subscriptions_;
  int mid_ = 0;
};

// A campaign directory as `ota publish` leaves it (release key 1): the
// controller key, and the journal's first record with the signed document.
// `adjust` changes the campaign before it is signed.
cp::Campaign published_campaign(const std::string& cdir, const std::string& id, std::vector<std::uint32_t> waves,
                                const std::function<void(cp::Campaign&)>& adjust = {}) {
  auto pub = cp::prepare_directory(cdir);
  EXPECT_TRUE(pub);
  cp::Campaign c;
  c.id = id;
  c.fleet = "f";
  c.created = 1780000000;
  c.expires = c.created + 86400;
  c.version = "2.0.0";
  c.hardware = {"board"};
  c.url = "http://127.0.0.1/b.otb";
  c.waves = std::move(waves);
  if (pub) c.controller = *pub;
  if (adjust) adjust(c);
  auto control = cp::initial_control(cdir, c, c.created);
  EXPECT_TRUE(control);
  if (control) EXPECT_TRUE(cp::journal_publication(cdir, cp::encode_document({sign_campaign(c, key(1)), *control}), c.created));
  return c;
}

TEST(CampaignController, RunsToCompletionAndRebuildsFromItsJournal) {
  test::TempDir dir;
  const std::string cdir = dir.file("c1");
  auto release = key(1);
  auto pub = cp::prepare_directory(cdir);
  ASSERT_TRUE(pub);
  struct stat st {};
  ASSERT_EQ(::stat((cdir + "/controller.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  cp::Campaign c;
  c.id = "c1";
  c.fleet = "f";
  c.created = 1780000000;
  c.expires = c.created + 86400;
  c.version = "2.0.0";
  c.hardware = {"board"};
  c.url = "http://127.0.0.1/b.otb";
  c.waves = {5000, 10000};
  c.controller = *pub;
  auto control = cp::initial_control(cdir, c, c.created);
  ASSERT_TRUE(control);
  ASSERT_TRUE(cp::journal_publication(cdir, cp::encode_document({sign_campaign(c, release), *control}), c.created));

  Fleet f;
  f.c = c;
  const auto w0 = f.in_wave(0, 2), w1 = f.in_wave(1, 2);
  FakeClient client;
  for (const auto& d : w0) {
    client.feed(cp::state_topic("f", d), cp::encode_report({d, 1, "b", c.created, "c1", cp::Phase::kSucceeded, "2.0.0", "", 0, 0}));
    // A duplicate (QoS 1 redelivery) counts once.
    client.feed(cp::state_topic("f", d), cp::encode_report({d, 1, "b", c.created, "c1", cp::Phase::kSucceeded, "2.0.0", "", 0, 0}));
  }
  for (const auto& d : w1)
    client.feed(cp::state_topic("f", d), cp::encode_report({d, 1, "b", c.created, "c1", cp::Phase::kWaiting, "1.0.0", "", 0, 0}));
  // A report on another device's topic is ignored.
  client.feed(cp::state_topic("f", "intruder"), cp::encode_report({w1[0], 9, "b", c.created, "c1", cp::Phase::kFailed, "", "", 0, 0}));
  auto ctl = cp::Controller::open(cdir);
  ASSERT_TRUE(ctl) << ctl.error().message;
  std::atomic<bool> opened{false};
  volatile bool stop = false;
  cp::RunOptions o;
  o.tick = 20ms;
  o.now = [&] { return c.created + 5; };
  o.stop = &stop;
  o.on_change = [&](const cp::Snapshot& s) { opened = s.state.control.wave == 1; };
  std::thread t([&] {
    auto r = (*ctl)->run(client, o);
    EXPECT_TRUE(r);
  });
  for (int i = 0; i < 500 && !opened; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(opened);
  for (const auto& d : w1)
    client.feed(cp::state_topic("f", d), cp::encode_report({d, 2, "b", c.created, "c1", cp::Phase::kSucceeded, "2.0.0", "", 0, 0}));
  t.join();  // returns once completed
  auto snap = (*ctl)->snapshot(c.created + 5);
  EXPECT_EQ(snap.state.control.state, cp::RunState::kCompleted);
  EXPECT_EQ(snap.waves[0].succeeded + snap.waves[1].succeeded, 4u);
  EXPECT_EQ(snap.waves[1].failed, 0u);
  // The final document is what the broker holds, signed by the controller key.
  const auto sent = client.published();
  std::string last_doc;
  for (const auto& m : sent)
    if (m.topic == cp::campaign_topic("f", "c1")) last_doc = m.payload;
  auto d = cp::parse_document(last_doc);
  ASSERT_TRUE(d);
  auto v = cp::verify_document(store_for(release), *d, c.created + 5);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->control.state, cp::RunState::kCompleted);
  EXPECT_EQ(v->control.revision, 3u);  // open-wave, complete

  // A controller started again from the journal alone reaches the same state.
  auto again = cp::Controller::open(cdir);
  ASSERT_TRUE(again);
  auto snap2 = (*again)->snapshot(c.created + 5);
  EXPECT_EQ(snap2.state.control.revision, 3u);
  EXPECT_EQ(snap2.state.control.state, cp::RunState::kCompleted);
  EXPECT_EQ(snap2.waves[0].succeeded + snap2.waves[1].succeeded, 4u);
  EXPECT_EQ((*again)->document(), last_doc);
}

// A device that missed the document (it stays idle in an open wave, the
// fleet is quiet) gets it again with the re-read of the device states, at
// a doubling interval: a handful of copies, not one per reconcile tick.
TEST(CampaignController, RepublishesTheDocumentWhileDevicesArePendingBackingOff) {
  test::TempDir dir;
  const std::string cdir = dir.file("c2");
  const cp::Campaign c = published_campaign(cdir, "c2", {10000});
  FakeClient client;
  client.feed(cp::state_topic("f", "d0"), cp::encode_report({"d0", 1, "b", c.created, "", cp::Phase::kIdle, "1.0.0", "", 0, 0}));
  auto ctl = cp::Controller::open(cdir);
  ASSERT_TRUE(ctl) << ctl.error().message;
  volatile bool stop = false;
  cp::RunOptions o;
  o.tick = 10ms;
  o.reconcile = 100ms;
  o.now = [&] { return c.created + 5; };
  o.stop = &stop;
  auto documents = [&] {
    std::size_t n = 0;
    for (const auto& m : client.published()) n += m.topic == cp::campaign_topic("f", "c2");
    return n;
  };
  std::thread t([&] { EXPECT_TRUE((*ctl)->run(client, o)); });
  // Judging starts after a quiet second; then copies at about +0.1, +0.3,
  // +0.7, +1.5, +3.1 s (each interval twice the last).
  std::this_thread::sleep_for(4000ms);
  stop = true;
  t.join();
  const std::size_t n = documents();
  EXPECT_GE(n, 1u + 3u);   // the first publication, then copies
  EXPECT_LE(n, 1u + 7u);   // every 100 ms would be about 30
  // The state requests (each answered by every online device) and the
  // re-subscriptions (the retained states sent anew) back off with them.
  std::size_t requests = 0, subscriptions = 0;
  for (const auto& m : client.published()) requests += m.topic == cp::sync_topic("f", "c2");
  for (const auto& f : client.subscriptions()) subscriptions += f == "ota/f/devices/+/state";
  EXPECT_GE(requests, 1u + 3u);
  EXPECT_LE(requests, 1u + 7u);
  EXPECT_LE(subscriptions, 1u + 7u);
  // The copies are the document the device would have had: still fresh.
  std::string last;
  for (const auto& m : client.published())
    if (m.topic == cp::campaign_topic("f", "c2")) last = m.payload;
  EXPECT_EQ(last, (*ctl)->document());
}

// For brokers whose retained store does not span every node (a cluster):
// the controller asks every device for its state when it connects, and a
// device that comes online (a live availability message, not the retained
// store's flood nor a last will) and has not reported about the campaign gets
// the document on its own topic, at most every 10 s.
TEST(CampaignController, AsksForStatesAndSendsTheDocumentToADeviceThatCameOnline) {
  test::TempDir dir;
  const std::string cdir = dir.file("c3");
  const cp::Campaign c = published_campaign(cdir, "c3", {10000});
  FakeClient client;
  const auto online = [](const std::string& d, bool on) { return cp::encode_availability({d, "boot-1", on}); };
  client.feed(cp::availability_topic("f", "d0"), online("d0", true));  // retained: not a connection now
  client.feed_live(cp::availability_topic("f", "d1"), online("d1", true));
  client.feed_live(cp::availability_topic("f", "d1"), online("d1", true));  // again within 10 s
  client.feed_live(cp::availability_topic("f", "d2"), online("d2", false));  // a last will
  client.feed_live(cp::availability_topic("f", "d3"), online("d4", true));   // naming another device
  client.feed_live(cp::availability_topic("f", "d5"), "{not json");
  // d6 reported about this campaign: it has the document, coming online again changes nothing.
  client.feed(cp::state_topic("f", "d6"), cp::encode_report({"d6", 1, "b", c.created, "c3", cp::Phase::kWaiting, "1.0.0", "", 0, 0}));
  client.feed_live(cp::availability_topic("f", "d6"), online("d6", true));
  auto ctl = cp::Controller::open(cdir);
  ASSERT_TRUE(ctl) << ctl.error().message;
  volatile bool stop = false;
  cp::RunOptions o;
  o.tick = 10ms;
  o.now = [&] { return c.created + 5; };
  o.stop = &stop;
  std::thread t([&] { EXPECT_TRUE((*ctl)->run(client, o)); });
  std::this_thread::sleep_for(500ms);
  stop = true;
  t.join();
  std::map<std::string, std::size_t> sent;
  for (const auto& m : client.published()) {
    ++sent[m.topic];
    if (m.topic == cp::device_campaign_topic("f", "d1", "c3")) {
      EXPECT_EQ(m.payload, (*ctl)->document());
      EXPECT_FALSE(m.retain);
    }
    if (m.topic == cp::sync_topic("f", "c3")) EXPECT_FALSE(m.retain);
  }
  EXPECT_EQ(sent[cp::sync_topic("f", "c3")], 1u) << "asked once, on connecting";
  EXPECT_EQ(sent[cp::device_campaign_topic("f", "d1", "c3")], 1u);
  for (const char* d : {"d0", "d2", "d3", "d4", "d5", "d6"}) EXPECT_EQ(sent[cp::device_campaign_topic("f", d, "c3")], 0u) << d;
  const std::string text = (*ctl)->metrics(c.created + 5, 0);
  EXPECT_NE(text.find("ota_campaign_device_documents_total{"), std::string::npos);
  EXPECT_NE(text.find("ota_campaign_state_requests_total{"), std::string::npos);
}

// ---- Regression gate (regression.cpp) ----

TEST(CampaignRegression, TwoProportionZMatchesKnownValues) {
  // 30 % of 100 against 20 % of 100: pooled p 0.25, se sqrt(0.25 * 0.75 * 0.02).
  EXPECT_NEAR(cp::two_proportion_z(30, 100, 20, 100), 1.632993, 1e-5);
  EXPECT_NEAR(cp::two_proportion_z(20, 100, 30, 100), -1.632993, 1e-5) << "one-sided: the sign says which is worse";
  // 4 of 4 against 0 of 4: pooled p 0.5, se sqrt(0.25 * 0.5).
  EXPECT_NEAR(cp::two_proportion_z(4, 4, 0, 4), 2.828427, 1e-5);
  // 10 of 50 against 5 of 200: p 0.06, se sqrt(0.06 * 0.94 * (1/50 + 1/200)) = 0.037550.
  EXPECT_NEAR(cp::two_proportion_z(10, 50, 5, 200), 4.660452, 1e-5);
  EXPECT_EQ(cp::two_proportion_z(0, 0, 1, 10), 0.0) << "an empty group";
  EXPECT_EQ(cp::two_proportion_z(3, 10, 0, 0), 0.0);
  EXPECT_EQ(cp::two_proportion_z(0, 10, 0, 10), 0.0) << "no variance: nobody regressed";
  EXPECT_EQ(cp::two_proportion_z(10, 10, 7, 7), 0.0) << "no variance: everybody regressed";
}

cp::Regression regression_section() {
  cp::Regression g;
  g.observe_s = 3600;
  g.interval_s = 60;
  g.margin = 0.1;
  g.min_sample = 5;
  g.z = 1.645;
  return g;
}

TEST(CampaignRegression, DocumentCarriesTheSectionSignedAndParsesItStrictly) {
  auto ctl = key(2);
  cp::Campaign c = sample(ctl);
  const Bytes plain = cp::encode_campaign(c);
  EXPECT_EQ(std::string(plain.begin(), plain.end()).find("regression"), std::string::npos)
      << "absent: the document stays what older agents accept";
  EXPECT_FALSE(cp::parse_campaign(plain)->regression);
  c.regression = regression_section();
  c.regression->abort = true;
  const Bytes set = cp::encode_campaign(c);
  const std::string text(set.begin(), set.end());
  EXPECT_NE(text.find(R"("regression":{"observe_s":3600,"interval_s":60,"margin":0.1,"min_sample":5,"z":1.645,"action":"abort"})"),
            std::string::npos)
      << text;
  auto back = cp::parse_campaign(set);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->regression);
  EXPECT_EQ(back->regression->observe_s, 3600);
  EXPECT_EQ(back->regression->interval_s, 60);
  EXPECT_DOUBLE_EQ(back->regression->margin, 0.1);
  EXPECT_EQ(back->regression->min_sample, 5u);
  EXPECT_DOUBLE_EQ(back->regression->z, 1.645);
  EXPECT_TRUE(back->regression->abort);
  EXPECT_EQ(cp::encode_campaign(*back), set);
  auto refused = [&](const std::string& from, const std::string& to) {
    std::string bad = text;
    const auto at = bad.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at == std::string::npos) return;
    bad.replace(at, from.size(), to);
    auto r = cp::parse_campaign(Bytes(bad.begin(), bad.end()));
    EXPECT_FALSE(r) << bad;
    if (!r) EXPECT_EQ(r.error().code, ErrorCode::kMalformed) << bad;
  };
  refused(R"("action":"abort")", R"("action":"stop")");
  refused(R"("action":"abort")", R"("action":"abort","extra":1)");
  refused(R"("interval_s":60)", R"("interval_s":7200)");  // longer than the observation
  refused(R"("observe_s":3600)", R"("observe_s":0)");
  refused(R"("margin":0.1)", R"("margin":1.5)");
  refused(R"("min_sample":5)", R"("min_sample":0)");
  refused(R"("z":1.645,)", R"("z":"1.645",)");
  refused(R"("z":1.645,)", "");
  refused(R"("z":1.645)", R"("z":11)");
}

TEST(CampaignRegression, ReportSignalsRoundTripAndParseStrictly) {
  cp::Report r{"dev-1", 7, "b1", 1780000000, "fw-1.1", cp::Phase::kSucceeded, "1.1.0", "", 0, 0};
  EXPECT_EQ(cp::encode_report(r).find("signals"), std::string::npos);
  r.signals = cp::Signals{120, 2, 1, 5};
  const std::string text = cp::encode_report(r);
  EXPECT_NE(text.find(R"("signals":{"observed_s":120,"health_failures":2,"unexpected_reboots":1,"counter":5})"),
            std::string::npos)
      << text;
  auto back = cp::parse_report(text);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->signals);
  EXPECT_EQ(back->signals->observed_s, 120);
  EXPECT_EQ(back->signals->health_failures, 2u);
  EXPECT_EQ(back->signals->unexpected_reboots, 1u);
  EXPECT_EQ(back->signals->counter, 5u);
  EXPECT_TRUE(back->signals->regressed());
  EXPECT_FALSE((cp::Signals{3600, 0, 0, 0}).regressed());
  EXPECT_EQ(cp::encode_report(*back), text);
  std::string bad = text;
  bad.replace(bad.find(R"("counter":5)"), 11, R"("counter":5,"cpu":1)");
  EXPECT_FALSE(cp::parse_report(bad));
  bad = text;
  bad.replace(bad.find(R"("health_failures":2)"), 19, R"("health_failures":-2)");
  EXPECT_FALSE(cp::parse_report(bad));
}

// Devices with their signals: `regressed` of them saw something.
void set_signals(Fleet& f, const std::vector<std::string>& ids, cp::Phase p, std::size_t regressed) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    cp::Report r{ids[i], ++f.seq, "b", 2000, f.c.id, p, "", "", 0, 0};
    r.signals = cp::Signals{600, i < regressed ? 1u : 0u, 0, 0};
    cp::observe(f.view, f.c, r);
  }
}

TEST(CampaignRegression, TheGateWeighsUpdatedAgainstControlPastTheMarginWithAMinimumSample) {
  auto ctl = key(2);
  Fleet f;
  f.c = sample(ctl);
  f.c.waves = {5000, 10000};
  f.c.gates.min_sample = 3;
  f.c.gates.soak_s = 86400;  // the success gate waits: only the regression gate can decide
  f.c.regression = regression_section();
  cp::ControllerState s;
  s.control = control_of(f.c, 1);
  s.wave_opened = {1000};
  using A = cp::Decision::Action;
  const auto updated = f.in_wave(0, 10), control = f.in_wave(1, 10);
  set_signals(f, updated, cp::Phase::kSucceeded, 4);
  set_signals(f, {control.begin(), control.begin() + 4}, cp::Phase::kWaiting, 0);
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 2000).action, A::kNone) << "4 control devices: below the minimum sample";
  set_signals(f, control, cp::Phase::kWaiting, 0);
  auto k = cp::regression_counts(f.c, f.view);
  EXPECT_EQ(k.updated, 10u);
  EXPECT_EQ(k.updated_regressed, 4u);
  EXPECT_EQ(k.control, 10u);
  EXPECT_EQ(k.control_regressed, 0u);
  EXPECT_NEAR(k.z(), 2.236068, 1e-5);
  // 40 % against 0 %, z 2.24: installs all succeeded, and still the wave pauses.
  auto counts = cp::count(f.c, s, f.view, 2000);
  EXPECT_EQ(counts[0].succeeded, 10u);
  EXPECT_EQ(counts[0].failures(), 0u);
  auto d = cp::evaluate(f.c, s, f.view, 2000);
  EXPECT_EQ(d.action, A::kPause) << d.reason;
  EXPECT_EQ(d.reason.rfind(cp::kRegressionReason, 0), 0u) << d.reason;
  EXPECT_NE(d.reason.find("4 of 10 updated"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("z 2.236 > 1.645"), std::string::npos) << d.reason;
  f.c.regression->abort = true;
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 2000).action, A::kAbort);
  f.c.regression->abort = false;
  // Within the margin: nothing.
  f.c.regression->margin = 0.5;
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 2000).action, A::kNone);
  f.c.regression->margin = 0.1;
  // A larger minimum sample than the groups hold: nothing yet.
  f.c.regression->min_sample = 11;
  EXPECT_EQ(cp::regression_gate(f.c, s, f.view).action, A::kNone);
  f.c.regression->min_sample = 5;
  // Past the margin but not significant: 2 of 10 against 0 of 10 with margin 0.1 is z 1.49.
  set_signals(f, updated, cp::Phase::kSucceeded, 2);
  EXPECT_NEAR(cp::regression_counts(f.c, f.view).z(), 1.490712, 1e-5);
  EXPECT_EQ(cp::regression_gate(f.c, s, f.view).action, A::kNone);
  f.c.regression->z = 1.28;  // alpha 0.10
  EXPECT_EQ(cp::regression_gate(f.c, s, f.view).action, A::kPause);
  f.c.regression->z = 1.645;
  // The other way: the control group is worse. Never a regression of the update.
  set_signals(f, updated, cp::Phase::kSucceeded, 0);
  set_signals(f, control, cp::Phase::kWaiting, 6);
  EXPECT_LT(cp::regression_counts(f.c, f.view).z(), 0.0);
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 2000).action, A::kNone);
  // Both as bad: no difference.
  set_signals(f, updated, cp::Phase::kSucceeded, 6);
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 2000).action, A::kNone);
  // Worse again; an operator who resumed after the gate accepted it; a paused
  // campaign and one without the section decide nothing.
  set_signals(f, control, cp::Phase::kWaiting, 0);
  EXPECT_EQ(cp::evaluate(f.c, s, f.view, 2000).action, A::kPause);
  cp::ControllerState accepted = s;
  accepted.regression_accepted = true;
  EXPECT_EQ(cp::evaluate(f.c, accepted, f.view, 2000).action, A::kNone);
  cp::ControllerState paused = s;
  paused.control.state = cp::RunState::kPaused;
  EXPECT_EQ(cp::regression_gate(f.c, paused, f.view).action, A::kNone);
  // Devices without signals (older agents) are in neither group.
  cp::Campaign plain = f.c;
  plain.regression.reset();
  EXPECT_EQ(cp::regression_gate(plain, s, f.view).action, A::kNone);
  EXPECT_EQ(cp::regression_counts(plain, f.view).updated, 0u);
  f.set(updated[0], cp::Phase::kSucceeded, 2100);  // a report without signals
  EXPECT_EQ(cp::regression_counts(f.c, f.view).updated, 9u);
  // The status shows the groups.
  cp::Snapshot snap;
  snap.campaign = f.c;
  snap.state = s;
  snap.devices = f.view;
  snap.waves = cp::count(f.c, s, f.view, 2100);
  snap.now = 2100;
  const std::string status = cp::encode_status(snap);
  EXPECT_NE(status.find(R"("regression":{"observe_s":3600,"margin":0.1,"min_sample":5,"z_threshold":1.645,"updated":9,)"
                        R"("updated_regressed":5,"control":10,"control_regressed":0,"z":)"),
            std::string::npos)
      << status;
  EXPECT_NE(status.find(R"("accepted":false})"), std::string::npos) << status;
}

// The regression gate through the controller: the pause is journaled with
// its numbers; an operator's resume accepts the regression (journaled), and
// a controller rebuilt from the journal does not pause again.
TEST(CampaignController, ARegressionPauseIsJournaledAndAResumeAcceptsItAcrossARestart) {
  test::TempDir dir;
  const std::string cdir = dir.file("c1");
  const cp::Campaign c = published_campaign(cdir, "c1", {5000, 10000}, [](cp::Campaign& x) {
    x.gates.soak_s = 86400;  // the success gate waits
    x.regression = regression_section();
    x.regression->min_sample = 3;
  });
  Fleet f;
  f.c = c;
  const auto w0 = f.in_wave(0, 3), w1 = f.in_wave(1, 3);
  auto feed_all = [&](FakeClient& client) {
    for (const auto& d : w0) {
      cp::Report r{d, 5, "b", c.created, "c1", cp::Phase::kSucceeded, "2.0.0", "", 0, 0};
      r.signals = cp::Signals{60, 0, 1, 0};  // an unexpected reboot each
      client.feed(cp::state_topic("f", d), cp::encode_report(r));
    }
    for (const auto& d : w1) {
      cp::Report r{d, 5, "b", c.created, "c1", cp::Phase::kWaiting, "1.0.0", "", 0, 0};
      r.signals = cp::Signals{60, 0, 0, 0};
      client.feed(cp::state_topic("f", d), cp::encode_report(r));
    }
  };
  cp::RunOptions o;
  o.tick = 20ms;
  o.now = [&] { return c.created + 5; };
  o.exit_on_pause = true;
  {
    FakeClient client;
    feed_all(client);
    auto ctl = cp::Controller::open(cdir);
    ASSERT_TRUE(ctl) << ctl.error().message;
    auto r = (*ctl)->run(client, o);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, cp::RunState::kPaused);
    auto snap = (*ctl)->snapshot(c.created + 5);
    EXPECT_EQ(snap.waves[0].succeeded, 3u) << "every install succeeded";
    EXPECT_EQ(snap.waves[0].failures(), 0u);
  }
  std::vector<std::string> records;
  {
    auto j = cp::Journal::open(cdir + "/journal.jsonl");
    ASSERT_TRUE(j);
    records = j->records();
  }
  ASSERT_EQ(records.size(), 1u + 6u + 1u) << "publication, first sightings, the pause";
  EXPECT_NE(records.back().find(R"("action":"pause","reason":"regression gate: 3 of 3 updated devices regressed (100.0 %) )"
                                R"(against 0 of 3 in the control group (0.0 %): difference 1.000 > margin 0.100, z 2.449 > 1.645")"),
            std::string::npos)
      << records.back();
  // The operator resumes: the regression is accepted and the gate is quiet.
  {
    FakeClient client;
    feed_all(client);
    client.feed(cp::commands_topic("f", "c1"), cp::encode_command({"cmd-1", "resume", c.created + 5, "known issue"}));
    auto ctl = cp::Controller::open(cdir);
    ASSERT_TRUE(ctl) << ctl.error().message;
    volatile bool stop = false;
    cp::RunOptions ro = o;
    ro.exit_on_pause = false;
    ro.stop = &stop;
    std::atomic<bool> resumed{false};
    ro.on_change = [&](const cp::Snapshot& s) {
      if (s.state.control.state == cp::RunState::kRunning && s.state.regression_accepted) resumed = true;
    };
    std::thread t([&] { EXPECT_TRUE((*ctl)->run(client, ro)); });
    for (int i = 0; i < 500 && !resumed; ++i) std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(300ms);  // more ticks: no second pause
    stop = true;
    t.join();
    ASSERT_TRUE(resumed);
    EXPECT_EQ((*ctl)->snapshot(c.created + 5).state.control.state, cp::RunState::kRunning);
  }
  auto again = cp::Controller::open(cdir);
  ASSERT_TRUE(again);
  auto snap = (*again)->snapshot(c.created + 5);
  EXPECT_TRUE(snap.state.regression_accepted) << "rebuilt from the journal";
  EXPECT_EQ(snap.state.control.state, cp::RunState::kRunning);
  EXPECT_EQ(cp::evaluate(c, snap.state, snap.devices, c.created + 5).action, cp::Decision::Action::kNone);
  cp::ControllerState not_accepted = snap.state;
  not_accepted.regression_accepted = false;
  EXPECT_EQ(cp::evaluate(c, not_accepted, snap.devices, c.created + 5).action, cp::Decision::Action::kPause)
      << "the journal holds the signals: only the acceptance keeps the gate quiet";
  auto j = cp::Journal::open(cdir + "/journal.jsonl");
  ASSERT_TRUE(j);
  std::size_t pauses = 0, accepted = 0;
  for (const auto& r : j->records()) {
    pauses += r.find(R"("action":"pause")") != std::string::npos;
    accepted += r.find(R"("action":"resume")") != std::string::npos && r.find(R"("regression_accepted":true)") != std::string::npos;
  }
  EXPECT_EQ(pauses, 1u);
  EXPECT_EQ(accepted, 1u);
}

// Signed reports that wait together are checked as one batch on several
// threads, then applied in arrival order: duplicates, replays and forgeries
// inside the batch get the verdicts judge_report() gives one at a time, and
// every result counts once.
TEST(CampaignController, ABatchOfSignedReportsIsJudgedInArrivalOrder) {
  test::TempDir dir;
  const std::string cdir = dir.file("fw-1.1");
  auto release = key(1);
  auto pub = cp::prepare_directory(cdir);
  ASSERT_TRUE(pub);
  cp::Registry reg;
  reg.fleet = "meters";
  constexpr int kDevices = 40;
  auto id = [](int i) { return "m-" + std::to_string(i); };
  for (int i = 0; i < kDevices; ++i)
    ASSERT_TRUE(cp::register_device(reg, id(i), key(static_cast<std::uint8_t>(100 + i)).public_key(), false));
  const Bytes rb = cp::encode_registry(reg);
  std::ofstream(cdir + "/" + cp::kRegistryFile, std::ios::binary).write(reinterpret_cast<const char*>(rb.data()),
                                                                       static_cast<std::streamsize>(rb.size()));
  cp::Campaign c;
  c.id = "fw-1.1";
  c.fleet = "meters";
  c.created = 1780000000;
  c.expires = c.created + 86400;
  c.version = "1.1.0";
  c.hardware = {"board"};
  c.url = "http://127.0.0.1/b.otb";
  c.waves = {10000};
  c.gates.success_threshold = 0;
  c.gates.failure_threshold = 1;
  c.controller = *pub;
  c.security = cp::security_for(rb, reg, {key(30).public_key()});
  auto control = cp::initial_control(cdir, c, c.created);
  ASSERT_TRUE(control);
  ASSERT_TRUE(cp::journal_publication(cdir, cp::encode_document({sign_campaign(c, release), *control, {}}), c.created));

  FakeClient client;
  // Device 0 stays waiting, so the campaign does not complete.
  for (int i = 0; i < kDevices; ++i) {
    const auto k = key(static_cast<std::uint8_t>(100 + i));
    const std::string topic = cp::state_topic("meters", id(i));
    const std::string downloading = cp::sign_report(report_of(id(i), 2, cp::Phase::kDownloading), k);
    client.feed(topic, cp::sign_report(report_of(id(i), 1, cp::Phase::kWaiting), k));
    client.feed(topic, downloading);
    client.feed(topic, downloading);                                                          // duplicate
    client.feed(topic, cp::sign_report(report_of(id(i), 1, cp::Phase::kFailed), k));        // replayed
    client.feed(topic, cp::sign_report(report_of(id(i), 9, cp::Phase::kFailed), key(29)));  // forged
    if (i > 0) client.feed(topic, cp::sign_report(report_of(id(i), 3, cp::Phase::kSucceeded), k));
  }
  auto ctl = cp::Controller::open(cdir);
  ASSERT_TRUE(ctl) << ctl.error().message;
  volatile bool stop = false;
  cp::RunOptions o;
  o.tick = 10ms;
  o.now = [&] { return c.created + 5; };
  o.stop = &stop;
  o.verify_threads = 4;
  std::thread t([&] { EXPECT_TRUE((*ctl)->run(client, o)); });
  std::this_thread::sleep_for(1500ms);
  stop = true;
  t.join();
  const auto snap = (*ctl)->snapshot(c.created + 5);
  ASSERT_EQ(snap.waves.size(), 1u);
  EXPECT_EQ(snap.waves[0].targeted, static_cast<std::uint64_t>(kDevices));
  EXPECT_EQ(snap.waves[0].succeeded, static_cast<std::uint64_t>(kDevices - 1));
  EXPECT_EQ(snap.waves[0].failed, 0u);
  EXPECT_EQ(snap.dropped_reports.at("replayed"), static_cast<std::uint64_t>(kDevices));
  EXPECT_EQ(snap.dropped_reports.at("bad_signature"), static_cast<std::uint64_t>(kDevices));
  EXPECT_EQ(snap.dropped_reports.size(), 2u);
  for (int i = 0; i < kDevices; ++i) EXPECT_EQ(snap.devices.at(id(i)).seq, i == 0 ? 2u : 3u) << id(i);
  // Each result journaled once (first sightings and successes).
  auto j = cp::Journal::open(cdir + "/journal.jsonl");
  ASSERT_TRUE(j);
  std::map<std::string, int> successes;
  for (const auto& r : j->records()) {
    if (r.find("\"type\":\"result\"") == std::string::npos || r.find("\"phase\":\"succeeded\"") == std::string::npos)
      continue;
    const auto at = r.find("\"device\":\"") + 10;
    ++successes[r.substr(at, r.find('"', at) - at)];
  }
  EXPECT_EQ(successes.size(), static_cast<std::size_t>(kDevices - 1));
  for (const auto& [d, n] : successes) EXPECT_EQ(n, 1) << d;
}

}  // namespace
}  // namespace ota
