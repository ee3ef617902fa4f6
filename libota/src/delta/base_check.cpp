#include "delta/base_check.hpp"

#include <string>

namespace ota::delta::detail {

Status BaseChecker::start(const PatchHeader& header) {
  header_ = &header;
  switch (mode_) {
    case BaseCheck::kKnownHash:
      if (known_ != header.old_hash)
        return fail(ErrorCode::kOldMismatch, "OLD does not have the hash the patch was made from");
      return ok();
    case BaseCheck::kHashOnFailure:  // explain() hashes OLD if the patch fails
    case BaseCheck::kNone:
      return ok();
    case BaseCheck::kHashWhilePatching:
      thread_ = std::thread([this] { thread_status_ = hash_old(); });
      return ok();
    case BaseCheck::kHashFirst:
      return hash_old();
  }
  return ok();
}

// Runs on the checking thread when concurrent; touches only old_, the header
// (not written while patching) and its own hasher.
Status BaseChecker::hash_old() {
  Hasher hasher;
  OTA_TRY_CTX(hash_range(old_, 0, old_.size(), hasher, &cancel_), "hashing OLD");
  const Digest digest = hasher.finish();
  if (digest != header_->old_hash)
    return fail(ErrorCode::kOldMismatch, "OLD does not have the hash the patch was made from (BLAKE2b-256 " +
                                             to_hex(digest) + ", expected " + to_hex(header_->old_hash) + ")");
  return ok();
}

Status BaseChecker::result() {
  if (!thread_.joinable()) return ok();
  thread_.join();
  return thread_status_;
}

void BaseChecker::stop() {
  if (!thread_.joinable()) return;
  cancel_ = true;
  thread_.join();
}

Status BaseChecker::explain(Status failed, bool started) {
  if (!header_ || failed) return failed;
  const ErrorCode code = failed.error().code;
  if (mode_ == BaseCheck::kHashOnFailure) {
    if (!started || code == ErrorCode::kOldMismatch || code == ErrorCode::kIo || old_.size() != header_->old_size)
      return failed;
    Status old = hash_old();
    return !old && old.error().code == ErrorCode::kOldMismatch ? old : failed;
  }
  if (!thread_.joinable()) return failed;
  Status old = result();
  return !old && old.error().code == ErrorCode::kOldMismatch ? old : failed;
}

}  // namespace ota::delta::detail
