// The chunk index of a `chunks` payload (docs/formats.md, "Chunk index"):
// the target image cut into content-defined chunks, so that a device with no
// matching delta base finds the parts of the new image it already holds (in
// either bank) and fetches only the rest.
//
// Contract:
// - cut_chunks() is a pure, deterministic function of the bytes and the
//   parameters (a gear rolling hash, FastCDC-style): the builder cuts the
//   target with it, the device cuts its banks with the same parameters (taken
//   from the signed index), so equal content far from an edit yields equal
//   chunks wherever it lies.
// - encode_index() and parse_index() are inverse; parse_index() is strict and
//   bounded (every count, length and sum checked before anything is
//   allocated from it), and is only ever called on bytes whose hash matched
//   the signed manifest.
#pragma once

#include <cstdint>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"

namespace ota::chunks {

inline constexpr std::uint8_t kIndexVersion = 1;
inline constexpr std::size_t kIndexHeaderBytes = 32;
inline constexpr std::size_t kIndexEntryBytes = 73;
// Bounds on what an index may declare (a device allocates from them).
inline constexpr std::uint32_t kMaxChunkBytes = 1u << 20;
inline constexpr std::uint32_t kMinChunkBytes = 64;
inline constexpr std::uint32_t kMaxIndexEntries = 1u << 20;  // an index of at most ~73 MiB

// Content-defined chunking parameters: a boundary is declared after at least
// min_size bytes where the gear hash has its low avg_bits bits zero, and at
// max_size bytes at the latest. Average chunk ~ min_size + 2^avg_bits.
struct Params {
  std::uint32_t min_size = 16 * 1024;
  std::uint8_t avg_bits = 15;
  std::uint32_t max_size = 256 * 1024;
};
// kUsage unless kMinChunkBytes <= min_size <= 2^avg_bits... (see formats.md):
// 64 <= min_size <= max_size <= 1 MiB and 6 <= avg_bits <= 20.
Status check_params(const Params& p);

// The length of the chunk that starts at data[0]: data.size() when it holds
// no more than min_size bytes, else at most max_size.
std::size_t next_cut(ByteSpan data, const Params& p);

// Every chunk boundary of a stream, fed in pieces of any size: calls
// on_chunk(offset, length) for each chunk in order (the last one on finish()).
// Buffers at most max_size bytes.
class Chunker {
 public:
  explicit Chunker(Params p) : p_(p) {}
  // The callback gets each complete chunk's bytes and its offset.
  template <class F>
  Status feed(ByteSpan data, F&& on_chunk) {
    buf_.insert(buf_.end(), data.begin(), data.end());
    std::size_t at = 0;
    while (buf_.size() - at >= p_.max_size) {
      const std::size_t n = next_cut(ByteSpan(buf_).subspan(at), p_);
      OTA_TRY(on_chunk(offset_, ByteSpan(buf_).subspan(at, n)));
      offset_ += n;
      at += n;
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(at));
    return ok();
  }
  template <class F>
  Status finish(F&& on_chunk) {
    std::size_t at = 0;
    while (at < buf_.size()) {
      const std::size_t n = next_cut(ByteSpan(buf_).subspan(at), p_);
      OTA_TRY(on_chunk(offset_, ByteSpan(buf_).subspan(at, n)));
      offset_ += n;
      at += n;
    }
    buf_.clear();
    return ok();
  }

 private:
  Params p_;
  Bytes buf_;
  std::uint64_t offset_ = 0;
};

// How a chunk is stored in the payload.
enum class Mode : std::uint8_t { kRaw = 0, kZstd = 1 };

struct Entry {
  std::uint32_t plain_size = 0;   // bytes of the image
  std::uint32_t stored_size = 0;  // bytes in the payload (== plain_size when raw, < it when zstd)
  Mode mode = Mode::kRaw;
  Digest plain_hash{};            // BLAKE2b-256 of the image bytes
  Digest stored_hash{};           // BLAKE2b-256 of the stored bytes (checked before decoding)
};

struct Index {
  Params params;
  std::uint64_t target_size = 0;  // sum of plain_size
  std::vector<Entry> entries;     // in target order; stored back to back after the index

  // Bytes of the encoded index (header + entries).
  std::uint64_t encoded_size() const { return kIndexHeaderBytes + kIndexEntryBytes * entries.size(); }
  // Sum of stored_size: the payload is encoded_size() + stored_total() bytes.
  std::uint64_t stored_total() const;
};

Bytes encode_index(const Index& index);
// kMalformed on any violation of docs/formats.md ("Chunk index"): magic,
// version (kUnsupported for a later one), reserved bytes, parameters,
// counts, each entry's sizes and mode, the plain sizes summing to target_size.
Result<Index> parse_index(ByteSpan bytes);

}  // namespace ota::chunks
