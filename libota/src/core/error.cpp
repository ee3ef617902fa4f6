#include "ota/core/error.hpp"

namespace ota {

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kUsage: return "usage";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kOutOfMemory: return "out_of_memory";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kLimitExceeded: return "limit_exceeded";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kPatchMalformed: return "patch_malformed";
    case ErrorCode::kPatchTruncated: return "patch_truncated";
    case ErrorCode::kOldMismatch: return "old_mismatch";
    case ErrorCode::kNewMismatch: return "new_mismatch";
    case ErrorCode::kDecompress: return "decompress";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kBadSignature: return "bad_signature";
    case ErrorCode::kTooFewSignatures: return "too_few_signatures";
    case ErrorCode::kUnknownKey: return "unknown_key";
    case ErrorCode::kKeyRevoked: return "key_revoked";
    case ErrorCode::kExpired: return "expired";
    case ErrorCode::kPayloadMismatch: return "payload_mismatch";
    case ErrorCode::kIncompatibleHardware: return "incompatible_hardware";
    case ErrorCode::kDowngrade: return "downgrade";
    case ErrorCode::kBadPassphrase: return "bad_passphrase";
    case ErrorCode::kRootRejected: return "root_rejected";
    case ErrorCode::kDecryptionKey: return "decryption_key";
    case ErrorCode::kFetch: return "fetch";
    case ErrorCode::kTrialPending: return "trial_pending";
    case ErrorCode::kRolledBack: return "rolled_back";
    case ErrorCode::kNoPayload: return "no_payload";
    case ErrorCode::kRebootPending: return "reboot_pending";
    case ErrorCode::kTrialNotBooted: return "trial_not_booted";
    case ErrorCode::kNoBootEvidence: return "no_boot_evidence";
    case ErrorCode::kIllegalTransition: return "illegal_transition";
    case ErrorCode::kMqtt: return "mqtt";
    case ErrorCode::kMqttRefused: return "mqtt_refused";
    case ErrorCode::kStaleCampaign: return "stale_campaign";
    case ErrorCode::kCampaignAborted: return "campaign_aborted";
    case ErrorCode::kCampaignPaused: return "campaign_paused";
    case ErrorCode::kTimedOut: return "timed_out";
  }
  return "unknown";
}

Error Error::with_context(std::string_view context) const& {
  Error copy = *this;
  return std::move(copy).with_context(context);
}

Error Error::with_context(std::string_view context) && {
  std::string prefixed(context);
  prefixed += ": ";
  prefixed += message;
  message = std::move(prefixed);
  return std::move(*this);
}

}  // namespace ota
