#include "ota/error.hpp"

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
