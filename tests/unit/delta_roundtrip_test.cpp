// delta::diff then delta::apply gives NEW back, for every shape of input, both
// compressions and several frame sizes; and the generator is deterministic.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::Compression;
using test::concat;
using test::random_bytes;
using test::slice;
using test::structured_bytes;
using test::with_insertion;
using test::with_moved_block;
using test::with_random_edits;

struct Pair {
  Bytes old_image;
  Bytes new_image;
};

struct Case {
  std::string name;
  std::function<Pair()> make;
  std::uint8_t frame_log = delta::kDefaultFrameLog;
};

std::vector<Case> cases() {
  return {
      {"Identical", [] { Bytes a = structured_bytes(100'000, 1); return Pair{a, a}; }},
      {"IdenticalSmallFrames", [] { Bytes a = structured_bytes(50'000, 2); return Pair{a, a}; }, 12},
      {"EmptyOld", [] { return Pair{{}, structured_bytes(20'000, 3)}; }},
      {"EmptyOldSmallFrames", [] { return Pair{{}, random_bytes(10'000, 4)}; }, 12},
      {"EmptyNew", [] { return Pair{structured_bytes(20'000, 5), {}}; }},
      {"BothEmpty", [] { return Pair{{}, {}}; }},
      {"OneByteEach", [] { return Pair{{0x42}, {0x43}}; }},
      {"OldMuchLargerThanNew",
       [] {
         Bytes old_image = structured_bytes(600'000, 6);
         return Pair{old_image, with_random_edits(slice(old_image, 300'001, 9000), 20, 7)};
       }},
      {"NewMuchLargerThanOld",
       [] {
         Bytes old_image = structured_bytes(5000, 8);
         Bytes new_image;
         for (int i = 0; i < 20; ++i) new_image = concat(new_image, with_random_edits(old_image, 5, 100 + i));
         return Pair{old_image, new_image};
       }},
      {"InsertionAtFront",
       [] {
         Bytes old_image = structured_bytes(100'000, 9);
         return Pair{old_image, with_insertion(old_image, 0, random_bytes(3000, 10))};
       }},
      {"InsertionsAtFrontSmallFrames",
       [] {
         Bytes old_image = structured_bytes(60'000, 11);
         return Pair{old_image, with_insertion(old_image, 0, random_bytes(777, 12))};
       },
       12},
      {"MovedBlocks",
       [] {
         Bytes old_image = structured_bytes(120'000, 13);
         Bytes n = with_moved_block(old_image, 10'000, 20'000, 80'000);
         n = with_moved_block(n, 90'000, 5000, 0);
         return Pair{old_image, with_moved_block(n, 50'000, 1000, 51'000)};
       }},
      {"SwappedHalves",
       [] {
         Bytes a = random_bytes(40'000, 14), b = random_bytes(40'000, 15);
         return Pair{concat(a, b), concat(b, a)};
       }},
      {"RandomByteEdits",
       [] {
         Bytes old_image = random_bytes(100'000, 16);
         return Pair{old_image, with_random_edits(old_image, 300, 17)};
       }},
      {"RandomByteEditsStructured",
       [] {
         Bytes old_image = structured_bytes(100'000, 18);
         return Pair{old_image, with_random_edits(old_image, 300, 19)};
       }},
      {"ShiftedByOne",
       [] {
         Bytes old_image = structured_bytes(80'000, 20);
         return Pair{old_image, slice(old_image, 1, old_image.size() - 1)};
       }},
      {"ShiftedData",
       [] {
         // Everything after 10 000 moves 333 bytes later, with a few edits.
         Bytes old_image = random_bytes(90'000, 21);
         Bytes n = with_insertion(old_image, 10'000, random_bytes(333, 22));
         return Pair{old_image, with_random_edits(n, 10, 23)};
       }},
      {"Unrelated", [] { return Pair{random_bytes(30'000, 24), random_bytes(30'000, 25)}; }},
      {"ManyFramesEditsAndInserts",
       [] {
         // ~40 frames of 4 KiB: edits, an insertion and a moved block across frame borders.
         Bytes old_image = structured_bytes(160'000, 26);
         Bytes n = with_random_edits(old_image, 200, 27);
         n = with_insertion(n, 70'001, random_bytes(5000, 28));
         n = with_moved_block(n, 4000, 9000, 120'000);
         return Pair{old_image, n};
       },
       12},
      {"ExactlyTwoFrames",
       [] {
         Bytes old_image = random_bytes(8192, 29);
         return Pair{old_image, with_random_edits(old_image, 10, 30)};
       },
       12},
      {"TwoFramesAndOneByte",
       [] {
         Bytes old_image = random_bytes(8193, 31);
         return Pair{old_image, with_random_edits(old_image, 10, 32)};
       },
       12},
      {"FramesOf64KiB",
       [] {
         Bytes old_image = structured_bytes(300'000, 33);
         return Pair{old_image, with_random_edits(with_insertion(old_image, 150'000, random_bytes(100, 34)), 50, 35)};
       },
       16},
  };
}

struct Param {
  Case c;
  Compression compression;
  delta::PredictorChoice predictor = delta::PredictorChoice::kAuto;
  delta::RecordLayout layout = delta::RecordLayout::kBlocks;
};

const char* compression_suffix(Compression c) {
  switch (c) {
    case Compression::kNone: return "_None";
    case Compression::kZstd: return "_Zstd";
    case Compression::kZstdOld: return "_ZstdOld";
    case Compression::kLzma: return "_Lzma";
    case Compression::kLzmaOld: return "_LzmaOld";
  }
  return "_Unknown";
}

const char* predictor_suffix(delta::PredictorChoice p) {
  switch (p) {
    case delta::PredictorChoice::kAuto: return "";
    case delta::PredictorChoice::kNone: return "_NoPredictor";
    case delta::PredictorChoice::kX86: return "_X86";
    case delta::PredictorChoice::kThumb: return "_Thumb";
    case delta::PredictorChoice::kArm64: return "_Arm64";
  }
  return "_Unknown";
}

const char* layout_suffix(delta::RecordLayout l) { return l == delta::RecordLayout::kInterleaved ? "_V1V2" : ""; }

void PrintTo(const Param& p, std::ostream* os) {
  *os << p.c.name << compression_suffix(p.compression) << predictor_suffix(p.predictor) << layout_suffix(p.layout);
}

std::string param_name(const testing::TestParamInfo<Param>& info) {
  return info.param.c.name + compression_suffix(info.param.compression) + predictor_suffix(info.param.predictor) +
         layout_suffix(info.param.layout);
}

// Both record layouts: version 3 (blocks) and versions 1/2 (interleaved).
std::vector<Param> params() {
  std::vector<Param> out;
  for (const auto& c : cases())
    for (Compression comp : {Compression::kNone, Compression::kZstd, Compression::kLzma})
      for (auto layout : {delta::RecordLayout::kBlocks, delta::RecordLayout::kInterleaved})
        if (!delta::is_lzma(comp) || layout == delta::RecordLayout::kBlocks)  // LZMA2: version 4, blocks only
          out.push_back({c, comp, delta::PredictorChoice::kAuto, layout});
  return out;
}

// Every case again with OLD as zstd dictionary, and with each reference
// predictor forced on (kAuto keeps them off for data that is not code), so the
// address map section and the predicted COPY/ADD paths see every shape of input.
std::vector<Param> more_params() {
  std::vector<Param> out;
  for (const auto& c : cases()) {
    out.push_back({c, Compression::kZstdOld, delta::PredictorChoice::kNone});
    out.push_back({c, Compression::kZstd, delta::PredictorChoice::kX86});
    out.push_back({c, Compression::kNone, delta::PredictorChoice::kThumb});
    out.push_back({c, Compression::kZstd, delta::PredictorChoice::kArm64});
    out.push_back({c, Compression::kZstdOld, delta::PredictorChoice::kX86, delta::RecordLayout::kInterleaved});
    out.push_back({c, Compression::kNone, delta::PredictorChoice::kArm64, delta::RecordLayout::kInterleaved});
    out.push_back({c, Compression::kLzmaOld, delta::PredictorChoice::kNone});
    out.push_back({c, Compression::kLzma, delta::PredictorChoice::kThumb});
    out.push_back({c, Compression::kLzmaOld, delta::PredictorChoice::kArm64});
  }
  return out;
}


class RoundTrip : public testing::TestWithParam<Param> {};

TEST_P(RoundTrip, ApplyGivesNew) {
  const Param& p = GetParam();
  const Pair pair = p.c.make();
  delta::DiffOptions opt = test::fast_options(p.compression, p.c.frame_log);
  opt.predictor = p.predictor;
  opt.layout = p.layout;

  VectorWriter out;
  auto stats = delta::diff(pair.old_image, pair.new_image, out, opt);
  ASSERT_TRUE(stats) << test::describe(fail(stats.error()));
  const Bytes& patch = out.data();

  // The stats describe the patch.
  const std::uint64_t frame = std::uint64_t{1} << p.c.frame_log;
  EXPECT_EQ(stats->patch_size, patch.size());
  EXPECT_EQ(stats->frames, (pair.new_image.size() + frame - 1) / frame);
  EXPECT_EQ(stats->copy_bytes + stats->add_bytes + stats->insert_bytes, pair.new_image.size());
  EXPECT_EQ(stats->old_hash, content_hash(pair.old_image));
  EXPECT_EQ(stats->new_hash, content_hash(pair.new_image));

  // The header says what it should.
  auto header = delta::parse_header(patch);
  ASSERT_TRUE(header) << test::describe(fail(header.error()));
  const delta::PatchHeader& h = header->first;
  EXPECT_EQ(h.version, delta::format_version_for(h.predictor, p.layout, p.compression));
  EXPECT_EQ(stats->version, h.version);
  EXPECT_EQ(stats->compression, h.compression);
  // Version 3 frames hold blocks unless interleaved records came out smaller.
  if (p.layout == delta::RecordLayout::kInterleaved || pair.new_image.empty()) {
    EXPECT_EQ(stats->blocks, 0u);
  }
  EXPECT_EQ(h.compression, p.compression);
  if (p.compression == Compression::kZstd || p.compression == Compression::kLzma) {
    EXPECT_EQ(h.window_log, opt.window_log);
  } else if (p.compression == Compression::kNone) {
    EXPECT_EQ(h.window_log, 0);
  }
  EXPECT_EQ(h.frame_log, p.c.frame_log);
  EXPECT_EQ(h.old_size, pair.old_image.size());
  EXPECT_EQ(h.new_size, pair.new_image.size());
  EXPECT_EQ(h.old_hash, stats->old_hash);
  EXPECT_EQ(h.new_hash, stats->new_hash);
  EXPECT_EQ(h.frame_count(), stats->frames);
  if (pair.new_image.empty() && h.predictor == delta::Predictor::kNone) {
    EXPECT_EQ(patch.size(), header->second) << "no frames for an empty NEW";
  }
  if (p.predictor != delta::PredictorChoice::kAuto) {
    const delta::Predictor expected = p.predictor == delta::PredictorChoice::kX86     ? delta::Predictor::kX86
                                      : p.predictor == delta::PredictorChoice::kThumb ? delta::Predictor::kThumb
                                      : p.predictor == delta::PredictorChoice::kArm64 ? delta::Predictor::kArm64
                                                                                      : delta::Predictor::kNone;
    EXPECT_EQ(static_cast<int>(h.predictor), static_cast<int>(expected)) << "a forced predictor is used";
  }

  auto applied = test::apply_patch(pair.old_image, patch);
  ASSERT_TRUE(applied) << test::describe(fail(applied.error()));
  EXPECT_TRUE(*applied == pair.new_image) << "patched output differs from NEW";
}

INSTANTIATE_TEST_SUITE_P(Delta, RoundTrip, testing::ValuesIn(params()), param_name);
INSTANTIATE_TEST_SUITE_P(More, RoundTrip, testing::ValuesIn(more_params()), param_name);

TEST(RoundTripSizes, SimilarImagesGiveSmallPatches) {
  Bytes old_image = structured_bytes(200'000, 40);
  Bytes new_image = with_random_edits(old_image, 100, 41);
  auto patch = test::make_patch(old_image, new_image, test::fast_options());
  ASSERT_TRUE(patch);
  EXPECT_LT(patch->size(), 4000u) << "100 byte edits should cost far less than NEW";
  auto identical = test::make_patch(old_image, old_image, test::fast_options(Compression::kNone));
  ASSERT_TRUE(identical);
  EXPECT_LT(identical->size(), 120u) << "identical images: a header and one COPY-to-end";
}

TEST(RoundTripBlocks, RecordsLongerThanABlockAreSplit) {
  // 200 KB of literals (INSERT) and edited copies in one 1 MiB frame: version 3
  // splits the INSERT across blocks of at most kMaxBlockSize stream bytes.
  Bytes old_image = structured_bytes(300'000, 45);
  Bytes new_image = concat(random_bytes(200'000, 46), with_random_edits(old_image, 2000, 47));
  for (Compression comp : {Compression::kNone, Compression::kZstd, Compression::kLzma}) {
    VectorWriter out;
    delta::DiffOptions opt = test::fast_options(comp, 20);
    opt.interleaved_frames = false;
    auto stats = delta::diff(old_image, new_image, out, opt);
    ASSERT_TRUE(stats) << test::describe(fail(stats.error()));
    EXPECT_EQ(stats->frames, 1u);
    EXPECT_GE(stats->insert_bytes, 200'000u);
    EXPECT_GE(stats->blocks, (stats->insert_bytes + stats->add_bytes) / delta::kMaxBlockSize + 1);
    auto applied = test::apply_patch(old_image, out.data());
    ASSERT_TRUE(applied) << test::describe(fail(applied.error()));
    EXPECT_TRUE(*applied == new_image);
    auto bytewise = test::apply_in_chunks(old_image, out.data(), [](std::size_t left) { return std::min<std::size_t>(left, 3); });
    ASSERT_TRUE(bytewise) << test::describe(fail(bytewise.error()));
    EXPECT_TRUE(*bytewise == new_image);
  }
}

// Version 3 frames say their record layout in their mode byte: a version-1
// patch whose frame modes are moved to "interleaved" (+2) and whose version
// byte says 3 is a valid version-3 patch giving the same NEW; a mode past 3 is
// malformed, and so is mode 2 in a version-1 patch.
TEST(RoundTripBlocks, Version3FramesMayKeepInterleavedRecords) {
  Bytes old_image = structured_bytes(100'000, 51);
  Bytes new_image = with_random_edits(old_image, 300, 52);
  for (Compression comp : {Compression::kNone, Compression::kZstd}) {
    delta::DiffOptions opt = test::fast_options(comp, 24);  // one frame
    opt.old_dictionary_max = 0;
    opt.predictor = delta::PredictorChoice::kNone;
    opt.layout = delta::RecordLayout::kInterleaved;
    auto v1 = test::make_patch(old_image, new_image, opt);
    ASSERT_TRUE(v1);
    auto h = delta::parse_header(*v1);
    ASSERT_TRUE(h);
    const std::size_t mode_at = h->second;  // the header's size: the frame's mode byte follows
    ASSERT_LE((*v1)[mode_at], 1);
    Bytes v3 = *v1;
    v3[3] = delta::kBlocksFormatVersion;
    v3[mode_at] = static_cast<std::uint8_t>(v3[mode_at] + 2);
    auto applied = test::apply_patch(old_image, v3);
    ASSERT_TRUE(applied) << test::describe(fail(applied.error()));
    EXPECT_TRUE(*applied == new_image);
    auto bytewise = test::apply_in_chunks(old_image, v3, [](std::size_t left) { return std::min<std::size_t>(left, 1); });
    ASSERT_TRUE(bytewise) << test::describe(fail(bytewise.error()));
    EXPECT_TRUE(*bytewise == new_image);
    Bytes bad = v3;
    bad[mode_at] = 4;
    auto r = test::apply_patch(old_image, bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kPatchMalformed);
    Bytes bad_v1 = *v1;
    bad_v1[mode_at] = static_cast<std::uint8_t>(bad_v1[mode_at] + 2);
    auto r1 = test::apply_patch(old_image, bad_v1);
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().code, ErrorCode::kPatchMalformed);
  }
  // And the generator's choice, on records that repeat as whole groups (a
  // table of pointers all moved by the same amount): never larger than either
  // layout alone.
  Bytes table_old, table_new;
  for (std::uint32_t i = 0; i < 40'000; ++i) {
    const std::uint32_t ptr = 0x400000 + i * 24, moved = ptr + 0x1234;
    for (int b = 0; b < 4; ++b) table_old.push_back(static_cast<std::uint8_t>(ptr >> (8 * b)));
    for (int b = 0; b < 4; ++b) table_new.push_back(static_cast<std::uint8_t>(moved >> (8 * b)));
    for (int b = 0; b < 4; ++b) table_old.push_back(static_cast<std::uint8_t>(i * 7 + b));
    for (int b = 0; b < 4; ++b) table_new.push_back(static_cast<std::uint8_t>(i * 7 + b));
  }
  delta::DiffOptions opt = test::fast_options(Compression::kZstd, 20);
  opt.old_dictionary_max = 0;
  opt.predictor = delta::PredictorChoice::kNone;
  auto chosen = test::make_patch(table_old, table_new, opt);
  opt.interleaved_frames = false;
  auto blocks_only = test::make_patch(table_old, table_new, opt);
  opt.layout = delta::RecordLayout::kInterleaved;
  auto v1 = test::make_patch(table_old, table_new, opt);
  ASSERT_TRUE(chosen && blocks_only && v1);
  EXPECT_LE(chosen->size(), blocks_only->size());
  EXPECT_LE(chosen->size(), v1->size());
  auto applied = test::apply_patch(table_old, *chosen);
  ASSERT_TRUE(applied);
  EXPECT_TRUE(*applied == table_new);
}

TEST(RoundTripBlocks, Version3IsSmallerThanInterleavedOnStructuredEdits) {
  Bytes old_image = structured_bytes(400'000, 48);
  Bytes new_image = with_insertion(with_random_edits(old_image, 3000, 49), 200'000, structured_bytes(5000, 50));
  delta::DiffOptions opt = test::fast_options(Compression::kZstd, 24);
  opt.old_dictionary_max = 0;
  auto v3 = test::make_patch(old_image, new_image, opt);
  opt.layout = delta::RecordLayout::kInterleaved;
  auto v1 = test::make_patch(old_image, new_image, opt);
  ASSERT_TRUE(v3);
  ASSERT_TRUE(v1);
  EXPECT_EQ((*v3)[3], 3);
  EXPECT_EQ((*v1)[3], 1);
  EXPECT_LT(v3->size(), v1->size());
}

TEST(RoundTripSizes, ZstdCompressesLiterals) {
  Bytes new_image = structured_bytes(100'000, 42);
  auto raw = test::make_patch({}, new_image, test::fast_options(Compression::kNone));
  auto zstd = test::make_patch({}, new_image, test::fast_options(Compression::kZstd));
  ASSERT_TRUE(raw);
  ASSERT_TRUE(zstd);
  EXPECT_GT(raw->size(), new_image.size()) << "raw: every byte is a literal";
  EXPECT_LT(zstd->size() * 2, raw->size()) << "structured literals compress well";
}

TEST(RoundTripSizes, DefaultOptionsRoundTrip) {
  // Default DiffOptions: zstd level 19, 16 MiB frames, one thread per core.
  Bytes old_image = structured_bytes(150'000, 43);
  Bytes new_image = with_moved_block(with_random_edits(old_image, 50, 44), 0, 30'000, 100'000);
  auto patch = test::make_patch(old_image, new_image);
  ASSERT_TRUE(patch);
  auto applied = test::apply_patch(old_image, *patch);
  ASSERT_TRUE(applied) << test::describe(fail(applied.error()));
  EXPECT_TRUE(*applied == new_image);
}

// ---- determinism ----

Bytes must_diff(const Bytes& old_image, const Bytes& new_image, const delta::DiffOptions& opt) {
  auto patch = test::make_patch(old_image, new_image, opt);
  EXPECT_TRUE(patch) << test::describe(fail(patch.error()));
  return patch ? *patch : Bytes{};
}

TEST(Determinism, SameInputsSameBytes) {
  Bytes old_image = structured_bytes(120'000, 50);
  Bytes new_image = with_insertion(with_random_edits(old_image, 80, 51), 60'000, random_bytes(2000, 52));
  for (Compression comp : {Compression::kNone, Compression::kZstd}) {
    delta::DiffOptions opt = test::fast_options(comp, 12);
    Bytes first = must_diff(old_image, new_image, opt);
    Bytes second = must_diff(old_image, new_image, opt);
    EXPECT_FALSE(first.empty());
    EXPECT_TRUE(first == second);
    // Fresh copies of the inputs at other addresses: still the same bytes.
    Bytes old_copy = old_image, new_copy = new_image;
    EXPECT_TRUE(must_diff(old_copy, new_copy, opt) == first);
  }
}

TEST(Determinism, ThreadCountDoesNotChangeThePatch) {
  Bytes old_image = structured_bytes(200'000, 53);
  Bytes new_image = with_moved_block(with_random_edits(old_image, 150, 54), 20'000, 30'000, 150'000);
  for (Compression comp : {Compression::kNone, Compression::kZstd}) {
    delta::DiffOptions opt = test::fast_options(comp, 12);  // ~50 frames to share out
    opt.threads = 1;
    Bytes one = must_diff(old_image, new_image, opt);
    opt.threads = 4;
    Bytes four = must_diff(old_image, new_image, opt);
    opt.threads = 0;  // one per core
    Bytes per_core = must_diff(old_image, new_image, opt);
    EXPECT_FALSE(one.empty());
    EXPECT_TRUE(one == four) << "threads=1 and threads=4 differ";
    EXPECT_TRUE(one == per_core) << "threads=1 and threads=0 differ";
  }
}

TEST(Determinism, DefaultLevelThreads1Vs4) {
  Bytes old_image = structured_bytes(64'000, 55);
  Bytes new_image = with_random_edits(old_image, 40, 56);
  delta::DiffOptions opt;
  opt.frame_log = 12;
  opt.threads = 1;
  Bytes one = must_diff(old_image, new_image, opt);
  opt.threads = 4;
  EXPECT_TRUE(one == must_diff(old_image, new_image, opt));
}

// ---- generator options and callbacks ----

TEST(DiffOptions, OutOfRangeOptionsAreUsageErrors) {
  Bytes a = random_bytes(1000, 60), b = random_bytes(1000, 61);
  auto expect_usage = [&](delta::DiffOptions opt, const char* what) {
    VectorWriter out;
    auto st = delta::diff(a, b, out, opt);
    ASSERT_FALSE(st) << what;
    EXPECT_EQ(st.error().code, ErrorCode::kUsage) << what;
    EXPECT_EQ(out.position(), 0u) << what << ": nothing written on a usage error";
  };
  delta::DiffOptions opt;
  opt.frame_log = delta::kMinFrameLog - 1;
  expect_usage(opt, "frame_log 11");
  opt.frame_log = delta::kMaxFrameLog + 1;
  expect_usage(opt, "frame_log 31");
  opt = {};
  opt.window_log = 9;
  expect_usage(opt, "window_log 9");
  opt.window_log = delta::kMaxWindowLog + 1;
  expect_usage(opt, "window_log 28");
  opt = {};
  opt.level = 0;
  expect_usage(opt, "level 0");
  opt.level = 23;
  expect_usage(opt, "level 23");
}

TEST(DiffOptions, WindowLogIsIgnoredWithoutCompression) {
  Bytes a = random_bytes(1000, 62), b = with_random_edits(a, 3, 63);
  delta::DiffOptions opt = test::fast_options(Compression::kNone);
  opt.window_log = 3;
  auto patch = test::make_patch(a, b, opt);
  ASSERT_TRUE(patch) << test::describe(fail(patch.error()));
  auto h = delta::parse_header(*patch);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->first.window_log, 0);
}

TEST(DiffOptions, ProgressIsMonotonicAndEndsAtTotal) {
  Bytes a = structured_bytes(50'000, 64), b = with_random_edits(a, 30, 65);
  delta::DiffOptions opt = test::fast_options(Compression::kZstd, 12);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
  opt.progress = [&](std::uint64_t done, std::uint64_t total) { calls.emplace_back(done, total); };
  ASSERT_TRUE(test::make_patch(a, b, opt));
  ASSERT_FALSE(calls.empty());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, b.size());
    if (i) {
      EXPECT_GE(calls[i].first, calls[i - 1].first);
    }
  }
  EXPECT_EQ(calls.back().first, b.size());
}

using FullDisk = test::FullDiskWriter;

TEST(DiffOptions, WriterErrorPropagates) {
  Bytes a = random_bytes(50'000, 66), b = random_bytes(50'000, 67);
  for (std::uint64_t limit : {0, 50, 200, 20'000}) {
    FullDisk disk(limit);
    auto st = delta::diff(a, b, disk, test::fast_options(Compression::kNone, 12));
    ASSERT_FALSE(st) << limit;
    EXPECT_EQ(st.error().code, ErrorCode::kIo) << limit;
  }
}

}  // namespace
}  // namespace ota
