// ota/core/error.hpp: pinned codes, stable names, context, and the propagation macros.
#include <gtest/gtest.h>

#include <set>
#include <memory>
#include <string>

#include "ota/core/error.hpp"
#include "support/patching.hpp"

namespace ota {
namespace {

struct CodeCase {
  ErrorCode code;
  int value;
  const char* name;
};

// The values leave the process (exit codes, --json, device reports): changing
// one of these lines is a breaking change, not a test update.
constexpr CodeCase kPinned[] = {
    {ErrorCode::kOk, 0, "ok"},
    {ErrorCode::kInternal, 1, "internal"},
    {ErrorCode::kUsage, 2, "usage"},
    {ErrorCode::kIo, 3, "io"},
    {ErrorCode::kOutOfMemory, 4, "out_of_memory"},
    {ErrorCode::kUnsupported, 5, "unsupported"},
    {ErrorCode::kLimitExceeded, 6, "limit_exceeded"},
    {ErrorCode::kCancelled, 7, "cancelled"},
    {ErrorCode::kPatchMalformed, 10, "patch_malformed"},
    {ErrorCode::kPatchTruncated, 11, "patch_truncated"},
    {ErrorCode::kOldMismatch, 12, "old_mismatch"},
    {ErrorCode::kNewMismatch, 13, "new_mismatch"},
    {ErrorCode::kDecompress, 14, "decompress"},
    {ErrorCode::kMalformed, 20, "malformed"},
    {ErrorCode::kBadSignature, 21, "bad_signature"},
    {ErrorCode::kTooFewSignatures, 22, "too_few_signatures"},
    {ErrorCode::kUnknownKey, 23, "unknown_key"},
    {ErrorCode::kKeyRevoked, 24, "key_revoked"},
    {ErrorCode::kExpired, 25, "expired"},
    {ErrorCode::kPayloadMismatch, 26, "payload_mismatch"},
    {ErrorCode::kIncompatibleHardware, 27, "incompatible_hardware"},
    {ErrorCode::kDowngrade, 28, "downgrade"},
    {ErrorCode::kBadPassphrase, 29, "bad_passphrase"},
    {ErrorCode::kRootRejected, 30, "root_rejected"},
    {ErrorCode::kDecryptionKey, 31, "decryption_key"},
    {ErrorCode::kFetch, 40, "fetch"},
    {ErrorCode::kTrialPending, 41, "trial_pending"},
    {ErrorCode::kRolledBack, 42, "rolled_back"},
    {ErrorCode::kNoPayload, 43, "no_payload"},
    {ErrorCode::kRebootPending, 44, "reboot_pending"},
    {ErrorCode::kTrialNotBooted, 45, "trial_not_booted"},
    {ErrorCode::kNoBootEvidence, 46, "no_boot_evidence"},
    {ErrorCode::kIllegalTransition, 47, "illegal_transition"},
    {ErrorCode::kMqtt, 60, "mqtt"},
    {ErrorCode::kMqttRefused, 61, "mqtt_refused"},
    {ErrorCode::kStaleCampaign, 62, "stale_campaign"},
    {ErrorCode::kCampaignAborted, 63, "campaign_aborted"},
    {ErrorCode::kCampaignPaused, 64, "campaign_paused"},
    {ErrorCode::kTimedOut, 65, "timed_out"},
};

TEST(ErrorCode, ValuesArePinned) {
  for (const auto& c : kPinned) EXPECT_EQ(static_cast<int>(c.code), c.value) << c.name;
}

TEST(ErrorCode, NamesArePinnedAndUnique) {
  std::set<std::string_view> seen;
  for (const auto& c : kPinned) {
    EXPECT_EQ(error_code_name(c.code), c.name) << c.value;
    EXPECT_TRUE(seen.insert(error_code_name(c.code)).second) << "duplicate name " << c.name;
  }
}

TEST(ErrorCode, NamesAreLowercaseIdentifiers) {
  for (const auto& c : kPinned) {
    for (char ch : error_code_name(c.code))
      EXPECT_TRUE((ch >= 'a' && ch <= 'z') || ch == '_') << c.name;
  }
}

TEST(ErrorCode, UnassignedValueHasAName) {
  EXPECT_EQ(error_code_name(static_cast<ErrorCode>(200)), "unknown");
  EXPECT_EQ(error_code_name(static_cast<ErrorCode>(8)), "unknown");
}

TEST(Error, DefaultIsInternal) {
  Error e;
  EXPECT_EQ(e.code, ErrorCode::kInternal);
  EXPECT_TRUE(e.message.empty());
}

TEST(Error, WithContextOnLvalueLeavesOriginal) {
  const Error e{ErrorCode::kIo, "cannot open 'x'"};
  Error c = e.with_context("reading OLD");
  EXPECT_EQ(c.code, ErrorCode::kIo);
  EXPECT_EQ(c.message, "reading OLD: cannot open 'x'");
  EXPECT_EQ(e.message, "cannot open 'x'");
}

TEST(Error, WithContextOnRvalueChains) {
  Error e = Error{ErrorCode::kPatchTruncated, "truncated record"}.with_context("frame 3").with_context("patch");
  EXPECT_EQ(e.code, ErrorCode::kPatchTruncated);
  EXPECT_EQ(e.message, "patch: frame 3: truncated record");
}

TEST(Error, WithEmptyContextStillSeparates) {
  Error e = Error{ErrorCode::kIo, "m"}.with_context("");
  EXPECT_EQ(e.message, ": m");
}

TEST(Result, FailAndOk) {
  Status s = ok();
  EXPECT_TRUE(s);
  Status f = fail(ErrorCode::kUsage, "bad flag");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kUsage);
  EXPECT_EQ(f.error().message, "bad flag");
  Result<int> r = fail(Error{ErrorCode::kCancelled, "stop"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
  Result<int> v = 42;
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 42);
}

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return fail(ErrorCode::kUsage, std::string("not a digit: ") + c);
  return c - '0';
}

Status check_digits(const std::string& s, int* calls) {
  for (char c : s) {
    ++*calls;
    OTA_TRY(parse_digit(c));
  }
  return ok();
}

Status check_with_context(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) OTA_TRY_CTX(parse_digit(s[i]), "position " + std::to_string(i));
  return ok();
}

TEST(Macros, TryPropagatesFirstErrorAndStops) {
  int calls = 0;
  EXPECT_TRUE(check_digits("123", &calls));
  EXPECT_EQ(calls, 3);
  calls = 0;
  Status s = check_digits("1x3", &calls);
  ASSERT_FALSE(s);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(s.error().code, ErrorCode::kUsage);
  EXPECT_EQ(s.error().message, "not a digit: x");
}

TEST(Macros, TryCtxPrefixesContext) {
  EXPECT_TRUE(check_with_context("42"));
  Status s = check_with_context("4?");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUsage);
  EXPECT_EQ(s.error().message, "position 1: not a digit: ?");
}

Result<int> sum_of_digits(const std::string& s, int* calls) {
  int total = 0;
  for (char c : s) {
    ++*calls;
    OTA_TRY_ASSIGN(int d, parse_digit(c));
    total += d;
  }
  return total;
}

Result<std::string> move_only_through(bool good) {
  auto make = [good]() -> Result<std::unique_ptr<std::string>> {
    if (!good) return fail(ErrorCode::kIo, "read failed");
    return std::make_unique<std::string>("payload");
  };
  OTA_TRY_ASSIGN(auto owned, make());  // a move-only value is moved out
  OTA_TRY_ASSIGN(std::string copy, Result<std::string>(*owned));  // two in one scope
  return copy + "!";
}

TEST(Macros, TryAssignDeclaresTheValueOrReturnsTheError) {
  int calls = 0;
  auto r = sum_of_digits("123", &calls);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 6);
  EXPECT_EQ(calls, 3);
  calls = 0;
  auto bad = sum_of_digits("1x3", &calls);
  ASSERT_FALSE(bad);
  EXPECT_EQ(calls, 2);  // stopped at the first error
  EXPECT_EQ(bad.error().code, ErrorCode::kUsage);
  EXPECT_EQ(bad.error().message, "not a digit: x");
}

TEST(Macros, TryAssignMovesMoveOnlyValues) {
  auto r = move_only_through(true);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "payload!");
  auto bad = move_only_through(false);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kIo);
}

TEST(Macros, TryAssignAssignsAnExistingVariable) {
  auto f = [](char c) -> Status {
    int d = -1;
    OTA_TRY_ASSIGN(d, parse_digit(c));
    return d == 7 ? ok() : fail(ErrorCode::kInternal, "wrong value");
  };
  EXPECT_TRUE(f('7'));
  EXPECT_EQ(f('z').error().code, ErrorCode::kUsage);
}

}  // namespace
}  // namespace ota
