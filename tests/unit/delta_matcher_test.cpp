// The suffix index over OLD (delta/matcher.hpp): split in parts, each sorted
// on its own thread, it still finds the longest match a search over one
// suffix array finds, except across a part's end, where it extends instead.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "delta/matcher.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::detail::build_suffix_index;

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

}  // namespace
}  // namespace ota
