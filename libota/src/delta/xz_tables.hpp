// Internal: format version 6, the compression-aware delta (docs/formats.md,
// "Version 6: xz streams"). The patch carries two tables after its header:
// where OLD's xz streams are (so the patcher can expand them on demand), and
// how NEW is laid out from its expanded form: raw bytes, zero padding that
// keeps a stream inside one frame, and xz streams with the settings that
// re-encode them byte for byte.
//
// Expanded images: OLD with each listed stream replaced by its expanded
// bytes; NEW likewise, plus pad bytes (zeros) before a stream that would
// otherwise cross a frame boundary, so every frame boundary of the expanded
// NEW is a point where NEW's real bytes are complete (a resume point).
#pragma once

#include <cstdint>
#include <vector>

#include "delta/codec/xz.hpp"
#include "delta/matcher.hpp"
#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta::detail {

// One piece of an image, in both forms.
struct XzPiece {
  enum Kind : std::uint8_t { kRaw, kPad, kXz } kind = kRaw;
  std::uint64_t real_offset = 0, real_size = 0;  // kPad: real_size 0
  std::uint64_t exp_offset = 0, exp_size = 0;    // kRaw: exp_size == real_size
  codec::XzParams params{};                      // NEW's kXz
};

struct XzTables {
  std::vector<XzPiece> old_pieces;  // raw and xz, covering OLD
  std::vector<XzPiece> new_pieces;  // raw, pad and xz, covering NEW
  std::uint64_t old_streams = 0, new_streams = 0;
  std::uint64_t encoder_memory = 0;  // the largest of NEW's streams' encoder memory
};

// The tables section: varint length, then the tables (bounded by kMaxTables).
inline constexpr std::uint64_t kMaxXzTablesSize = std::uint64_t{64} << 20;

// The pieces of an image with the given streams (ascending, not overlapping);
// for NEW, frame_log places the pad bytes (pad == true).
std::vector<XzPiece> pieces_of(std::uint64_t size, const std::vector<codec::XzStream>& streams, bool pad,
                               std::uint8_t frame_log);
// The expanded size of pieces.
std::uint64_t expanded_size(const std::vector<XzPiece>& pieces);
// The image's expanded bytes (the generator holds both images).
Result<Bytes> expand(ByteSpan image, const std::vector<XzPiece>& pieces);

// The tables section, without its length prefix.
Bytes encode_tables(const XzTables& tables);
// Parses and checks the tables against the header's real and expanded sizes.
Result<XzTables> parse_tables(ByteSpan data, const PatchHeader& header);

// The patcher keeps up to this many bytes of OLD's expanded streams, the
// least recently used going first; the generator keeps the covers of a frame
// within what that holds (xz_locality), so applying decodes each stream of
// OLD a bounded number of times.
inline constexpr std::uint64_t kXzCacheBytes = std::uint64_t{16} << 20;
// A stream that is not in the cache is decoded for a cover only when covers
// still to come in the frame (this one included) copy at least this many
// bytes from it; otherwise the cover becomes literal bytes.
inline constexpr std::uint64_t kXzMissCover = 8 * 1024;

// Streams of OLD the cache holds: kXzCacheBytes over the largest (at least 2).
std::size_t xz_cache_slots(const std::vector<XzPiece>& old_pieces);

// The generator's side of the cache: walks a frame's blocks in order with an
// LRU of `slots` streams starting empty (a frame is encoded independently;
// the patcher's cache, carried over from the previous frame, holds at least
// as much) and turns a cover into literal bytes when it would decode a
// stream that the frame's covers read fewer than kXzMissCover bytes of from
// there on. The reads
// modelled are the patcher's without a predictor: the cover's OLD range, its
// read-ahead stopping at a stream's end. (A predictor also reads 8 bytes
// either side, which may decode a neighbour the cache does not hold.)
void keep_covers_local(const std::vector<XzPiece>& old_pieces, std::size_t slots, std::vector<Block>& blocks);

// The index of the piece that holds expanded offset off.
std::size_t piece_at(const std::vector<XzPiece>& pieces, std::uint64_t off);

// Expanded bytes, read by random access from the real image: raw pieces are
// read through, xz pieces decoded (the last `slots` kept). For OLD, and on
// resume for the NEW prefix already written.
class ExpandedSource final : public Source {
 public:
  // lenient: a stream that does not decode reads as zeros instead of
  // failing (the NEW prefix already written, read back on resume: a damaged
  // prefix must fail the final hash check, "new mismatch", which makes the
  // agent start over, not the resume itself).
  ExpandedSource(const Source& real, const std::vector<XzPiece>& pieces, std::uint64_t size,
                 std::size_t slots = 2, bool lenient = false)
      : real_(real), pieces_(pieces), size_(size), lenient_(lenient), slots_(slots) {}
  std::uint64_t decodes() const { return decodes_; }
  std::uint64_t size() const override { return size_; }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override;
  // A read-ahead stops at the end of the piece (another stream would be decoded).
  std::uint64_t read_ahead_end(std::uint64_t offset) const override;

 private:
  Result<ByteSpan> decoded(std::size_t piece) const;

  const Source& real_;
  const std::vector<XzPiece>& pieces_;
  std::uint64_t size_;
  bool lenient_;
  struct Slot {
    std::size_t piece = SIZE_MAX;
    std::uint64_t used = 0;
    Bytes bytes;
  };
  mutable std::vector<Slot> slots_;
  mutable std::uint64_t tick_ = 0, decodes_ = 0;
  mutable Bytes comp_;
};

// The Writer the inner patcher writes the expanded NEW to: passes raw bytes
// on, drops pad bytes (which must be zeros), gathers each xz piece and writes
// its re-encoding (which must have the table's length), hashing the real NEW
// on the way.
class Recompressor final : public Writer {
 public:
  Recompressor(Writer& out, const std::vector<XzPiece>& pieces) : out_(out), pieces_(pieces) {}
  Status write(ByteSpan data) override;
  std::uint64_t position() const override { return exp_pos_; }

  // Resuming: the real NEW up to real_offset is already written (the pieces
  // before expanded offset exp_offset); the caller hashes it into hasher().
  void resume_at(std::uint64_t exp_offset, std::uint64_t real_offset);
  // Real bytes written, and whether that is the end of a piece (or of a raw
  // stretch): a point where NEW's real bytes are all written.
  std::uint64_t real_written() const { return real_pos_; }
  bool at_boundary() const { return gathered_.empty(); }
  Hasher& hasher() { return hasher_; }
  Digest finish() { return hasher_.finish(); }

 private:
  Status put(ByteSpan real);

  Writer& out_;
  const std::vector<XzPiece>& pieces_;
  std::size_t piece_ = 0;
  std::uint64_t exp_pos_ = 0, real_pos_ = 0;
  Bytes gathered_, encoded_;
  Hasher hasher_;
};

// The real offset of expanded offset exp_offset when it is a piece boundary
// or inside a raw piece; nullopt otherwise.
std::optional<std::uint64_t> real_offset_at(const std::vector<XzPiece>& pieces, std::uint64_t exp_offset);

}  // namespace ota::delta::detail
