// Internal: the suffix index over OLD and the bsdiff-style cover search that
// both patch formats (ota's own and BSDIFF40) are generated from.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ota/core/io.hpp"

namespace ota::delta::detail {

// One step of a delta: NEW[new_pos, +add_len) = OLD[old_pos, +add_len) + diff,
// then NEW[new_pos + add_len, +insert_len) carried literally.
struct Block {
  std::uint64_t new_pos = 0;
  std::uint64_t old_pos = 0;
  std::uint64_t add_len = 0;
  std::uint64_t insert_len = 0;
};

// Suffix arrays over OLD (libdivsufsort), one per part of at most 80 MiB built
// on up to `threads` threads, each with a two-byte bucket table that narrows a
// longest-match search before the binary search starts.
class SuffixIndex {
 public:
  virtual ~SuffixIndex() = default;
  // Longest prefix of needle occurring in OLD: sets pos, returns the length.
  virtual std::uint64_t longest_match(ByteSpan needle, std::uint64_t& pos) const = 0;
};

// Parts of 80 MiB: a 150 MB image is sorted as two halves on two cores, at
// the cost of a second binary search per lookup (docs/design.md).
inline constexpr std::uint64_t kSuffixPartSize = std::uint64_t{80} << 20;

std::unique_ptr<SuffixIndex> build_suffix_index(ByteSpan old_image, unsigned threads = 1,
                                                std::uint64_t part_size = kSuffixPartSize);

// How many more bytes than the current alignment explains a new exact match
// must have before a new block starts: bsdiff's 8, and a longer one that
// leaves fewer, longer blocks (more literal bytes) where much has changed.
// Which pays depends on the data (docs/design.md): the generator tries both.
inline constexpr std::int64_t kCoverThreshold = 8;
inline constexpr std::int64_t kCoverThresholdLong = 16;

// Scans NEW[begin, end) against OLD and appends blocks that exactly tile it.
// Independent of other ranges, so ranges can be matched in parallel.
void match_range(const SuffixIndex& index, ByteSpan old_image, ByteSpan new_image,
                 std::uint64_t begin, std::uint64_t end, std::vector<Block>& out,
                 std::int64_t threshold = kCoverThreshold);

}  // namespace ota::delta::detail
