// The suffix index over OLD (delta/matcher.hpp): split in parts, each sorted
// on its own thread, it still finds the longest match a search over one
// suffix array finds, except across a part's end, where it extends instead;
// and the cover search over it starts a block only for a match that beats
// the current alignment by more than its threshold.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "delta/matcher.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::detail::build_suffix_index;
using delta::detail::match_range;

// Longest prefix of needle occurring at a position p of old with the whole
// match inside one part [k * part, (k + 1) * part) (a brute-force search).
std::uint64_t longest_within_parts(const Bytes& old_image, ByteSpan needle, std::uint64_t part) {
  const std::uint64_t parts = std::max<std::uint64_t>(1, (old_image.size() + part - 1) / part);
  const std::uint64_t step = (old_image.size() + parts - 1) / parts;
  std::uint64_t best = 0;
  for (std::uint64_t p = 0; p < old_image.size(); ++p) {
    const std::uint64_t end = std::min<std::uint64_t>(old_image.size(), (p / step + 1) * step);
    std::uint64_t l = 0;
    while (l < needle.size() && p + l < end && old_image[p + l] == needle[l]) ++l;
    best = std::max(best, l);
  }
  return best;
}

TEST(SuffixIndex, PartsFindTheLongestMatch) {
  std::mt19937_64 rng(11);
  const Bytes old_image = test::structured_bytes(6000, 12);
  const Bytes edited = test::with_random_edits(old_image, 80, 13);
  for (std::uint64_t part : {std::uint64_t{6000}, std::uint64_t{2500}, std::uint64_t{1000}, std::uint64_t{333}}) {
    for (unsigned threads : {1u, 3u}) {
      auto index = build_suffix_index(old_image, threads, part);
      for (int trial = 0; trial < 400; ++trial) {
        const std::size_t at = static_cast<std::size_t>(rng() % edited.size());
        const std::size_t len = static_cast<std::size_t>(1 + rng() % std::min<std::size_t>(300, edited.size() - at));
        const ByteSpan needle(edited.data() + at, len);
        std::uint64_t pos = 0;
        const std::uint64_t got = index->longest_match(needle, pos);
        ASSERT_LE(pos + got, old_image.size());
        ASSERT_TRUE(std::equal(needle.begin(), needle.begin() + static_cast<std::ptrdiff_t>(got),
                               old_image.begin() + static_cast<std::ptrdiff_t>(pos)))
            << "not a match: part " << part << " at " << at;
        ASSERT_GE(got, longest_within_parts(old_image, needle, part)) << "part " << part << " at " << at;
      }
    }
  }
}

TEST(SuffixIndex, AMatchRunsOnAcrossAPartEnd) {
  // OLD is one random run; NEW's needle starts before the end of part 0 and
  // continues into part 1: the match is found whole.
  const Bytes old_image = test::random_bytes(4000, 21);
  auto index = build_suffix_index(old_image, 2, 2000);
  const ByteSpan needle(old_image.data() + 1900, 600);
  std::uint64_t pos = 0;
  EXPECT_EQ(index->longest_match(needle, pos), 600u);
  EXPECT_EQ(pos, 1900u);
}

TEST(SuffixIndex, EmptyAndTinyInputs) {
  const Bytes empty;
  auto none = build_suffix_index(empty, 2, 16);
  std::uint64_t pos = 7;
  const Bytes needle = {1, 2, 3};
  EXPECT_EQ(none->longest_match(needle, pos), 0u);
  const Bytes one = {2};
  auto tiny = build_suffix_index(one, 2, 1);
  EXPECT_EQ(tiny->longest_match(ByteSpan(one), pos), 1u);
  EXPECT_EQ(pos, 0u);
}

// NEW is OLD with 12 bytes in the middle taken from elsewhere in OLD. A
// 12-byte exact match beats the current alignment (which explains none of
// it) by more than 8 bytes but not by 16: the short threshold starts a block
// there and another back on the diagonal, the long one keeps one cover
// through it. Either way the blocks tile NEW exactly.
TEST(CoverSearch, TheThresholdDecidesWhenAShortMatchStartsABlock) {
  const Bytes old_image = test::random_bytes(4096, 31);
  Bytes new_image = old_image;
  std::copy(old_image.begin() + 3000, old_image.begin() + 3012, new_image.begin() + 1000);
  auto index = build_suffix_index(old_image, 1);
  auto blocks_with = [&](std::int64_t threshold) {
    std::vector<delta::detail::Block> out;
    match_range(*index, old_image, new_image, 0, new_image.size(), out, threshold);
    std::uint64_t at = 0;
    for (const auto& b : out) {
      EXPECT_EQ(b.new_pos, at);
      at += b.add_len + b.insert_len;
    }
    EXPECT_EQ(at, new_image.size()) << "threshold " << threshold;
    return out;
  };
  const auto short_blocks = blocks_with(delta::detail::kCoverThreshold);
  const auto long_blocks = blocks_with(delta::detail::kCoverThresholdLong);
  ASSERT_EQ(long_blocks.size(), 1u);
  EXPECT_EQ(long_blocks[0].old_pos, 0u);
  ASSERT_GE(short_blocks.size(), 2u);
  EXPECT_TRUE(std::any_of(short_blocks.begin(), short_blocks.end(),
                          [](const auto& b) { return b.old_pos == 3000 && b.add_len >= 12; }));
}

}  // namespace
}  // namespace ota
