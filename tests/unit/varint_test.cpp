// libota/src/core/varint.hpp (internal): strict ULEB128 and zigzag.
// The patch format depends on these being canonical: one value, one encoding.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "core/varint.hpp"
#include "support/random.hpp"

namespace ota::detail {
namespace {

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

Bytes encode(std::uint64_t v) {
  Bytes out;
  put_varint(out, v);
  return out;
}

struct Decoded {
  VarintStatus status;
  std::uint64_t value = 0;
  std::size_t used = 0;
};

Decoded decode(const Bytes& b) {
  Decoded d{VarintStatus::kOk};
  d.status = get_varint(b, d.value, d.used);
  return d;
}

TEST(Varint, CanonicalEncodings) {
  struct Case {
    std::uint64_t value;
    Bytes bytes;
  };
  const std::vector<Case> cases = {
      {0, {0x00}},
      {1, {0x01}},
      {127, {0x7f}},
      {128, {0x80, 0x01}},
      {300, {0xac, 0x02}},
      {16383, {0xff, 0x7f}},
      {16384, {0x80, 0x80, 0x01}},
      {std::uint64_t{1} << 32, {0x80, 0x80, 0x80, 0x80, 0x10}},
      {std::uint64_t{1} << 62, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}},
      {std::uint64_t{1} << 63, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
      {kMax64, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(encode(c.value), c.bytes) << c.value;
    Decoded d = decode(c.bytes);
    EXPECT_EQ(d.status, VarintStatus::kOk) << c.value;
    EXPECT_EQ(d.value, c.value);
    EXPECT_EQ(d.used, c.bytes.size());
  }
}

TEST(Varint, DecodeStopsAfterTheVarint) {
  Bytes b = {0xac, 0x02, 0xff, 0xff};
  Decoded d = decode(b);
  EXPECT_EQ(d.status, VarintStatus::kOk);
  EXPECT_EQ(d.value, 300u);
  EXPECT_EQ(d.used, 2u);
}

TEST(Varint, RoundTripRandomValuesOfEveryWidth) {
  test::Rng rng(1);
  for (int bits = 0; bits <= 64; ++bits) {
    for (int k = 0; k < 50; ++k) {
      std::uint64_t v = bits == 0 ? 0 : rng.next() >> (64 - bits);
      Bytes b = encode(v);
      EXPECT_LE(b.size(), kMaxVarintSize);
      Decoded d = decode(b);
      ASSERT_EQ(d.status, VarintStatus::kOk) << v;
      ASSERT_EQ(d.value, v);
      ASSERT_EQ(d.used, b.size());
    }
  }
}

TEST(Varint, IncompleteIsNeedMore) {
  for (const Bytes& b : std::vector<Bytes>{{}, {0x80}, {0xff, 0xff}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}}) {
    EXPECT_EQ(decode(b).status, VarintStatus::kNeedMore) << b.size();
  }
  // Every proper prefix of a multi-byte varint needs more.
  Bytes max = encode(kMax64);
  for (std::size_t n = 0; n < max.size(); ++n)
    EXPECT_EQ(decode(Bytes(max.begin(), max.begin() + static_cast<std::ptrdiff_t>(n))).status,
              VarintStatus::kNeedMore)
        << n;
}

TEST(Varint, OverlongIsInvalid) {
  const std::vector<Bytes> overlong = {
      {0x80, 0x00},                    // 0 in two bytes
      {0x81, 0x00},                    // 1 in two bytes
      {0xff, 0x80, 0x00},              // 127 in three bytes
      {0xac, 0x82, 0x00},              // 300 with a trailing zero group
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00},
  };
  for (const auto& b : overlong) EXPECT_EQ(decode(b).status, VarintStatus::kInvalid) << b.size();
}

TEST(Varint, OverSixtyFourBitsIsInvalid) {
  const std::vector<Bytes> too_big = {
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},  // 2^64 + ...
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02},  // 2^64
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f},
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00},  // an 11th byte
      {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},        // 10 continuation bytes
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
  };
  for (const auto& b : too_big) EXPECT_EQ(decode(b).status, VarintStatus::kInvalid) << b.size();
}

TEST(Varint, InvalidIsDetectedWithoutReadingFurther) {
  // A 10-byte prefix that can only continue past 64 bits is already invalid.
  Bytes b = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x82};
  EXPECT_EQ(decode(b).status, VarintStatus::kInvalid);
}

TEST(Zigzag, KnownValues) {
  EXPECT_EQ(zigzag(0), 0u);
  EXPECT_EQ(zigzag(-1), 1u);
  EXPECT_EQ(zigzag(1), 2u);
  EXPECT_EQ(zigzag(-2), 3u);
  EXPECT_EQ(zigzag(2), 4u);
  EXPECT_EQ(zigzag(-13), 25u);
  EXPECT_EQ(zigzag(std::numeric_limits<std::int64_t>::max()), kMax64 - 1);
  EXPECT_EQ(zigzag(std::numeric_limits<std::int64_t>::min()), kMax64);
}

TEST(Zigzag, RoundTrip) {
  test::Rng rng(2);
  for (int i = 0; i < 10000; ++i) {
    auto v = static_cast<std::int64_t>(rng.next() >> (1 + rng.below(63)));  // < 2^63, so -v is defined
    if (i & 1) v = -v;
    ASSERT_EQ(unzigzag(zigzag(v)), v);
  }
  for (std::int64_t v : {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(),
                         std::int64_t{0}, std::int64_t{-1}})
    EXPECT_EQ(unzigzag(zigzag(v)), v);
  for (std::uint64_t u : {std::uint64_t{0}, std::uint64_t{1}, kMax64, kMax64 - 1})
    EXPECT_EQ(zigzag(unzigzag(u)), u);
}

}  // namespace
}  // namespace ota::detail
