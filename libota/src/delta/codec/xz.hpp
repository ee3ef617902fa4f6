// Internal: whole compressed streams inside images (a squashfs' xz, zstd or
// gzip blocks, a kernel's or an initramfs' .xz), for the compression-aware
// delta (format version 6, docs/formats.md "Version 6: xz streams"): .xz
// streams, zstd frames and zlib streams. The generator finds the streams and the encoder settings
// that make each again byte for byte; the patcher expands OLD's streams and
// re-encodes NEW's with those settings. The only other files that include
// <lzma.h> and <zstd.h> are codec/lzma.cpp and codec/zstd.cpp; no other
// includes <zlib.h>.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::codec {

// How one xz stream was made: liblzma's one-shot buffer encoder (what
// mksquashfs uses, sizes in the block header) or its streaming encoder (what
// xz(1) writes single-threaded), a preset with the dictionary from the
// stream's block header, optionally after one BCJ filter.
enum class StreamCodec : std::uint8_t { kXz = 0, kZstd = 1, kZlib = 2 };

struct XzParams {
  StreamCodec codec = StreamCodec::kXz;
  std::uint8_t preset = 6;        // xz: 0..9; zstd: the level, 1..22 (ZSTD_compressCCtx, as mksquashfs);
                                  // zlib: the level, 1..9 (deflateInit2, as mksquashfs -comp gzip)
  bool extreme = false;           // LZMA_PRESET_EXTREME
  std::uint8_t check = 1;         // lzma_check: 0 none, 1 CRC32, 4 CRC64, 10 SHA-256
  std::uint32_t dict_size = 1u << 17;
  std::uint8_t bcj = 0;           // 0, or a BCJ filter's .xz id (4 x86 .. 10 arm64)
  bool stream_encoder = false;    // xz(1)'s streaming encoder, else the buffer encoder
  std::uint8_t zlib_strategy = 0;   // zlib: Z_DEFAULT_STRATEGY .. Z_FIXED (0..4)
  std::uint8_t zlib_mem_level = 8;  // zlib: 1..9
  std::uint8_t zlib_window = 15;    // zlib: windowBits 9..15

  bool operator==(const XzParams&) const = default;
};

inline constexpr std::uint32_t kXzMinDict = 4096;
inline constexpr std::uint32_t kXzMaxDict = std::uint32_t{64} << 20;

// params are well formed (a known check and filter, dictionary in range).
bool xz_params_valid(const XzParams& params);

// The memory the encoder needs for params and an input of input_size bytes.
std::uint64_t xz_encoder_memory(const XzParams& params, std::uint64_t input_size);

// Encodes in as one .xz stream into out; returns the bytes written, or
// kLimitExceeded when the stream does not fit out.
Result<std::size_t> xz_encode(ByteSpan in, const XzParams& params, MutableByteSpan out);

// Decodes the single stream that is exactly `in` into exactly `out`
// (kDecompress when it is corrupt, longer, shorter or followed by anything).
Status xz_decode(ByteSpan in, MutableByteSpan out, StreamCodec codec = StreamCodec::kXz);

struct XzStream {
  StreamCodec codec = StreamCodec::kXz;
  std::uint64_t offset = 0;
  std::uint64_t comp_size = 0;
  std::uint64_t exp_size = 0;
  std::optional<XzParams> params;  // with find_params: settings that re-encode it exactly
};

// The .xz streams in image, front to back and not overlapping, that decode
// cleanly to 1..max_expanded bytes. With find_params, each that liblzma
// re-encodes byte for byte gets its settings (found by trying presets, first
// those that made the image's earlier streams); the others have none.
std::vector<XzStream> find_xz_streams(ByteSpan image, std::uint64_t max_expanded, bool find_params);

}  // namespace ota::codec
