// ota/core/hash.hpp: BLAKE2b-256 exactly as `b2sum -l 256` computes it.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

ByteSpan as_bytes(std::string_view s) { return ByteSpan(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

std::string hex_of(ByteSpan data) { return to_hex(content_hash(data)); }

// Known answers, each produced with `printf ... | b2sum -l 256` (coreutils).
TEST(Blake2b256, KnownAnswers) {
  EXPECT_EQ(hex_of({}), "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  EXPECT_EQ(hex_of(as_bytes("abc")), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  EXPECT_EQ(hex_of(as_bytes("The quick brown fox jumps over the lazy dog")),
            "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9");
}

TEST(Blake2b256, KnownAnswersLongInputs) {
  // python3 -c "...bytes(i % 256 for i in range(1000000))" | b2sum -l 256
  Bytes ramp(1'000'000);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(hex_of(ramp), "fa1130d8ba8a4c5a0e6f4f4cd2d1380cb9222abdf62070f8021b34ddd724921b");
  // One million 'a'.
  Bytes a(1'000'000, 'a');
  EXPECT_EQ(hex_of(a), "0741850f36cba4259628355d1073e24ddb9ca0e1bfac36fd39ae5dc2101e23a4");
}

TEST(Blake2b256, IsNotTruncatedBlake2b512) {
  // BLAKE2b-256 is its own parameterisation (digest length is hashed in), not a
  // prefix of BLAKE2b-512: the first bytes of b2sum (512) of "" are 786a02f7...
  EXPECT_NE(hex_of({}).substr(0, 8), "786a02f7");
}

TEST(Hasher, IncrementalEqualsOneShotAtEverySplit) {
  Bytes data = test::random_bytes(300, 1);
  const Digest whole = content_hash(data);
  for (std::size_t split = 0; split <= data.size(); ++split) {
    Hasher h;
    h.update(ByteSpan(data).first(split));
    h.update(ByteSpan(data).subspan(split));
    ASSERT_EQ(h.finish(), whole) << "split at " << split;
  }
}

TEST(Hasher, IncrementalEqualsOneShotForRandomChunking) {
  Bytes data = test::random_bytes(1'000'000, 2);
  const Digest whole = content_hash(data);
  test::Rng rng(3);
  for (int round = 0; round < 5; ++round) {
    Hasher h;
    std::size_t pos = 0;
    while (pos < data.size()) {
      std::size_t n = std::min<std::size_t>(data.size() - pos, rng.between(0, round < 2 ? 200 : 100'000));
      h.update(ByteSpan(data).subspan(pos, n));
      pos += n;
    }
    EXPECT_EQ(h.finish(), whole) << "round " << round;
  }
}

TEST(Hasher, EmptyUpdatesChangeNothing) {
  Hasher h;
  h.update({});
  h.update(as_bytes("abc"));
  h.update({});
  EXPECT_EQ(to_hex(h.finish()), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

TEST(Hasher, CopySnapshotsTheState) {
  Hasher h;
  h.update(as_bytes("The quick brown fox "));
  Hasher snapshot = h;
  h.update(as_bytes("jumps over the lazy dog"));
  snapshot.update(as_bytes("jumps over the lazy dog"));
  Digest a = h.finish();
  Digest b = snapshot.finish();
  EXPECT_EQ(a, b);
  EXPECT_EQ(to_hex(a), "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9");
  // A snapshot taken before more data is unaffected by it.
  Hasher base;
  base.update(as_bytes("ab"));
  Hasher fork = base;
  base.update(as_bytes("c"));
  EXPECT_EQ(to_hex(fork.finish()), to_hex(content_hash(as_bytes("ab"))));
  EXPECT_EQ(to_hex(base.finish()), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

TEST(ContentHash, SourceEqualsSpan) {
  // Larger than the 64 KiB read chunk, and not a multiple of it.
  Bytes data = test::random_bytes(200'001, 4);
  MemorySource mem(data);
  auto from_mem = content_hash(mem);
  ASSERT_TRUE(from_mem);
  EXPECT_EQ(*from_mem, content_hash(data));

  test::TempDir dir;
  test::write_bytes(dir.file("img"), data);
  auto file = FileSource::open(dir.file("img"));
  ASSERT_TRUE(file);
  auto from_file = content_hash(**file);
  ASSERT_TRUE(from_file);
  EXPECT_EQ(*from_file, content_hash(data));

  MemorySource empty{ByteSpan{}};
  auto from_empty = content_hash(empty);
  ASSERT_TRUE(from_empty);
  EXPECT_EQ(to_hex(*from_empty), "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

// A Source whose reads fail: the error must come back, not a digest.
class BrokenSource final : public Source {
 public:
  std::uint64_t size() const override { return 100'000; }
  Status read_at(std::uint64_t, MutableByteSpan) const override { return fail(ErrorCode::kIo, "bad sector"); }
};

TEST(ContentHash, SourceReadErrorPropagates) {
  BrokenSource broken;
  auto d = content_hash(broken);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::kIo);
}

TEST(Hex, RoundTrip) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    Digest d = content_hash(test::random_bytes(seed * 7, seed));
    std::string hex = to_hex(d);
    ASSERT_EQ(hex.size(), 64u);
    for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << hex;
    auto back = digest_from_hex(hex);
    ASSERT_TRUE(back.has_value()) << hex;
    EXPECT_EQ(*back, d);
  }
}

TEST(Hex, ToHexOfAnyLength) {
  EXPECT_EQ(to_hex({}), "");
  Bytes b = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(to_hex(b), "000fa0ff");
}

TEST(Hex, UppercaseIsAccepted) {
  auto d = digest_from_hex("0E5751C026E543B2E8AB2EB06099DAA1D1E5DF47778F7787FAAB45CDF12FE3A8");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, content_hash(ByteSpan{}));
}

TEST(Hex, RejectsWrongLengthAndNonHex) {
  const std::string good = "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8";
  EXPECT_FALSE(digest_from_hex(""));
  EXPECT_FALSE(digest_from_hex(good.substr(0, 63)));
  EXPECT_FALSE(digest_from_hex(good + "0"));
  EXPECT_FALSE(digest_from_hex(good.substr(0, 62)));
  EXPECT_FALSE(digest_from_hex(good + good));
  for (char bad : {'g', 'G', ' ', 'x', '-', '\0', ':'}) {
    std::string s = good;
    s[17] = bad;
    EXPECT_FALSE(digest_from_hex(s)) << "char " << static_cast<int>(bad);
  }
  std::string spaced = " " + good.substr(1);
  EXPECT_FALSE(digest_from_hex(spaced));
}

}  // namespace
}  // namespace ota
