// A payload on its way into a bank: the one interface through which an
// install streams bytes, whatever the payload is (docs/design.md, "Install
// data path").
//
// Two implementations: delta::Patcher (a delta against OLD, ota/delta/delta.hpp)
// and the full-image decoder below (zstd frames or stored bytes). Both
//  - take the payload in chunks of any size with feed(), then finish(), which
//    checks that NEW is complete and has the expected BLAKE2b-256;
//  - write NEW strictly sequentially to a Writer, hashing it on the way, with
//    no user-space copy of their own beyond what decoding needs;
//  - report each frame boundary (a point where NEW can be synced and the
//    install resumed) through on_frame, and resume from one: next_offset()
//    names the payload offset they need next, and skip() jumps over bytes the
//    caller will not feed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"

namespace ota::delta {

// Where a payload can be resumed: the start of frame `frame` (checkpoint
// after the Writer has been synced up to new_offset).
struct ResumePoint {
  std::uint64_t frame = 0;
  std::uint64_t patch_offset = 0;  // offset in the payload of the frame's first byte
  std::uint64_t new_offset = 0;    // NEW bytes already written and synced
};

// What both sinks share: resuming and frame boundaries. Progress is the
// caller's: it sees every payload byte it feeds (agent::stream_payload reports
// it), and delta::apply reports NEW bytes written (PatchOptions::progress).
struct SinkOptions {
  // Resume at a frame boundary reported by on_frame (after the caller synced
  // NEW up to it). The payload is fed from its first byte again, or the
  // caller jumps with skip() to next_offset(); bytes before the resume point
  // are never decoded. The Writer must continue at resume->new_offset, and
  // written_prefix must read back the NEW bytes already written (the bank),
  // so the final hash covers all of NEW: a corrupted prefix fails with
  // kNewMismatch (kPayloadMismatch for a full image).
  std::optional<ResumePoint> resume;
  const Source* written_prefix = nullptr;
  // Called at each frame boundary with the position to resume from; the
  // Writer has accepted every NEW byte before it (not yet synced).
  std::function<Status(const ResumePoint&)> on_frame;
};

class PayloadSink {
 public:
  virtual ~PayloadSink() = default;
  // Accepts the next bytes of the payload.
  virtual Status feed(ByteSpan chunk) = 0;
  // Declares the end of the payload: checks completeness, no trailing bytes
  // and NEW's size and hash.
  virtual Status finish() = 0;
  // NEW bytes the Writer accepted so far.
  virtual std::uint64_t new_written() const = 0;
  // The payload offset of the next byte the sink needs (when resuming, the
  // resume offset once what precedes it that the sink must parse is in).
  virtual std::uint64_t next_offset() const = 0;
  // Advances over n payload bytes the caller will not feed; only while
  // resuming, and only up to the resume offset.
  virtual Status skip(std::uint64_t n) = 0;
};

// ---- the full image ----

struct FullImageOptions : SinkOptions {
  std::string name = "payload";  // for messages
  bool zstd = false;             // zstd frames (each frame boundary a checkpoint), else stored bytes
  std::uint8_t window_log = 0;   // with zstd: the decoder window needed, 2^window_log (at least 2^10)
  std::uint64_t target_size = 0;
  Digest target_hash{};
  // Stored bytes are checkpointed every this many bytes.
  std::uint64_t stored_checkpoint = std::uint64_t{16} << 20;
};

// Decodes a full-image payload into `out`. Errors: kDecompress (a corrupt or
// truncated zstd frame), kPayloadMismatch (NEW's size or hash differs from
// target_size / target_hash), kUsage (a resume point beyond the payload).
Result<std::unique_ptr<PayloadSink>> make_full_image_decoder(Writer& out, FullImageOptions options);

}  // namespace ota::delta
