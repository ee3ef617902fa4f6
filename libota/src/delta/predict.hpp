// Internal: reference prediction for executables (docs/formats.md, "Predictor").
//
// When code moves, every relative reference that points across the move
// changes, and bsdiff-style deltas pay for each one. The predictor rewrites
// OLD's references (x86 rel32 operands, Thumb-2 BL/B.W, AArch64 BL and
// ADRP pairs) to point where their targets landed in NEW, using an address map
// (OLD interval -> NEW offset) that the generator derives from its covers and
// ships in the patch. COPY and ADD then work against the predicted bytes.
// Generator and patcher run the same code, so the prediction is deterministic.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::delta::detail {

struct ElfTables;

inline constexpr std::uint64_t kMaxMapSection = std::uint64_t{64} << 20;  // stored or decoded bytes
inline constexpr std::uint64_t kMaxMappedOffset = std::uint64_t{1} << 62;  // no entry maps past it

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
  // Parses and validates (sorted, non-overlapping, inside old_size, new offsets
  // in [0, kMaxMappedOffset]).
  static Result<AddressMap> decode(ByteSpan data, std::uint64_t old_size, std::uint64_t max_entries);
  // NEW offset of OLD offset t, if the map covers t.
  std::optional<std::int64_t> map(std::uint64_t t) const {
    if (t >= end_) return std::nullopt;
    std::size_t i = bucket_[static_cast<std::size_t>(t >> shift_)];
    while (entries_[i].old_start + entries_[i].length <= t) ++i;  // ends at the last entry: t < end_
    if (t < entries_[i].old_start) return std::nullopt;
    return static_cast<std::int64_t>(t) + entries_[i].shift;
  }
  // NEW offset of t >= old_size (arm64: zero-initialised data after the end
  // of OLD): t + the last entry's shift, if the last entry ends at old_size.
  std::optional<std::int64_t> map_past_end(std::uint64_t t, std::uint64_t old_size) const {
    if (entries_.empty() || end_ != old_size || t < old_size) return std::nullopt;
    return static_cast<std::int64_t>(t) + entries_.back().shift;
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

// Bytes of context a caller must provide around a range: before and after
// (x86: the opcode bytes before a rel32 and its 4 bytes; arm64: the ADRP
// before the word that pairs with it, and the word after an ADRP).
inline constexpr std::uint64_t kPredictBefore = 8;
inline constexpr std::uint64_t kPredictAfter = 8;

// Fills out[0, n) with the predicted bytes of OLD[q, q + n) when placed at
// NEW offset q + delta. window holds OLD[window_start, ...) and must cover
// [q - kPredictBefore, q + n + kPredictAfter) clipped to OLD.
//   kX86: rel32 of E8 call, E9 jmp, 0F 8x jcc, and [rip + disp32] operands.
//   kThumb: the 32-bit Thumb-2 BL and B.W at even offsets (ARMv6-M/v7-M).
//   kArm64: at 4-aligned offsets, BL, and an ADRP with the ADD/LDR/STR right
//           after it that adds the low 12 bits of the same address.
// With `elf` (format version 5), the fields of OLD's ELF tables are then
// re-pointed too (elf_tables.hpp), over what the instruction scan wrote.
void predict(Predictor predictor, const AddressMap& map, ByteSpan window, std::uint64_t window_start,
             std::uint64_t old_size, std::uint64_t q, std::size_t n, std::int64_t delta, std::uint8_t* out,
             const ElfTables* elf = nullptr);

// Tests: scan with the portable (SSE2 or scalar) code even where AVX2 is
// available. The result is the same either way; only the speed differs.
void use_portable_x86_scan(bool portable);

// True when OLD looks like an x86-64 or i386 ELF image.
bool looks_like_x86(ByteSpan old_image);

// True when OLD looks like an AArch64 ELF image (e_machine 183).
bool looks_like_arm64(ByteSpan old_image);

// An ELF image inside a larger image (a file in a root filesystem): its bytes
// [offset, offset + size) and the predictor of its machine.
struct EmbeddedElf {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  Predictor predictor = Predictor::kNone;
};

// The x86 (x86-64, i386) and AArch64 ELF images that start at 512-byte aligned
// offsets of `image` (where a filesystem puts a file's first block), in order,
// not overlapping. A header is taken when its class and byte order are valid and
// its program and section header tables lie inside `image`; its size is the end
// of the last of these tables and of the segments' file bytes. Only headers are
// read, all bounds-checked: any bytes give a valid answer.
std::vector<EmbeddedElf> find_embedded_elf(ByteSpan image);

// Keeps the parts of `covers` whose OLD bytes lie inside `regions` (sorted,
// not overlapping), cut at the regions' ends: the map of an image that holds
// executables among other files need not pay for the other files' covers.
void keep_covers_inside(const std::vector<EmbeddedElf>& regions, std::vector<MapEntry>& covers);

// For the arm64 map: ADRP pairs also address zero-initialised data (.bss),
// which has no bytes in the file. Where OLD and NEW are both AArch64 ELF
// images whose loadable segments run past their file bytes (p_memsz >
// p_filesz), in the same number, the file offsets of OLD's zero-filled memory
// ([p_offset + p_filesz, p_offset + p_memsz), cut at OLD's end; OLD's last
// byte when it starts past it) replace any covers there, mapped with the shift
// between the two segments' ends of file bytes. Anything else: covers unchanged.
void map_zero_filled(ByteSpan old_image, ByteSpan new_image, std::vector<MapEntry>& covers);

}  // namespace ota::delta::detail
