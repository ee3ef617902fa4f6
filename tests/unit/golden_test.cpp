// The golden fixtures (tests/data/golden, made by tests/golden/golden.cpp):
// pinned by hash, reproduced byte for byte by the generator, and read the way
// a device and a pipeline read them: the good release verifies and installs
// through both payloads, each tampered region is refused with its own code
// (library and `ota verify` exit code), the root chain walks, and the
// campaign document verifies.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "golden/fixtures.hpp"
#include "ota/core/hash.hpp"
#include "ota/device/agent.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"
#include "ota/testing/memory_environment.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/signing.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

TEST(Golden, EveryFileMatchesItsPinnedHashAndNoneIsUnlisted) {
  std::map<std::string, std::string> pinned;
  std::istringstream sums(golden::text("B2SUMS"));
  std::string hash, name;
  while (sums >> hash >> name) pinned[name] = hash;
  ASSERT_GE(pinned.size(), 14u);
  for (const auto& [file, h] : pinned) EXPECT_EQ(to_hex(content_hash(golden::file(file))), h) << file;
  for (const auto& e : std::filesystem::directory_iterator(golden::dir())) {
    const std::string f = e.path().filename().string();
    if (f != "B2SUMS" && f != "README.md") {
      EXPECT_TRUE(pinned.count(f)) << f << " is not pinned in B2SUMS";
    }
  }
}

TEST(Golden, TheGeneratorReproducesEveryFileByteForByte) {
  test::TempDir scratch;
  auto files = golden::generate(scratch.path());
  ASSERT_TRUE(files) << files.error().message;
  for (const auto& f : *files)
    EXPECT_TRUE(f.bytes == golden::file(f.name)) << f.name << " differs from the generator's: run scripts/make-golden.sh "
                                           << "if the change is intended (and say so in docs/formats.md)";
}

TEST(Golden, TheManifestMemberIsTheCanonicalEncodingExactly) {
  const Bytes m = golden::file("manifest.json");
  auto parsed = manifest::parse_manifest(m);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(manifest::encode_manifest(*parsed) == m);
  EXPECT_EQ(parsed->name, "golden-firmware");
  EXPECT_EQ(parsed->version, "2.0.0");
  ASSERT_EQ(parsed->payloads.size(), 2u);
  const Bytes release = golden::file("release.otb");
  MemoryReader in(release);
  auto r = bundle::BundleReader::open(in);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(Bytes((*r)->manifest_bytes().begin(), (*r)->manifest_bytes().end()) == m);
  EXPECT_EQ(parsed->target_hash, content_hash(golden::file("target.img")));
}

TEST(Golden, TheReleaseVerifiesAndWalksTheRootChain) {
  auto store = golden::anchor();
  ASSERT_EQ(store.root().version, 1u);
  std::vector<Bytes> payloads;
  auto st = test::read_bundle(golden::file("release.otb"), store, golden::at_now(), &payloads);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(store.root().version, 2u) << "the bundle carries the rotation to root 2";
  EXPECT_EQ(payloads.size(), 2u);
  // The chain on its own: root 2 follows root 1, and not the other way round.
  auto again = golden::anchor();
  auto r2 = trust::parse_envelope(golden::text("root-2.json"));
  ASSERT_TRUE(r2);
  ASSERT_TRUE(again.update(*r2));
  EXPECT_EQ(again.root().version, 2u);
  auto r1 = trust::parse_envelope(golden::text("root-1.json"));
  ASSERT_TRUE(r1);
  EXPECT_EQ(test::code_of(again.update(*r1)), ErrorCode::kRootRejected);
}

// Each region of the container has its own way of failing.
TEST(Golden, EachTamperedRegionIsRefusedWithItsCode) {
  const std::map<std::string, ErrorCode> expected = {
      {"tampered-manifest.otb", ErrorCode::kBadSignature},
      {"tampered-signature.otb", ErrorCode::kBadSignature},
      {"tampered-payload-full.otb", ErrorCode::kPayloadMismatch},
      {"tampered-payload-delta.otb", ErrorCode::kPayloadMismatch},
      {"tampered-header.otb", ErrorCode::kMalformed},
      {"tampered-padding.otb", ErrorCode::kMalformed},
      {"trailing-byte.otb", ErrorCode::kMalformed},
      {"truncated.otb", ErrorCode::kMalformed},
  };
  for (const auto& [file, code] : expected) {
    auto store = golden::anchor();
    auto st = test::read_bundle(golden::file(file), store, golden::at_now());
    EXPECT_EQ(test::code_of(st), code) << file << ": " << test::message_of(st);
  }
}

TEST(Golden, OtaVerifyExitCodesPerRegion) {
  const std::map<std::string, int> expected = {
      {"release.otb", 0},
      {"tampered-manifest.otb", static_cast<int>(ErrorCode::kBadSignature)},
      {"tampered-signature.otb", static_cast<int>(ErrorCode::kBadSignature)},
      {"tampered-payload-full.otb", static_cast<int>(ErrorCode::kPayloadMismatch)},
      {"tampered-payload-delta.otb", static_cast<int>(ErrorCode::kPayloadMismatch)},
      {"tampered-header.otb", static_cast<int>(ErrorCode::kMalformed)},
      {"truncated.otb", static_cast<int>(ErrorCode::kMalformed)},
  };
  for (const auto& [file, code] : expected) {
    auto r = test::run_process({OTA_CLI_PATH, "verify", golden::path(file), "--trust", golden::path("root-1.json"), "--at",
                                golden::kNow, "--hw", golden::kHardware, "--quiet"});
    EXPECT_EQ(r.exit_code, code) << file << ": " << r.err;
  }
}

// A device installs the release through each payload: the delta when bank A
// holds base.img, the full image otherwise; bank B then holds target.img.
TEST(Golden, TheReleaseInstallsThroughTheDeltaAndThroughTheFullImage) {
  const Bytes base = golden::file("base.img"), target = golden::file("target.img"), release = golden::file("release.otb");
  for (bool on_base : {true, false}) {
    SCOPED_TRACE(on_base ? "bank A holds base.img" : "bank A holds another image");
    storage::PowerCut power;
    Bytes a(64 * 1024, 0);
    const Bytes& factory = on_base ? base : target;
    std::copy(factory.begin(), factory.end() - (on_base ? 0 : 100), a.begin());
    storage::SimulatedBank bank_a(a, power), bank_b(Bytes(64 * 1024, 0), power);
    storage::SimulatedStateStore state(power);
    boot::MemoryEnvironment env;
    env.vars = {{"ota_slot", "a"}};
    auto trust = golden::anchor();
    agent::Device d;
    d.banks[0] = &bank_a;
    d.banks[1] = &bank_b;
    d.state = &state;
    d.env = &env;
    d.trust = &trust;
    d.hardware_id = golden::kHardware;
    d.now = [] { return test::at(golden::kNow); };
    d.health_check = [] { return ok(); };
    d.reboot = [] { return ok(); };
    agent::Agent agent(std::move(d));
    MemoryReader in(release);
    auto report = agent.install(in);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->delta, on_base);
    Bytes b(target.size());
    ASSERT_TRUE(bank_b.read_at(0, b));
    EXPECT_TRUE(b == target);
  }
}

// The release with a chunks payload: a device whose bank A holds base.img
// with a few bytes changed (no delta applies) installs target.img by reuse;
// one on base.img still takes the delta (the ladder's first rung).
TEST(Golden, TheReuseReleaseInstallsByReuseWhenNoDeltaApplies) {
  const Bytes base = golden::file("base.img"), target = golden::file("target.img"),
              release = golden::file("release-reuse.otb");
  for (bool on_base : {true, false}) {
    SCOPED_TRACE(on_base ? "bank A holds base.img" : "bank A holds base.img, edited");
    storage::PowerCut power;
    Bytes a(64 * 1024, 0);
    std::copy(base.begin(), base.end(), a.begin());
    if (!on_base) a[base.size() / 2] ^= 0xff;
    storage::SimulatedBank bank_a(a, power), bank_b(Bytes(64 * 1024, 0), power);
    storage::SimulatedStateStore state(power);
    boot::MemoryEnvironment env;
    env.vars = {{"ota_slot", "a"}};
    auto trust = golden::anchor();
    agent::Device d;
    d.banks[0] = &bank_a;
    d.banks[1] = &bank_b;
    d.state = &state;
    d.env = &env;
    d.trust = &trust;
    d.hardware_id = golden::kHardware;
    d.now = [] { return test::at(golden::kNow); };
    d.health_check = [] { return ok(); };
    d.reboot = [] { return ok(); };
    agent::Agent agent(std::move(d));
    MemoryReader in(release);
    auto report = agent.install(in);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->delta, on_base);
    EXPECT_EQ(report->reuse, !on_base);
    if (!on_base) EXPECT_GT(report->bytes_reused, 0u);
    Bytes b(target.size());
    ASSERT_TRUE(bank_b.read_at(0, b));
    EXPECT_TRUE(b == target);
  }
}

TEST(Golden, TheCampaignDocumentVerifiesAndIsCanonical) {
  const std::string doc = golden::text("campaign.json");
  auto d = campaign::parse_document(doc);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(campaign::encode_document(*d), doc);
  ASSERT_EQ(d->roots.size(), 1u);
  auto store = golden::anchor();
  // A device first walks the roots the document carries (key 1 signs the
  // campaign and is trusted by both roots).
  store.update_all(d->roots);
  EXPECT_EQ(store.root().version, 2u);
  auto v = campaign::verify_document(store, *d, test::at(golden::kNow));
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->campaign.id, "golden-2-0-0");
  EXPECT_EQ(v->campaign.version, "2.0.0");
  EXPECT_EQ(v->campaign.manifest_hash, content_hash(golden::file("manifest.json")));
  EXPECT_EQ(v->campaign.bundle_size, golden::file("release.otb").size());
  EXPECT_EQ(v->control.state, campaign::RunState::kPaused);
  // One changed byte of the signed campaign bytes: refused.
  auto forged = *d;
  forged.campaign.payload[forged.campaign.payload.size() / 2] ^= 0x01;
  EXPECT_EQ(test::code_of(campaign::verify_document(store, forged, test::at(golden::kNow))), ErrorCode::kBadSignature);
}

}  // namespace
}  // namespace ota
