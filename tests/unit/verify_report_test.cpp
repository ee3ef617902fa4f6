// bundle::verify_bundle and verify_bundle_file (ota/release/verify.hpp): the
// report of every check on the golden release and on each tampered region,
// the policy checks one by one, and the inputs that are no check.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "golden/fixtures.hpp"
#include "ota/core/hash.hpp"
#include "ota/release/verify.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using bundle::Check;
using bundle::Outcome;

bundle::VerifyReport report_of(const std::string& file, const bundle::VerifyOptions& opts = golden::at_now(),
                               bool metadata_only = false) {
  const Bytes b = golden::file(file);
  MemoryReader in(b);
  auto store = golden::anchor();
  return bundle::verify_bundle(in, store, opts, metadata_only);
}

// The outcome of every check, in order, as one string ("PPPPPPSP").
std::string outcomes(const bundle::VerifyReport& r) {
  std::string s;
  for (const auto& c : r.checks) s += c.outcome == Outcome::kPassed ? 'P' : c.outcome == Outcome::kFailed ? 'F' : 'S';
  return s;
}

TEST(VerifyReport, ListsEveryCheckInOrderWithItsName) {
  auto r = report_of("release.otb");
  ASSERT_EQ(r.checks.size(), bundle::kCheckCount);
  const char* names[] = {"container", "trust_root", "signatures", "manifest",
                         "expiry",    "hardware",   "version",    "payloads"};
  for (std::size_t i = 0; i < bundle::kCheckCount; ++i) {
    EXPECT_EQ(r.checks[i].check, static_cast<Check>(i));
    EXPECT_EQ(bundle::check_name(r.checks[i].check), names[i]);
  }
  EXPECT_EQ(bundle::outcome_name(Outcome::kSkipped), "skipped");
  EXPECT_EQ(bundle::outcome_name(Outcome::kPassed), "passed");
  EXPECT_EQ(bundle::outcome_name(Outcome::kFailed), "failed");
}

TEST(VerifyReport, TheGoodReleasePassesEveryCheckItWasAskedFor) {
  const Bytes b = golden::file("release.otb");
  MemoryReader in(b);
  auto store = golden::anchor();
  auto r = bundle::verify_bundle(in, store, golden::at_now());
  ASSERT_TRUE(r.ok()) << r.error->message;
  // No installed version and no floor were given: version is not checked.
  EXPECT_EQ(outcomes(r), "PPPPPPSP");
  for (const auto& c : r.checks) EXPECT_FALSE(c.error);
  ASSERT_TRUE(r.manifest);
  EXPECT_EQ(r.manifest->version, "2.0.0");
  EXPECT_EQ(r.manifest_hash, content_hash(golden::file("manifest.json")));
  std::uint64_t total = 0;
  for (const auto& p : r.manifest->payloads) total += p.size;
  EXPECT_EQ(r.payload_bytes, total);
  EXPECT_EQ(r.root_version_before, 1u);
  EXPECT_EQ(store.root().version, 2u) << "the caller's store walked the bundle's root update";
  EXPECT_EQ(r.signatures.valid, 1u);
  EXPECT_EQ(r.signatures.threshold, 1u);
}

// Each region of the container fails its own check, with its code; the
// checks before it passed and the ones after it were skipped.
TEST(VerifyReport, EachTamperedRegionFailsItsCheck) {
  struct Case {
    Check check;
    ErrorCode code;
  };
  const std::map<std::string, Case> expected = {
      {"tampered-manifest.otb", {Check::kSignatures, ErrorCode::kBadSignature}},
      {"tampered-signature.otb", {Check::kSignatures, ErrorCode::kBadSignature}},
      {"tampered-padding.otb", {Check::kContainer, ErrorCode::kMalformed}},
      {"tampered-payload-full.otb", {Check::kPayloads, ErrorCode::kPayloadMismatch}},
      {"tampered-payload-delta.otb", {Check::kPayloads, ErrorCode::kPayloadMismatch}},
      {"tampered-header.otb", {Check::kPayloads, ErrorCode::kMalformed}},
      {"trailing-byte.otb", {Check::kPayloads, ErrorCode::kMalformed}},
      {"truncated.otb", {Check::kPayloads, ErrorCode::kMalformed}},
  };
  for (const auto& [file, want] : expected) {
    SCOPED_TRACE(file);
    auto r = report_of(file);
    ASSERT_FALSE(r.ok());
    const auto& failed = r.at(want.check);
    EXPECT_EQ(failed.outcome, Outcome::kFailed) << outcomes(r) << ": " << r.error->message;
    ASSERT_TRUE(failed.error);
    EXPECT_EQ(failed.error->code, want.code) << failed.error->message;
    EXPECT_EQ(r.error->code, want.code);
    EXPECT_EQ(r.error->message, failed.error->message);
    for (const auto& c : r.checks) {
      if (c.check < want.check && c.check != Check::kVersion) {
        EXPECT_EQ(c.outcome, Outcome::kPassed) << bundle::check_name(c.check);
      }
      if (c.check > want.check) {
        EXPECT_EQ(c.outcome, Outcome::kSkipped) << bundle::check_name(c.check);
      }
    }
  }
}

TEST(VerifyReport, SignatureDetailsAreKeptWhenTheSignaturesFail) {
  auto r = report_of("tampered-signature.otb");
  EXPECT_EQ(r.outcome(Check::kSignatures), Outcome::kFailed);
  ASSERT_EQ(r.signatures.checks.size(), 1u);
  EXPECT_EQ(r.signatures.checks[0].status, trust::SigStatus::kInvalid);
  EXPECT_EQ(r.signatures.valid, 0u);
  EXPECT_FALSE(r.manifest);
}

TEST(VerifyReport, EachPolicyPartIsItsOwnCheck) {
  {
    auto o = golden::at_now();
    o.policy.hardware = "other-board";
    auto r = report_of("release.otb", o);
    EXPECT_EQ(outcomes(r), "PPPPPFSS");
    EXPECT_EQ(r.error->code, ErrorCode::kIncompatibleHardware);
  }
  {
    auto o = golden::at_now();
    o.policy.installed_version = "2.0.0";
    auto r = report_of("release.otb", o);
    EXPECT_EQ(outcomes(r), "PPPPPPFS");
    EXPECT_EQ(r.error->code, ErrorCode::kDowngrade);
  }
  {
    auto o = golden::at_now();
    o.policy.security_floor = 1000;
    auto r = report_of("release.otb", o);
    EXPECT_EQ(outcomes(r), "PPPPPPFS");
    EXPECT_EQ(r.error->code, ErrorCode::kDowngrade);
  }
  {
    auto o = golden::at_now();
    o.policy.hardware.reset();
    o.policy.installed_version = "1.0.0";
    auto r = report_of("release.otb", o);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(outcomes(r), "PPPPPSPP");
  }
}

TEST(VerifyReport, AnExpiredRootFailsTrustRootAndIgnoringExpirySkipsExpiry) {
  auto o = golden::at_now();
  o.policy.now = test::at("2100-01-01");
  auto r = report_of("release.otb", o);
  EXPECT_EQ(outcomes(r), "PFSSSSSS");
  EXPECT_EQ(r.error->code, ErrorCode::kExpired);
  o.check_expiry = false;
  auto ignored = report_of("release.otb", o);
  EXPECT_TRUE(ignored.ok());
  EXPECT_EQ(outcomes(ignored), "PPPPSPSP");
}

TEST(VerifyReport, MetadataOnlySkipsThePayloads) {
  auto r = report_of("tampered-payload-full.otb", golden::at_now(), true);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(outcomes(r), "PPPPPPSS");
  EXPECT_EQ(r.payload_bytes, 0u);
  ASSERT_TRUE(r.manifest);
}

TEST(VerifyReport, FromFilesTheTrustRootIsLoadedFirst) {
  test::TempDir dir;
  // A trust root that does not load fails trust_root before the container is read.
  auto r = bundle::verify_bundle_file(golden::path("release.otb"), dir.file("missing-root.json"), {}, golden::at_now());
  EXPECT_EQ(outcomes(r), "SFSSSSSS");
  EXPECT_EQ(r.error->code, ErrorCode::kIo);
  EXPECT_FALSE(r.trust);
  // The good release, walking root 2 first (the bundle then carries nothing new).
  auto good = bundle::verify_bundle_file(golden::path("release.otb"), golden::path("root-1.json"), {golden::path("root-2.json")}, golden::at_now());
  ASSERT_TRUE(good.ok()) << good.error->message;
  ASSERT_TRUE(good.trust);
  EXPECT_EQ(good.trust->root().version, 2u);
  EXPECT_EQ(good.root_version_before, 2u);
  // A root update that does not chain fails trust_root, named by its path.
  auto again = bundle::verify_bundle_file(golden::path("release.otb"), golden::path("root-1.json"), {golden::path("root-1.json")}, golden::at_now());
  EXPECT_EQ(outcomes(again), "SFSSSSSS");
  EXPECT_EQ(again.error->code, ErrorCode::kRootRejected);
  EXPECT_NE(again.error->message.find("root-1.json"), std::string::npos) << again.error->message;
}

// A file that cannot be read is no check of the bundle: the report's error, no failed check.
TEST(VerifyReport, UnreadableInputsAreErrorsOutsideTheChecks) {
  test::TempDir dir;
  auto missing = bundle::verify_bundle_file(dir.file("missing.otb"), golden::path("root-1.json"), {}, golden::at_now());
  EXPECT_EQ(outcomes(missing), "SSSSSSSS");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error->code, ErrorCode::kIo);
  auto no_update = bundle::verify_bundle_file(golden::path("release.otb"), golden::path("root-1.json"), {dir.file("none.json")}, golden::at_now());
  EXPECT_EQ(outcomes(no_update), "SSSSSSSS");
  EXPECT_EQ(no_update.error->code, ErrorCode::kIo);
}

}  // namespace
}  // namespace ota
