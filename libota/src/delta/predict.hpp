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

#include "ota/delta.hpp"
#include "ota/error.hpp"
#include "ota/io.hpp"

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
  std::optional<std::int64_t> map(std::uint64_t t) const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<MapEntry> entries_;
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

// True when OLD looks like an x86-64 or i386 ELF image.
bool looks_like_x86(ByteSpan old_image);

}  // namespace ota::delta::detail
