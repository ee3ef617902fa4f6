// Internal: the one wrapper around liblzma, for patch frames of compression
// kLzma / kLzmaOld (docs/formats.md, "Compression"). A frame is one raw LZMA2
// stream (no .xz container, no checksum: the patch hashes NEW), ended by
// LZMA2's end marker; its dictionary is 2^dict_log bytes, declared in the
// patch header, which bounds the decoder's memory. No other file includes
// <lzma.h>.
#pragma once

#include <cstdint>
#include <memory>

#include "delta/codec/decoder.hpp"
#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::codec {

inline constexpr int kLzmaMinDictLog = 12;  // LZMA2's smallest dictionary is 4 KiB

struct LzmaParams {
  int preset = 9;        // 0..9
  bool extreme = true;   // LZMA_PRESET_EXTREME
  int dict_log = 17;     // dictionary 2^dict_log bytes (kLzmaMinDictLog..30)
};

// Compresses in into one raw LZMA2 stream. With a prefix, the stream starts
// with it as its dictionary (a preset dictionary: the decoder needs the same
// bytes and a dictionary at least as large as prefix + in to reach all of it).
// Deterministic for one liblzma version.
Result<Bytes> lzma_compress(ByteSpan in, const LzmaParams& params, ByteSpan prefix = {});

// Streaming decoder of one raw LZMA2 stream at a time, with a dictionary of
// 2^dict_log bytes (plus liblzma's ~30 KiB of state). A prefix given to
// reset() is copied into the dictionary (the last 2^dict_log bytes of it).
class LzmaDecoder : public FrameDecoder {
 public:
  static Result<std::unique_ptr<LzmaDecoder>> create(int dict_log);
};

}  // namespace ota::codec
