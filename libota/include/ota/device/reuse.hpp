// Reuse: installing a `chunks` payload (docs/formats.md, "Chunks payload")
// by copying the chunks of the new image the device already holds, in either
// bank, and fetching only the others (docs/design.md, "Reuse").
//
// The steps, used by Agent::install (agent/install.cpp):
//   read_index   the payload's index, read by its signed hash before parsing
//   scan         a bank cut with the index's parameters: plain hash -> offset
//   plan         for each target chunk, where its bytes are expected to be
//   write_chunks the target, front to back, into the inactive bank
//
// Contract of write_chunks():
//  - a local chunk is read, hashed and compared with the index at the moment
//    it is copied; one that does not match (a source in the inactive bank
//    already overwritten, a bank that changed) is fetched instead, so
//    correctness never depends on the plan;
//  - a fetched chunk's stored bytes are checked against the index (by the
//    bundle reader) before they are decompressed, and the decompressed bytes
//    against the plain hash before they are written;
//  - the active bank is only read; the target is written strictly front to
//    back; every checkpoint_bytes of target it reports a ResumePoint at a
//    chunk boundary (frame = chunk number, patch_offset = payload offset of
//    that chunk's stored bytes, new_offset = target offset) once the writer
//    accepted everything before it, for the caller to sync and persist.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/sink.hpp"
#include "ota/device/storage.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/chunks.hpp"

namespace ota::reuse {

struct DigestHash {
  std::size_t operator()(const Digest& d) const noexcept {
    std::size_t h = 0;
    for (std::size_t i = 0; i < sizeof h; ++i) h = h << 8 | d[i];
    return h;
  }
};

// Reads the index of the current payload `p` (kind chunks) of `reader`, which
// must not have read any of it yet: its first index_size bytes, checked
// against index_hash, then parsed; the index must describe the manifest's
// target and the payload's size. kPayloadMismatch, kMalformed.
Result<chunks::Index> read_index(bundle::BundleReader& reader, const manifest::Payload& p,
                                 const manifest::Manifest& m);

// The chunks of bank[0, size) cut with `params`: each distinct plain hash
// with the offset of its last occurrence.
using LocalChunks = std::unordered_map<Digest, std::uint64_t, DigestHash>;
Result<LocalChunks> scan(const Source& bank, std::uint64_t size, const chunks::Params& params);

enum class Origin : std::uint8_t { kFetch, kActive, kWritten, kInactive };
struct Step {
  Origin origin = Origin::kFetch;
  std::uint64_t offset = 0;  // in the active bank, or in the target bank
};
struct Plan {
  std::vector<Step> steps;          // one per chunk of the index
  std::uint64_t fetch_bytes = 0;    // stored bytes of the chunks to fetch (from `first`)
  std::uint64_t local_bytes = 0;    // image bytes expected to be copied
  std::uint64_t fetch_chunks = 0;
};
// Where each chunk from `first` on is expected: the active bank; else an
// earlier chunk of the target (already written); else the inactive bank at
// or after the chunk's own offset (not yet overwritten); else fetched.
Plan plan(const chunks::Index& index, const LocalChunks& active, const LocalChunks& inactive, std::size_t first = 0);

struct WriteOptions {
  // Resume at a ResumePoint reported before (its frame is the chunk number).
  std::optional<delta::ResumePoint> resume;
  std::uint64_t checkpoint_bytes = std::uint64_t{16} << 20;
  std::function<Status(const delta::ResumePoint&)> on_checkpoint;
  // Payload bytes consumed (index_size + stored bytes up to the chunk), of the payload's size.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  std::function<bool()> cancelled;  // true: stop with kCancelled
};
struct WriteReport {
  std::uint64_t fetched_bytes = 0;  // stored bytes fetched
  std::uint64_t fetched_chunks = 0;
  std::uint64_t local_bytes = 0;    // image bytes copied from a bank
  std::uint64_t local_chunks = 0;
  std::uint64_t stale_sources = 0;  // planned local chunks that failed their check and were fetched
};
// Writes the target through `out` (a BankWriter over `target` at the resume
// offset, or 0), reading fetched chunks from `reader` (positioned after the
// index, by read_index), local ones from `active` and `target`. The caller
// checks the whole target's hash afterwards (the prefix written before a
// resume included).
Result<WriteReport> write_chunks(bundle::BundleReader& reader, const manifest::Payload& p,
                                 const chunks::Index& index, const Plan& plan, const Source& active,
                                 storage::BlockStore& target, storage::BankWriter& out, const WriteOptions& options);

}  // namespace ota::reuse
