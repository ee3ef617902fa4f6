// Internal: reference prediction for executables (docs/formats.md, "Predictor").
//
// When code moves, every rel32 operand that points across the move changes,
// and bsdiff-style deltas pay for each one. The predictor rewrites OLD's rel32
// operands (x86 call/jmp/jcc and rip-relative ModRM) to point where their
// targets landed in NEW, using an address map (OLD interval -> NEW offset) that
// the generator derives from its covers and ships in the patch. COPY and ADD
// then work against the predicted bytes. Generator and patcher run the same
// code, so the prediction is deterministic.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::delta::detail {

inline constexpr std::uint64_t kMaxMapSection = std::uint64_t{64} << 20;  // stored or decoded bytes

// OLD offsets [old_start, old_start + length) live at NEW offset new_start onwards.
struct MapEntry {
  std::uint64_t old_start = 0;
  std::uint64_t length = 0;
  std::int64_t shift = 0;  // new_start - old_start
};

class AddressMap {
 public:
  AddressMap() = default;
  // Builds a map from covers (any order, may overlap): earlier OLD starts win,
  // equal shifts separated by at most `merge_gap` bytes are merged.
  static AddressMap from_covers(std::vector<MapEntry> covers, std::uint64_t merge_gap);
  // Serialized form: count, then per entry gap, length, zigzag(shift delta).
  Bytes encode() const;
  // Parses and validates (sorted, non-overlapping, inside old_size, new offsets >= 0).
  static Result<AddressMap> decode(ByteSpan data, std::uint64_t old_size, std::uint64_t max_entries);
  // NEW offset of OLD offset t, if the map covers t.
  std::optional<std::int64_t> map(std::uint64_t t) const {
    if (t >= end_) return std::nullopt;
    std::size_t i = bucket_[static_cast<std::size_t>(t >> shift_)];
    while (entries_[i].old_start + entries_[i].length <= t) ++i;  // ends at the last entry: t < end_
    if (t < entries_[i].old_start) return std::nullopt;
    return static_cast<std::int64_t>(t) + entries_[i].shift;
  }
  std::size_t size() const { return entries_.size(); }

 private:
  // The lookup table: bucket_[t >> shift_] is the first entry that ends after
  // the bucket's start, so a lookup scans about one entry (2 buckets per entry,
  // at most 16,384 of them: 64 KiB).
  void index();
  std::vector<MapEntry> entries_;
  std::vector<std::uint32_t> bucket_;
  unsigned shift_ = 0;
  std::uint64_t end_ = 0;  // end of the last entry; nothing is mapped from there
};

// Bytes of context a caller must provide around a range: before and after.
inline constexpr std::uint64_t kPredictBefore = 8;
inline constexpr std::uint64_t kPredictAfter = 4;

// Fills out[0, n) with the predicted bytes of OLD[q, q + n) when placed at
// NEW offset q + delta. window holds OLD[window_start, ...) and must cover
// [q - kPredictBefore, q + n + kPredictAfter) clipped to OLD.
//   kX86: rel32 of E8 call, E9 jmp, 0F 8x jcc, and [rip + disp32] operands.
//   kThumb: the 32-bit Thumb-2 BL and B.W at even offsets (ARMv6-M/v7-M).
void predict(Predictor predictor, const AddressMap& map, ByteSpan window, std::uint64_t window_start,
             std::uint64_t old_size, std::uint64_t q, std::size_t n, std::int64_t delta, std::uint8_t* out);

// Tests: scan with the portable (SSE2 or scalar) code even where AVX2 is
// available. The result is the same either way; only the speed differs.
void use_portable_x86_scan(bool portable);

// True when OLD looks like an x86-64 or i386 ELF image.
bool looks_like_x86(ByteSpan old_image);

}  // namespace ota::delta::detail
