// Internal: the one wrapper around libzstd (compression for patch frames and,
// later, bundle payloads). No other file includes <zstd.h>.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "delta/codec/decoder.hpp"
#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::codec {

struct ZstdParams {
  int level = 19;
  int window_log = 20;
};

// Compresses in into one zstd frame (content size recorded, no checksum);
// with a prefix, matches may reach into it (the decoder needs the same prefix).
Result<Bytes> zstd_compress(ByteSpan in, const ZstdParams& params, ByteSpan prefix = {});

// The same, ending a zstd block at each offset of flush_at (ascending, inside
// in): the parts between them get their own entropy tables. The output is
// still one frame that any zstd decoder reads.
Result<Bytes> zstd_compress_parts(ByteSpan in, std::span<const std::size_t> flush_at, const ZstdParams& params,
                                  ByteSpan prefix = {});

// Streams in to out as zstd frames of frame_size input bytes each (the last
// one shorter; 0: a single frame), content size recorded when known.
// Independent frames let a device checkpoint at a frame boundary and resume.
// With workers >= 1 the output depends only on level and window, never on the
// worker count (zstd's multi-threaded mode is deterministic across counts), so
// callers pass max(1, threads) to stay reproducible on any machine.
struct StreamParams {
  int level = 9;
  int window_log = 21;
  int workers = 1;
  std::uint64_t pledged_size = ~0ull;  // ~0: unknown
  std::uint64_t frame_size = 0;        // input bytes per frame; 0: one frame
};
Result<std::uint64_t> zstd_compress_stream(Reader& in, Writer& out, const StreamParams& params,
                                           const std::function<void(std::uint64_t)>& progress = {});

// Decompresses one whole zstd frame that declares its content size (at most max_size).
Result<Bytes> zstd_decompress(ByteSpan in, std::size_t max_size);

// Streaming decoder of one zstd frame at a time; the caller owns both buffers.
class ZstdDecoder : public FrameDecoder {
 public:
  static Result<std::unique_ptr<ZstdDecoder>> create(int max_window_log);
};

}  // namespace ota::codec
