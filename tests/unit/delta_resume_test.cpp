// Resuming a patch at a frame boundary (PatchOptions::resume): the agent's path
// after a power cut. For every resume point of several patches: feed the patch
// again from its start (or jump with skip()), continue writing after the
// synced prefix, and get NEW byte for byte; a corrupted prefix is caught.
#include <gtest/gtest.h>

#include <vector>

#include "ota/delta/delta.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::Compression;
using delta::PredictorChoice;
using delta::RecordLayout;
using delta::ResumePoint;

struct Case {
  Bytes old_image, new_image, patch;
  std::vector<ResumePoint> points;
};

Case make_case(Compression compression, PredictorChoice predictor, std::size_t size, std::uint64_t seed,
               RecordLayout layout = RecordLayout::kBlocks) {
  Case c;
  c.old_image = test::structured_bytes(size, seed);
  c.new_image = test::with_insertion(test::with_random_edits(c.old_image, 50, seed + 1), size / 2,
                                     test::random_bytes(700, seed + 2));
  auto opt = test::fast_options(compression, 12);  // 4 KiB frames: many resume points
  opt.predictor = predictor;
  opt.layout = layout;
  auto patch = test::make_patch(c.old_image, c.new_image, opt);
  EXPECT_TRUE(patch);
  c.patch = *patch;
  delta::PatchOptions po;
  po.on_frame = [&](const ResumePoint& rp) {
    c.points.push_back(rp);
    return ok();
  };
  auto out = test::apply_patch(c.old_image, c.patch, po);
  EXPECT_TRUE(out);
  EXPECT_EQ(*out, c.new_image);
  return c;
}

// Continues after rp: prefix = what was synced, then feeds the patch either
// from byte 0 (skipped internally) or from next_offset() after skip().
Result<Bytes> resume(const Case& c, const ResumePoint& rp, bool jump, Bytes prefix, std::size_t chunk = 1000) {
  MemorySource old_source(c.old_image);
  MemorySource written(prefix);
  VectorWriter out;
  delta::PatchOptions po;
  po.resume = rp;
  po.written_prefix = &written;
  auto p = delta::Patcher::create(old_source, out, po);
  if (!p) return fail(p.error());
  std::size_t at = 0;
  while (at < c.patch.size()) {
    if (jump && (*p)->header() && (*p)->next_offset() > at) {
      OTA_TRY((*p)->skip((*p)->next_offset() - at));
      at = static_cast<std::size_t>((*p)->next_offset());
      continue;
    }
    const std::size_t n = std::min(chunk, c.patch.size() - at);
    OTA_TRY((*p)->feed(ByteSpan(c.patch.data() + at, n)));
    at += n;
  }
  OTA_TRY((*p)->finish());
  Bytes all = std::move(prefix);
  all.insert(all.end(), out.data().begin(), out.data().end());
  return all;
}

class Resume : public testing::TestWithParam<std::tuple<Compression, PredictorChoice, RecordLayout>> {};

TEST_P(Resume, FromEveryFrameBoundaryFeedingOrJumping) {
  auto [compression, predictor, layout] = GetParam();
  Case c = make_case(compression, predictor, 50'000, 300, layout);
  ASSERT_GE(c.points.size(), 5u);
  for (bool jump : {false, true}) {
    for (const auto& rp : c.points) {
      Bytes prefix(c.new_image.begin(), c.new_image.begin() + static_cast<std::ptrdiff_t>(rp.new_offset));
      auto got = resume(c, rp, jump, prefix, 777);
      ASSERT_TRUE(got) << "frame " << rp.frame << (jump ? " (jump)" : " (feed)") << ": " << got.error().message;
      EXPECT_EQ(*got, c.new_image) << "frame " << rp.frame;
    }
  }
  // Resuming from the very start is a plain apply.
  auto got = resume(c, ResumePoint{}, false, {}, 500);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, c.new_image);
}

INSTANTIATE_TEST_SUITE_P(All, Resume,
                         testing::Combine(testing::Values(Compression::kNone, Compression::kZstd, Compression::kZstdOld,
                                                          Compression::kLzma, Compression::kLzmaOld),
                                          testing::Values(PredictorChoice::kNone, PredictorChoice::kX86),
                                          testing::Values(RecordLayout::kBlocks, RecordLayout::kInterleaved)));

TEST(ResumeErrors, CorruptedPrefixIsNewMismatch) {
  Case c = make_case(Compression::kZstd, PredictorChoice::kNone, 30'000, 310);
  const auto& rp = c.points[c.points.size() / 2];
  Bytes prefix(c.new_image.begin(), c.new_image.begin() + static_cast<std::ptrdiff_t>(rp.new_offset));
  prefix[prefix.size() / 2] ^= 0x40;
  auto got = resume(c, rp, true, prefix);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kNewMismatch);
}

TEST(ResumeErrors, PointThatDoesNotFitThePatchIsRefused) {
  Case c = make_case(Compression::kZstd, PredictorChoice::kNone, 30'000, 320);
  ResumePoint rp = c.points[1];
  rp.new_offset += 1;  // not a frame boundary
  Bytes prefix(c.new_image.begin(), c.new_image.begin() + static_cast<std::ptrdiff_t>(rp.new_offset));
  auto got = resume(c, rp, false, prefix);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kUsage);
}

TEST(ResumeErrors, MissingPrefixIsRefused) {
  Case c = make_case(Compression::kZstd, PredictorChoice::kNone, 30'000, 330);
  MemorySource old_source(c.old_image);
  VectorWriter out;
  delta::PatchOptions po;
  po.resume = c.points[2];
  auto p = delta::Patcher::create(old_source, out, po);
  ASSERT_TRUE(p);
  auto st = (*p)->feed(c.patch);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUsage);
}

TEST(ResumeErrors, SkipIsOnlyForResuming) {
  Case c = make_case(Compression::kZstd, PredictorChoice::kNone, 30'000, 340);
  MemorySource old_source(c.old_image);
  VectorWriter out;
  auto p = delta::Patcher::create(old_source, out, {});
  ASSERT_TRUE(p);
  auto st = (*p)->skip(10);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUsage);
}

TEST(ResumeErrors, WrongResumeOffsetIsCaught) {
  // A resume offset in the middle of a frame decodes garbage: the patch
  // fails (malformed, truncated or a hash mismatch), never succeeds.
  Case c = make_case(Compression::kZstd, PredictorChoice::kNone, 30'000, 350);
  ResumePoint rp = c.points[2];
  rp.patch_offset += 3;
  Bytes prefix(c.new_image.begin(), c.new_image.begin() + static_cast<std::ptrdiff_t>(rp.new_offset));
  auto got = resume(c, rp, false, prefix);
  EXPECT_FALSE(got);
}

}  // namespace
}  // namespace ota
