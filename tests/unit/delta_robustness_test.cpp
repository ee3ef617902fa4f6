// The patcher against damaged and oddly delivered patches: every single-byte
// mutation, every truncation, every chunking, trailing garbage. The rule: a
// patch either fails with an error or yields exactly NEW. Never a crash, never
// success with wrong output.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "ota/delta/delta.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::Compression;

struct Fixture {
  Bytes old_image;
  Bytes new_image;
  Bytes patch;
  std::size_t header_size = 0;
};

// A small patch (a few KB, four frames of 4 KiB) with every record type: edits
// (ADD), inserted structured bytes (INSERT, compressible), a moved block (SEEK),
// copies.
struct Variant {
  const char* name;
  Compression compression;
  delta::PredictorChoice predictor;
  delta::RecordLayout layout = delta::RecordLayout::kBlocks;
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

Fixture small_fixture(const Variant& v) {
  Fixture f;
  f.old_image = test::structured_bytes(12'000, 100);
  Bytes n = test::with_random_edits(f.old_image, 80, 101);
  n = test::with_insertion(n, 5000, test::structured_bytes(2500, 102));
  n = test::with_moved_block(n, 100, 700, 9000);
  f.new_image = n;
  delta::DiffOptions opt = test::fast_options(v.compression, 12);
  opt.window_log = 12;
  opt.predictor = v.predictor;
  opt.layout = v.layout;
  opt.interleaved_frames = false;  // every version-3 frame in blocks: the block reader is what these tests damage
  auto patch = test::make_patch(f.old_image, f.new_image, opt);
  EXPECT_TRUE(patch);
  if (patch) f.patch = *patch;
  auto h = delta::parse_header(f.patch);
  EXPECT_TRUE(h);
  if (h) f.header_size = h->second;
  return f;
}

// A bigger patch (~25 frames) for the chunking tests.
Fixture big_fixture(const Variant& v) {
  Fixture f;
  f.old_image = test::structured_bytes(100'000, 110);
  Bytes n = test::with_random_edits(f.old_image, 300, 111);
  n = test::with_insertion(n, 33'333, test::random_bytes(3000, 112));
  n = test::with_moved_block(n, 5000, 10'000, 80'000);
  f.new_image = n;
  delta::DiffOptions opt = test::fast_options(v.compression, 12);
  opt.predictor = v.predictor;
  opt.layout = v.layout;
  opt.interleaved_frames = false;  // every version-3 frame in blocks: the block reader is what these tests damage
  auto patch = test::make_patch(f.old_image, f.new_image, opt);
  EXPECT_TRUE(patch);
  if (patch) f.patch = *patch;
  return f;
}

class Damaged : public testing::TestWithParam<Variant> {};

std::string variant_name(const testing::TestParamInfo<Variant>& info) { return info.param.name; }

TEST_P(Damaged, FixtureIsWhatTheTestsNeed) {
  Fixture f = small_fixture(GetParam());
  ASSERT_FALSE(f.patch.empty());
  EXPECT_GT(f.patch.size(), 1500u);
  EXPECT_LT(f.patch.size(), 6000u) << "keep the mutation test small";
  auto h = delta::parse_header(f.patch);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->first.frame_count(), 4u);
  EXPECT_EQ(h->first.version, delta::format_version_for(h->first.predictor, GetParam().layout, GetParam().compression));
  const bool predicted = h->first.predictor != delta::Predictor::kNone;
  EXPECT_EQ(predicted, GetParam().predictor != delta::PredictorChoice::kNone);
  // Where each frame starts: the header's end (or, with a predictor, after the
  // address map section that follows it), then each resume point.
  std::vector<std::uint64_t> starts;
  if (!predicted) starts.push_back(f.header_size);
  delta::PatchOptions opt;
  opt.on_frame = [&](const delta::ResumePoint& p) {
    starts.push_back(p.patch_offset);
    return ok();
  };
  auto out = test::apply_patch(f.old_image, f.patch, opt);
  ASSERT_TRUE(out);
  EXPECT_TRUE(*out == f.new_image);
  starts.pop_back();  // the end of the last frame
  int zstd_frames = 0;
  for (std::uint64_t s : starts) {
    ASSERT_LT(s, f.patch.size());
    ASSERT_LE(f.patch[s], 1) << "mode byte at " << s;
    zstd_frames += f.patch[s];
  }
  // The zstd variant must really carry zstd frames (mode byte 1), or the
  // mutation test would not reach the decompressor.
  if (GetParam().compression != Compression::kNone) {
    EXPECT_GE(zstd_frames, 1);
  } else {
    EXPECT_EQ(zstd_frames, 0);
  }
}

TEST_P(Damaged, EverySingleByteMutationFailsOrGivesNew) {
  const Fixture f = small_fixture(GetParam());
  ASSERT_FALSE(f.patch.empty());
  const std::set<ErrorCode> allowed = {ErrorCode::kPatchMalformed, ErrorCode::kPatchTruncated,
                                       ErrorCode::kOldMismatch,    ErrorCode::kNewMismatch,
                                       ErrorCode::kDecompress,     ErrorCode::kUnsupported,
                                       ErrorCode::kLimitExceeded};
  std::map<ErrorCode, int> seen;
  int successes = 0;
  Bytes patch = f.patch;
  // The plain variants get five XOR values per byte; the predictor and
  // dictionary variants, which mostly add paths after the same header and
  // framing, two (keeps the sanitizer run short).
  const bool plain = GetParam().predictor == delta::PredictorChoice::kNone &&
                     !delta::has_old_dictionary(GetParam().compression);
  const std::vector<std::uint8_t> xors = plain ? std::vector<std::uint8_t>{0x01, 0x02, 0x40, 0x80, 0xff}
                                               : std::vector<std::uint8_t>{0x01, 0xff};
  for (std::size_t i = 0; i < patch.size(); ++i) {
    for (std::uint8_t x : xors) {
      patch[i] ^= x;
      auto out = test::apply_patch(f.old_image, patch);
      patch[i] ^= x;
      if (out) {
        ++successes;
        ASSERT_TRUE(*out == f.new_image) << "byte " << i << " ^ " << int(x) << ": success with wrong output";
      } else {
        ++seen[out.error().code];
        ASSERT_TRUE(allowed.count(out.error().code))
            << "byte " << i << " ^ " << int(x) << ": " << test::describe(fail(out.error()));
        ASSERT_FALSE(out.error().message.empty());
      }
    }
  }
  // Almost every mutation must be caught; the few harmless ones are in the
  // header's window_log (any window that still fits), in address map entries
  // no call site uses, and the like.
  const int runs = static_cast<int>(patch.size() * xors.size());
  EXPECT_LT(successes, runs / 50) << "too many mutations went unnoticed";
  EXPECT_GT(seen[ErrorCode::kOldMismatch], 0);
  EXPECT_GT(seen[ErrorCode::kNewMismatch] + seen[ErrorCode::kPatchMalformed], 0);
}

TEST_P(Damaged, MutationsFedInRandomChunksAgreeWithWholeFeeding) {
  // Same verdict whichever way the damaged bytes arrive (sampled offsets).
  const Fixture f = small_fixture(GetParam());
  test::Rng rng(5);
  Bytes patch = f.patch;
  for (std::size_t i = 0; i < patch.size(); i += 7) {
    patch[i] ^= 0x5a;
    auto whole = test::apply_patch(f.old_image, patch);
    auto chunked = test::apply_in_chunks(f.old_image, patch,
                                         [&](std::size_t left) { return std::min<std::size_t>(left, rng.between(1, 64)); });
    patch[i] ^= 0x5a;
    ASSERT_EQ(static_cast<bool>(whole), static_cast<bool>(chunked)) << "byte " << i;
    if (whole) {
      EXPECT_TRUE(*whole == f.new_image);
      EXPECT_TRUE(*chunked == f.new_image);
    } else {
      EXPECT_EQ(whole.error().code, chunked.error().code) << "byte " << i << ": " << whole.error().message
                                                         << " vs " << chunked.error().message;
    }
  }
}

TEST_P(Damaged, EveryProperPrefixFails) {
  const Fixture f = small_fixture(GetParam());
  ASSERT_FALSE(f.patch.empty());
  for (std::size_t len = 0; len < f.patch.size(); ++len) {
    ByteSpan prefix(f.patch.data(), len);
    auto out = test::apply_patch(f.old_image, prefix);
    ASSERT_FALSE(out) << "prefix of " << len << " of " << f.patch.size() << " bytes succeeded";
    const ErrorCode c = out.error().code;
    ASSERT_TRUE(c == ErrorCode::kPatchTruncated || c == ErrorCode::kPatchMalformed || c == ErrorCode::kDecompress)
        << "prefix " << len << ": " << test::describe(fail(out.error()));
    // Nothing here is damaged, only cut short: the verdict is "truncated".
    EXPECT_EQ(c, ErrorCode::kPatchTruncated) << "prefix " << len << ": " << test::describe(fail(out.error()));
  }
}

TEST_P(Damaged, EveryProperPrefixFailsAtFinishNotBefore) {
  // A prefix is a valid beginning: feed() accepts it, only finish() refuses.
  const Fixture f = small_fixture(GetParam());
  for (std::size_t len = 0; len < f.patch.size(); len += 3) {
    MemorySource old_source(f.old_image);
    VectorWriter out;
    auto p = delta::Patcher::create(old_source, out);
    ASSERT_TRUE(p);
    Status fed = (*p)->feed(ByteSpan(f.patch.data(), len));
    ASSERT_TRUE(fed) << "prefix " << len << ": " << test::describe(fed);
    Status done = (*p)->finish();
    ASSERT_FALSE(done) << "prefix " << len;
    EXPECT_EQ(done.error().code, ErrorCode::kPatchTruncated) << test::describe(done);
    EXPECT_LE(out.position(), f.new_image.size());
  }
}

TEST_P(Damaged, ChunkSizesDoNotMatter) {
  const Fixture f = big_fixture(GetParam());
  ASSERT_FALSE(f.patch.empty());
  auto whole = test::apply_patch(f.old_image, f.patch);
  ASSERT_TRUE(whole) << test::describe(fail(whole.error()));
  ASSERT_TRUE(*whole == f.new_image);

  auto one = test::apply_in_chunks(f.old_image, f.patch, [](std::size_t) { return 1; });
  ASSERT_TRUE(one) << test::describe(fail(one.error()));
  EXPECT_TRUE(*one == f.new_image) << "1-byte chunks";

  for (std::uint64_t seed : {1, 2, 3}) {
    test::Rng rng(seed);
    auto random = test::apply_in_chunks(f.old_image, f.patch, [&](std::size_t left) {
      return std::min<std::size_t>(left, rng.between(1, 100));
    });
    ASSERT_TRUE(random) << test::describe(fail(random.error()));
    EXPECT_TRUE(*random == f.new_image) << "random 1..100 chunks, seed " << seed;
  }

  for (std::size_t size : {2, 3, 75, 76, 4096, 65536, 65537}) {
    auto fixed = test::apply_in_chunks(f.old_image, f.patch, [&](std::size_t left) { return std::min(left, size); });
    ASSERT_TRUE(fixed) << size << ": " << test::describe(fail(fixed.error()));
    EXPECT_TRUE(*fixed == f.new_image) << size << "-byte chunks";
  }

  auto all = test::apply_in_chunks(f.old_image, f.patch, [](std::size_t left) { return left; });
  ASSERT_TRUE(all);
  EXPECT_TRUE(*all == f.new_image) << "one chunk";
}

TEST_P(Damaged, EmptyFeedsAreHarmless) {
  const Fixture f = small_fixture(GetParam());
  MemorySource old_source(f.old_image);
  VectorWriter out;
  auto p = delta::Patcher::create(old_source, out);
  ASSERT_TRUE(p);
  for (std::size_t i = 0; i < f.patch.size(); i += 100) {
    ASSERT_TRUE((*p)->feed({}));
    ASSERT_TRUE((*p)->feed(ByteSpan(f.patch).subspan(i, std::min<std::size_t>(100, f.patch.size() - i))));
  }
  ASSERT_TRUE((*p)->feed({}));
  ASSERT_TRUE((*p)->finish());
  EXPECT_TRUE(out.data() == f.new_image);
}

TEST_P(Damaged, TrailingGarbageIsMalformed) {
  const Fixture f = small_fixture(GetParam());
  for (const Bytes& tail : {Bytes{0x00}, Bytes{0x01}, test::random_bytes(100, 7), f.patch}) {
    Bytes patch = test::concat(f.patch, tail);
    auto out = test::apply_patch(f.old_image, patch);
    ASSERT_FALSE(out) << tail.size() << " trailing bytes accepted";
    EXPECT_EQ(out.error().code, ErrorCode::kPatchMalformed) << test::describe(fail(out.error()));
    // The same when the garbage arrives in its own feed() after a complete patch.
    MemorySource old_source(f.old_image);
    VectorWriter sink;
    auto p = delta::Patcher::create(old_source, sink);
    ASSERT_TRUE(p);
    ASSERT_TRUE((*p)->feed(f.patch));
    Status st = (*p)->feed(tail);
    if (st) st = (*p)->finish();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kPatchMalformed) << test::describe(st);
  }
}

TEST_P(Damaged, ErrorsAreSticky) {
  const Fixture f = small_fixture(GetParam());
  Bytes patch = f.patch;
  patch[f.header_size] = 7;  // unknown frame mode
  MemorySource old_source(f.old_image);
  VectorWriter out;
  auto p = delta::Patcher::create(old_source, out);
  ASSERT_TRUE(p);
  Status first = (*p)->feed(patch);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, ErrorCode::kPatchMalformed);
  Status again = (*p)->feed(f.patch);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kPatchMalformed);
  Status done = (*p)->finish();
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, ErrorCode::kPatchMalformed);
}

INSTANTIATE_TEST_SUITE_P(
    Delta, Damaged,
    testing::Values(Variant{"None", Compression::kNone, delta::PredictorChoice::kNone},
                    Variant{"Zstd", Compression::kZstd, delta::PredictorChoice::kNone},
                    // With a reference predictor: an address map section after the header.
                    Variant{"ZstdX86", Compression::kZstd, delta::PredictorChoice::kX86},
                    Variant{"NoneThumb", Compression::kNone, delta::PredictorChoice::kThumb},
                    Variant{"NoneArm64", Compression::kNone, delta::PredictorChoice::kArm64},
                    // OLD as zstd prefix dictionary.
                    Variant{"ZstdOld", Compression::kZstdOld, delta::PredictorChoice::kNone},
                    // Format version 4: LZMA2 frames, plain, with OLD as preset dictionary, with a map.
                    Variant{"Lzma", Compression::kLzma, delta::PredictorChoice::kNone},
                    Variant{"LzmaOld", Compression::kLzmaOld, delta::PredictorChoice::kNone},
                    Variant{"LzmaX86", Compression::kLzma, delta::PredictorChoice::kX86},
                    // Format versions 1 and 2 (interleaved records), as older generators wrote them.
                    Variant{"NoneV1", Compression::kNone, delta::PredictorChoice::kNone, delta::RecordLayout::kInterleaved},
                    Variant{"ZstdV1", Compression::kZstd, delta::PredictorChoice::kNone, delta::RecordLayout::kInterleaved},
                    Variant{"NoneArm64V2", Compression::kNone, delta::PredictorChoice::kArm64,
                            delta::RecordLayout::kInterleaved}),
    variant_name);

}  // namespace
}  // namespace ota
