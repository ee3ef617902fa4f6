// Internal: the reference tables of an ELF executable that the predictor
// re-points with format version 5 (docs/formats.md, "ELF tables").
//
// Instructions are not the only references that change when code moves. An
// ELF executable also holds tables of addresses, and on node a patch release
// changes more bytes there than in the code:
//   - .eh_frame_hdr: the sorted search table of (function start, FDE) pairs,
//     each a 4-byte offset from the start of .eh_frame_hdr;
//   - .eh_frame: each FDE's first field, the function it describes, as a
//     4-byte offset from the field itself (pcrel|sdata4);
//   - the data sections (.rodata, .data.rel.ro, .data, .got, .dynsym, ...):
//     8-byte absolute pointers into the image, in a non-PIE executable;
//   - x86-64 code: the 32-bit absolute addresses that non-PIE code loads
//     with `mov r32, imm32` and `push imm32`.
// All of it is found from OLD alone, so generator and patcher agree without
// anything in the patch. Only headers and the .eh_frame record chain are
// read; every field is bounds-checked, any bytes give a valid (maybe empty)
// answer. ELF64 little-endian only.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "ota/core/error.hpp"
#include "delta/matcher.hpp"
#include "ota/core/io.hpp"

namespace ota::delta::detail {

class AddressMap;

inline constexpr std::uint64_t kMaxEhFrame = std::uint64_t{64} << 20;  // larger: no FDE sites (bitmap <= 2 MiB)
inline constexpr std::size_t kMaxElfSegments = 64;
inline constexpr std::size_t kMaxRanges = 256;  // pointer ranges, code ranges

struct ElfTables {
  // PT_LOAD segments with file bytes, in program header order.
  struct Segment {
    std::uint64_t offset = 0, vaddr = 0, filesz = 0;
  };
  std::vector<Segment> segments;
  // .eh_frame_hdr: its file offset, and its table of 4-byte fields
  // [table_begin, table_end) (two per entry), relative to its start.
  std::uint64_t hdr_offset = 0, table_begin = 0, table_end = 0;
  // .eh_frame [eh_begin, eh_end): bit k of fde_sites is set when
  // eh_begin + (k << fde_shift) holds an FDE's pcrel|sdata4 initial location
  // (fde_shift 3 when every one is 8-aligned from eh_begin, else 2).
  std::uint64_t eh_begin = 0, eh_end = 0;
  unsigned fde_shift = 2;
  std::vector<std::uint64_t> fde_sites;
  // File ranges [first, second), sorted and disjoint, whose 8-aligned 8-byte
  // words are taken as pointers when they point into a segment's file bytes.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> pointer_ranges;
  // x86-64 (e_machine 62) ET_EXEC only: the executable sections' file ranges (sorted,
  // disjoint), whose `mov r32, imm32` (B8..BF) and `push imm32` (68)
  // immediates are taken as 32-bit absolute addresses (PIE code and shared
  // objects, ET_DYN, have none).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> code_ranges;

  bool empty() const {
    return table_end == table_begin && fde_sites.empty() && pointer_ranges.empty() && code_ranges.empty();
  }
  // The file offset of a virtual address inside a segment's file bytes.
  std::optional<std::uint64_t> to_offset(std::uint64_t vaddr) const;
  // vaddr - offset of the segment holding file offset `offset`.
  std::optional<std::int64_t> bias(std::uint64_t offset) const;
  bool fde_site(std::uint64_t offset) const {
    if (offset < eh_begin || offset >= eh_end || ((offset - eh_begin) & ((1u << fde_shift) - 1))) return false;
    const std::uint64_t k = (offset - eh_begin) >> fde_shift;
    return (fde_sites[k >> 6] >> (k & 63)) & 1;
  }
};

// Reads OLD's tables. Errors only when reading `old` fails; an image that is
// not ELF64 little-endian, or whose tables are not in the forms above, gives
// empty tables.
Result<ElfTables> read_elf_tables(const Source& old);

// Writes, over out[0, n) (the prediction of OLD[q, q + n) placed at NEW
// offset q + delta), the re-pointed values of the table fields that overlap
// it. window holds OLD[window_start, ...) and covers [q - 8, q + n + 8)
// clipped to OLD.
void predict_elf_tables(const ElfTables& tables, const AddressMap& map, ByteSpan window,
                        std::uint64_t window_start, std::uint64_t old_size, std::uint64_t q, std::size_t n,
                        std::int64_t delta, std::uint8_t* out);

// The blocks that tile NEW's .eh_frame_hdr table [new_tables.table_begin,
// table_end), each entry of it taken from the entry of OLD's table whose
// predicted function start equals it (runs of them as one block), or
// inserted. The matcher, which compares OLD's raw bytes, finds little there:
// every entry changes when the code before its function moves.
std::vector<Block> align_eh_frame_hdr(const ElfTables& old_tables, const ElfTables& new_tables,
                                      const AddressMap& map, ByteSpan old_image, ByteSpan new_image);

// Replaces the part of `blocks` (tiling one range of NEW, a frame) that
// `replacement` (tiling another range) covers by the replacement's part
// inside the frame. Blocks cut at its ends are shortened.
void splice_blocks(std::vector<Block>& blocks, const std::vector<Block>& replacement);

}  // namespace ota::delta::detail
