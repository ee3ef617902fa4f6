// One error model for libota, the ota CLI and (later) the device agent.
//
// Every fallible call returns Result<T>: a value, or an Error with a pinned
// ErrorCode and a human message that gains context on the way up
// ("patch: frame 3: truncated record"). Codes leave the process (exit codes,
// --json output, device reports), so their numeric values never change;
// docs/error-codes.md lists them. Exceptions never cross the library boundary.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace ota {

// Pinned values: append only, never renumber. The value is also the CLI exit code.
enum class ErrorCode : std::uint8_t {
  kOk = 0,
  kInternal = 1,           // a bug or an unexpected library failure
  kUsage = 2,              // bad arguments or options
  kIo = 3,                 // reading or writing a file or device failed
  kOutOfMemory = 4,        // an allocation the operation needs failed
  kUnsupported = 5,        // a valid input that this build cannot handle (version, codec)
  kLimitExceeded = 6,      // input exceeds a configured limit (window, size)
  kCancelled = 7,          // the caller stopped the operation
  // Delta patches.
  kPatchMalformed = 10,    // the patch is not a valid patch (bad magic, bad record, trailing bytes)
  kPatchTruncated = 11,    // the patch ended before the new image was complete
  kOldMismatch = 12,       // OLD is not the image this patch was made from (size or hash)
  kNewMismatch = 13,       // the patched result does not hash to the expected NEW
  kDecompress = 14,        // a compressed stream inside the patch is corrupt
  // Keys, trust roots, manifests and bundles.
  kMalformed = 20,             // a bundle, manifest, root or key file is not well formed (or truncated)
  kBadSignature = 21,          // a signature by a trusted key does not verify
  kTooFewSignatures = 22,      // fewer distinct trusted keys signed than the threshold
  kUnknownKey = 23,            // signed only by keys the trust root does not list
  kKeyRevoked = 24,            // signed by a key the trust root revokes
  kExpired = 25,               // the manifest or the trust root has expired
  kPayloadMismatch = 26,       // a payload chunk or payload does not match the signed manifest
  kIncompatibleHardware = 27,  // the bundle does not list this hardware id
  kDowngrade = 28,             // version or security version below what is installed
  kBadPassphrase = 29,         // a sealed secret key could not be opened
  kRootRejected = 30,          // a trust root update does not chain from the current root
  kDecryptionKey = 31,         // an encrypted bundle, and no decryption key that opens it (none configured, not a recipient)

  kFetch = 40,          // downloading the bundle failed (HTTP status, connection), after retries
  kTrialPending = 41,   // a trial boot awaits boot-check, commit or rollback
  kRolledBack = 42,     // boot-check rolled the trial back (health check, fallback)
  kNoPayload = 43,      // the bundle has no full image and no delta from the active bank's content
  kRebootPending = 44,  // the device runs one slot but the bootloader boots the other next: reboot first
  kTrialNotBooted = 45, // boot-check before the trial slot booted: the trial stays pending
  kNoBootEvidence = 46, // the slot that booted is unknown (no ota.slot= marker from the bootloader)
  kIllegalTransition = 47,  // an event the life cycle does not allow in the current state; nothing changed

  // Campaigns and MQTT.
  kMqtt = 60,             // the broker could not be reached, or the connection failed, after retries
  kMqttRefused = 61,      // the broker refused a connection, subscription or publish (credentials, ACL)
  kStaleCampaign = 62,    // a campaign document older than (or replaying) one already accepted
  kCampaignAborted = 63,  // the campaign was aborted (controller exit; device skip)
  kCampaignPaused = 64,   // the campaign is paused (a gate failed or an operator paused it)
  kTimedOut = 65,         // waited too long for the broker or the controller to confirm
};

// Stable, lowercase, machine-readable name of a code ("patch_truncated").
std::string_view error_code_name(ErrorCode code) noexcept;

struct [[nodiscard]] Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // Returns this error with "context: " prefixed to its message.
  Error with_context(std::string_view context) const&;
  Error with_context(std::string_view context) &&;
};

// A value or an Error. [[nodiscard]]: a Result that is dropped is a
// compiler warning, so an error cannot be ignored by accident (cast to void
// to drop one on purpose, and say why).
template <typename T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;
  using Base::operator=;
  Result() = default;
  Result(const Base& b) : Base(b) {}       // implicit, like tl::expected's own conversions
  Result(Base&& b) : Base(std::move(b)) {}
};

using Status = Result<void>;

// Builds the error side of a Result: `return ota::fail(ErrorCode::kIo, "...")`.
inline tl::unexpected<Error> fail(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

// A success value for Status.
inline Status ok() { return {}; }

}  // namespace ota

// Propagates the error of a Result-returning expression, else yields nothing.
#define OTA_TRY(expr)                                        \
  do {                                                       \
    auto ota_try_result_ = (expr);                           \
    if (!ota_try_result_) return ::ota::fail(std::move(ota_try_result_).error()); \
  } while (0)

// Declares or assigns `lhs` from the value of a Result-returning
// expression, or returns its error:
//   OTA_TRY_ASSIGN(auto text, read_file(path));   // text is a std::string
// It expands to several statements (a declaration among them): write it as a
// statement of its own, in braces when it is the body of an if or a loop.
#define OTA_TRY_ASSIGN(lhs, ...) OTA_TRY_ASSIGN_IMPL_(OTA_TRY_CONCAT_(ota_try_value_, __LINE__), lhs, __VA_ARGS__)
#define OTA_TRY_CONCAT_(a, b) OTA_TRY_CONCAT2_(a, b)
#define OTA_TRY_CONCAT2_(a, b) a##b
#define OTA_TRY_ASSIGN_IMPL_(tmp, lhs, ...)             \
  auto tmp = (__VA_ARGS__);                             \
  if (!tmp) return ::ota::fail(std::move(tmp).error()); \
  lhs = std::move(*tmp)

// Propagates the error with context prefixed.
#define OTA_TRY_CTX(expr, ctx)                               \
  do {                                                       \
    auto ota_try_result_ = (expr);                           \
    if (!ota_try_result_)                                    \
      return ::ota::fail(std::move(ota_try_result_).error().with_context(ctx)); \
  } while (0)
