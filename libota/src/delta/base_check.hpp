// Internal: "is OLD the base this patch was made from" (PatchOptions::base_check).
//
// The patcher asks once, when the header is known (start), and again when it
// finishes (result) or fails (explain). The check either compares a hash the
// caller already knows, hashes OLD before patching, hashes it on a thread
// while patching, hashes it only to explain a failure, or is left to the
// caller. A wrong OLD explains any later failure, so explain() names it as the
// cause.
#pragma once

#include <atomic>
#include <thread>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta::detail {

class BaseChecker {
 public:
  BaseChecker(const Source& old_image, BaseCheck mode, const Digest& known_old_hash)
      : old_(old_image), mode_(mode), known_(known_old_hash) {}
  ~BaseChecker() { stop(); }
  BaseChecker(const BaseChecker&) = delete;
  BaseChecker& operator=(const BaseChecker&) = delete;

  // The header is parsed: checks what can be checked now (kKnownHash,
  // kHashFirst) or starts the concurrent hash (kHashWhilePatching).
  Status start(const PatchHeader& header);
  // The patch is complete: the concurrent check's outcome (ok otherwise).
  Status result();
  // The patch failed with `failed`: OLD's mismatch if that is what it was
  // (kHashWhilePatching waits for the hash; kHashOnFailure hashes OLD now,
  // once the patcher is past its header and setup: `started`).
  Status explain(Status failed, bool started);
  // Cancels a concurrent check (the patcher is destroyed).
  void stop();

 private:
  Status hash_old();

  const Source& old_;
  const BaseCheck mode_;
  const Digest known_;
  const PatchHeader* header_ = nullptr;
  std::thread thread_;
  Status thread_status_ = ok();
  std::atomic<bool> cancel_{false};
};

}  // namespace ota::delta::detail
