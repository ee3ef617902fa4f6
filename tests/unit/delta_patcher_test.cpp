// delta::Patcher and delta::apply: OLD checks, options, callbacks, header access,
// and errors from the Source, the Writer and the Reader around it.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::Compression;

struct Fixture {
  Bytes old_image;
  Bytes new_image;
  Bytes patch;
};

Fixture make_fixture(Compression compression = Compression::kZstd, std::uint8_t frame_log = 12,
                     std::size_t size = 40'000) {
  Fixture f;
  f.old_image = test::structured_bytes(size, 200);
  f.new_image = test::with_insertion(test::with_random_edits(f.old_image, 60, 201), size / 3,
                                     test::random_bytes(500, 202));
  auto patch = test::make_patch(f.old_image, f.new_image, test::fast_options(compression, frame_log));
  EXPECT_TRUE(patch);
  if (patch) f.patch = *patch;
  return f;
}

// Counts the bytes read through it; optionally fails every read.
class CountingSource final : public Source {
 public:
  explicit CountingSource(ByteSpan data, bool broken = false) : inner_(data), broken_(broken) {}
  std::uint64_t size() const override { return inner_.size(); }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override {
    if (broken_) return fail(ErrorCode::kIo, "bad sector");
    bytes_read += out.size();
    return inner_.read_at(offset, out);
  }
  mutable std::uint64_t bytes_read = 0;

 private:
  MemorySource inner_;
  bool broken_;
};

// ---- wrong OLD ----

TEST(WrongOld, SameSizeDifferentBytes) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  wrong[wrong.size() / 2] ^= 0x01;
  MemorySource old_source(wrong);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(old_source, reader, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kOldMismatch) << test::describe(st);
  EXPECT_EQ(out.position(), 0u) << "nothing is written before OLD is verified";
}

TEST(WrongOld, DifferentSize) {
  Fixture f = make_fixture();
  for (Bytes wrong : {Bytes(f.old_image.begin(), f.old_image.end() - 1), test::concat(f.old_image, Bytes{0}),
                      Bytes{}}) {
    auto out = test::apply_patch(wrong, f.patch);
    ASSERT_FALSE(out) << wrong.size();
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
  }
}

TEST(WrongOld, DetectedWhateverTheCompression) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c);
    auto out = test::apply_patch(test::random_bytes(f.old_image.size(), 9), f.patch);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch);
  }
}

TEST(WrongOld, WithoutVerificationTheNewHashStillCatchesIt) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  for (std::size_t i = 0; i < wrong.size(); i += 97) wrong[i] ^= 0x20;
  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kNone;
  auto out = test::apply_patch(wrong, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kNewMismatch) << test::describe(fail(out.error()));
}

// ---- BaseCheck::kKnownHash / kNone ----

TEST(KnownOldHash, MismatchIsOldMismatch) {
  Fixture f = make_fixture();
  delta::PatchOptions opt;
  Digest other = content_hash(f.new_image);
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = other;
  MemorySource old_source(f.old_image);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(old_source, reader, out, opt);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kOldMismatch) << test::describe(st);
  EXPECT_EQ(out.position(), 0u);
}

TEST(KnownOldHash, MatchSkipsHashingOld) {
  // A patch that reads only a little of a big OLD: with the hash known, OLD is
  // not read front to back.
  Bytes old_image = test::random_bytes(1'000'000, 210);
  Bytes new_image = test::slice(old_image, 500'000, 10'000);
  auto patch = test::make_patch(old_image, new_image, test::fast_options());
  ASSERT_TRUE(patch);

  CountingSource verified(old_image);
  VectorWriter out1;
  MemoryReader r1(*patch);
  ASSERT_TRUE(delta::apply(verified, r1, out1));
  EXPECT_GE(verified.bytes_read, old_image.size()) << "default: OLD is hashed";

  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = content_hash(old_image);
  CountingSource trusted(old_image);
  VectorWriter out2;
  MemoryReader r2(*patch);
  Status st = delta::apply(trusted, r2, out2, opt);
  ASSERT_TRUE(st) << test::describe(st);
  EXPECT_TRUE(out2.data() == new_image);
  EXPECT_LT(trusted.bytes_read, old_image.size() / 4);

  delta::PatchOptions no_verify;
  no_verify.base_check = delta::BaseCheck::kNone;
  CountingSource unverified(old_image);
  VectorWriter out3;
  MemoryReader r3(*patch);
  ASSERT_TRUE(delta::apply(unverified, r3, out3, no_verify));
  EXPECT_TRUE(out3.data() == new_image);
  EXPECT_LT(unverified.bytes_read, old_image.size() / 4);
}

// ---- BaseCheck::kHashOnFailure ----

delta::PatchOptions on_failure() {
  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kHashOnFailure;
  return opt;
}

TEST(OldCheckOnFailure, CorrectOldIsReadOnlyWhereThePatchUsesIt) {
  // NEW keeps the first third of OLD: a successful patch never hashes all of OLD.
  Bytes old_image = test::random_bytes(300'000, 260);
  Bytes new_image = test::with_random_edits(test::slice(old_image, 0, 100'000), 20, 261);
  auto patch = test::make_patch(old_image, new_image, test::fast_options(Compression::kZstd, 12));
  ASSERT_TRUE(patch);
  CountingSource counting(old_image);
  MemoryReader reader(*patch);
  VectorWriter out;
  ASSERT_TRUE(delta::apply(counting, reader, out, on_failure()));
  EXPECT_TRUE(out.data() == new_image);
  EXPECT_LT(counting.bytes_read, old_image.size() / 2);
}

TEST(OldCheckOnFailure, WrongOldIsStillOldMismatch) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c);
    Bytes wrong = f.old_image;
    wrong[321] ^= 0x40;
    auto out = test::apply_patch(wrong, f.patch, on_failure());
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
    // ... and explains a damaged patch too.
    auto damaged = test::apply_patch(wrong, Bytes(f.patch.begin(), f.patch.end() - 3), on_failure());
    ASSERT_FALSE(damaged);
    EXPECT_EQ(damaged.error().code, ErrorCode::kOldMismatch) << test::describe(fail(damaged.error()));
  }
}

TEST(OldCheckOnFailure, WithTheRightOldTheDamageIsReported) {
  Fixture f = make_fixture();
  auto truncated = test::apply_patch(f.old_image, Bytes(f.patch.begin(), f.patch.end() - 5), on_failure());
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code, ErrorCode::kPatchTruncated);
  auto trailing = test::apply_patch(f.old_image, test::concat(f.patch, Bytes{1, 2}), on_failure());
  ASSERT_FALSE(trailing);
  EXPECT_EQ(trailing.error().code, ErrorCode::kPatchMalformed);
}

// ---- hash_in_background ----

delta::PatchOptions background(delta::PatchOptions opt = {}) {
  opt.hash_in_background = true;
  return opt;
}

TEST(BackgroundHash, AppliesWhateverTheChunking) {
  // NEW of 300 KB crosses the ring of hash buffers many times.
  Bytes old_image = test::structured_bytes(300'000, 270);
  Bytes new_image = test::with_insertion(test::with_random_edits(old_image, 200, 271), 1000, test::random_bytes(70'000, 272));
  auto patch = test::make_patch(old_image, new_image, test::fast_options(Compression::kZstd, 14));
  ASSERT_TRUE(patch);
  auto whole = test::apply_patch(old_image, *patch, background());
  ASSERT_TRUE(whole) << test::describe(fail(whole.error()));
  EXPECT_TRUE(*whole == new_image);
  for (std::size_t step : {std::size_t{1}, std::size_t{777}, std::size_t{40'000}}) {
    auto chunked = test::apply_in_chunks(old_image, *patch, [step](std::size_t left) { return std::min(left, step); },
                                         background(on_failure()));
    ASSERT_TRUE(chunked) << step << ": " << test::describe(fail(chunked.error()));
    EXPECT_TRUE(*chunked == new_image) << step;
  }
}

TEST(BackgroundHash, AWrongResultIsNewMismatch) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  for (std::size_t i = 0; i < wrong.size(); i += 101) wrong[i] ^= 0x08;
  delta::PatchOptions opt = background();
  opt.base_check = delta::BaseCheck::kNone;
  auto out = test::apply_patch(wrong, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kNewMismatch) << test::describe(fail(out.error()));
}

TEST(BackgroundHash, DestroyedMidwayDoesNotHang) {
  Fixture f = make_fixture(Compression::kZstd, 12, 200'000);
  for (std::size_t cut : {std::size_t{50}, f.patch.size() / 3, f.patch.size() - 1}) {
    MemorySource old_source(f.old_image);
    VectorWriter out;
    auto p = delta::Patcher::create(old_source, out, background());
    ASSERT_TRUE(p);
    ASSERT_TRUE((*p)->feed(ByteSpan(f.patch.data(), cut)));
  }  // each Patcher is dropped with its hashing thread running
}

TEST(BackgroundHash, WriterErrorStopsThePatchAndCountsOnlyAcceptedBytes) {
  // The background thread writes: its first Writer error ends the patch, is
  // reported with context, and new_written() equals what the Writer accepted.
  Fixture f = make_fixture(Compression::kZstd, 12, 300'000);
  for (std::uint64_t limit : {std::uint64_t{0}, std::uint64_t{40'000}, std::uint64_t{200'000}}) {
    MemorySource old_source(f.old_image);
    test::FullDiskWriter out(limit);
    auto p = delta::Patcher::create(old_source, out, background());
    ASSERT_TRUE(p);
    Status st = ok();
    for (std::size_t off = 0; off < f.patch.size() && st; off += 999)
      st = (*p)->feed(ByteSpan(f.patch.data() + off, std::min<std::size_t>(999, f.patch.size() - off)));
    if (st) st = (*p)->finish();
    ASSERT_FALSE(st) << limit;
    EXPECT_EQ(st.error().code, ErrorCode::kIo) << limit;
    EXPECT_NE(st.error().message.find("writing NEW"), std::string::npos) << st.error().message;
    EXPECT_EQ((*p)->new_written(), out.position()) << limit;
    EXPECT_LE(out.position(), limit);
  }
}

// ---- BaseCheck::kHashWhilePatching ----

delta::PatchOptions concurrent() {
  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kHashWhilePatching;
  return opt;
}

TEST(ConcurrentOldCheck, CorrectOldApplies) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c);
    auto out = test::apply_patch(f.old_image, f.patch, concurrent());
    ASSERT_TRUE(out) << test::describe(fail(out.error()));
    EXPECT_TRUE(*out == f.new_image);
    auto chunked = test::apply_in_chunks(f.old_image, f.patch, [](std::size_t left) { return std::min<std::size_t>(left, 7); },
                                         concurrent());
    ASSERT_TRUE(chunked);
    EXPECT_TRUE(*chunked == f.new_image);
  }
}

TEST(ConcurrentOldCheck, WrongOldIsStillOldMismatch) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  wrong[123] ^= 0x01;
  auto out = test::apply_patch(wrong, f.patch, concurrent());
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
}

TEST(ConcurrentOldCheck, WrongOldExplainsOtherFailures) {
  // A wrong OLD and a damaged patch: the wrong OLD is reported as the cause.
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  wrong[5] ^= 0x01;
  for (const Bytes& patch : {Bytes(f.patch.begin(), f.patch.end() - 5), test::concat(f.patch, Bytes{0})}) {
    auto out = test::apply_patch(wrong, patch, concurrent());
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
  }
  // With the right OLD the damage itself is reported.
  auto truncated = test::apply_patch(f.old_image, Bytes(f.patch.begin(), f.patch.end() - 5), concurrent());
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code, ErrorCode::kPatchTruncated);
}

TEST(ConcurrentOldCheck, OldReadErrorPropagates) {
  Fixture f = make_fixture();
  CountingSource broken(f.old_image, /*broken=*/true);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(broken, reader, out, concurrent());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo) << test::describe(st);
}

TEST(ConcurrentOldCheck, DestroyedMidwayDoesNotHang) {
  // A big OLD keeps the checking thread busy; dropping the Patcher must stop it.
  Bytes old_image = test::random_bytes(3'000'000, 250);
  Bytes new_image = test::slice(old_image, 0, 100'000);
  auto patch = test::make_patch(old_image, new_image, test::fast_options(Compression::kZstd, 12));
  ASSERT_TRUE(patch);
  for (std::size_t cut : {std::size_t{10}, std::size_t{200}, patch->size() / 2}) {
    MemorySource old_source(old_image);
    VectorWriter out;
    auto p = delta::Patcher::create(old_source, out, concurrent());
    ASSERT_TRUE(p);
    ASSERT_TRUE((*p)->feed(ByteSpan(patch->data(), cut)));
  }
}

TEST(ConcurrentOldCheck, KnownHashTakesPrecedence) {
  Fixture f = make_fixture();
  delta::PatchOptions opt = concurrent();
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = content_hash(f.new_image);  // wrong on purpose
  auto out = test::apply_patch(f.old_image, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch);
}

// ---- decoder window limit ----

TEST(MaxWindowLog, SmallerThanTheHeaderWindowIsLimitExceeded) {
  Bytes old_image = test::structured_bytes(20'000, 220);
  Bytes new_image = test::with_random_edits(old_image, 30, 221);
  delta::DiffOptions dopt = test::fast_options(Compression::kZstd);
  dopt.window_log = 20;
  auto patch = test::make_patch(old_image, new_image, dopt);
  ASSERT_TRUE(patch);
  const std::uint8_t too_small[] = {10, 15, 19};
  for (std::uint8_t limit : too_small) {
    delta::PatchOptions opt;
    opt.max_window_log = limit;
    VectorWriter out;
    MemorySource old_source(old_image);
    MemoryReader reader(*patch);
    Status st = delta::apply(old_source, reader, out, opt);
    ASSERT_FALSE(st) << int(limit);
    EXPECT_EQ(st.error().code, ErrorCode::kLimitExceeded) << test::describe(st);
    EXPECT_EQ(out.position(), 0u);
  }
  const std::uint8_t enough[] = {20, 27};
  for (std::uint8_t limit : enough) {
    delta::PatchOptions opt;
    opt.max_window_log = limit;
    auto out = test::apply_patch(old_image, *patch, opt);
    ASSERT_TRUE(out) << int(limit) << ": " << test::describe(fail(out.error()));
    EXPECT_TRUE(*out == new_image);
  }
}

TEST(MaxWindowLog, HeaderWindowAboveTheDefaultLimitIsRefused) {
  // A hand-edited header asking for a 2^31 window: valid syntax, over the default limit of 2^27.
  Fixture f = make_fixture(Compression::kZstd);
  auto h = delta::parse_header(f.patch);
  ASSERT_TRUE(h);
  Bytes patch = f.patch;
  patch[5] = 31;
  auto out = test::apply_patch(f.old_image, patch);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kLimitExceeded) << test::describe(fail(out.error()));
}

TEST(MaxWindowLog, UncompressedPatchesNeedNoWindow) {
  Fixture f = make_fixture(Compression::kNone);
  delta::PatchOptions opt;
  opt.max_window_log = 10;
  auto out = test::apply_patch(f.old_image, f.patch, opt);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == f.new_image);
}

// ---- on_frame and progress ----

std::vector<delta::ResumePoint> resume_points(const Fixture& f, std::size_t chunk) {
  std::vector<delta::ResumePoint> points;
  delta::PatchOptions opt;
  opt.on_frame = [&](const delta::ResumePoint& p) {
    points.push_back(p);
    return ok();
  };
  auto out = test::apply_in_chunks(f.old_image, f.patch, [&](std::size_t left) { return std::min(left, chunk); }, opt);
  EXPECT_TRUE(out) << test::describe(fail(out.error()));
  if (out) {
    EXPECT_TRUE(*out == f.new_image);
  }
  return points;
}

TEST(OnFrame, OncePerFrameWithIncreasingOffsets) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c, 12);
    const std::uint64_t frames = (f.new_image.size() + 4095) / 4096;
    ASSERT_GT(frames, 5u);
    auto points = resume_points(f, f.patch.size());
    ASSERT_EQ(points.size(), frames);
    for (std::size_t i = 0; i < points.size(); ++i) {
      EXPECT_EQ(points[i].frame, i + 1) << "the resume point is the start of the next frame";
      EXPECT_EQ(points[i].new_offset, std::min<std::uint64_t>((i + 1) * 4096, f.new_image.size()));
      if (i) {
        EXPECT_GT(points[i].patch_offset, points[i - 1].patch_offset);
        EXPECT_GT(points[i].new_offset, points[i - 1].new_offset);
      }
    }
    EXPECT_EQ(points.back().patch_offset, f.patch.size());
    EXPECT_EQ(points.back().new_offset, f.new_image.size());
  }
}

TEST(OnFrame, SamePointsWhateverTheChunking) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c, 12);
    auto whole = resume_points(f, f.patch.size());
    for (std::size_t chunk : {1, 13, 4096}) {
      auto chunked = resume_points(f, chunk);
      ASSERT_EQ(chunked.size(), whole.size()) << chunk;
      for (std::size_t i = 0; i < whole.size(); ++i) {
        EXPECT_EQ(chunked[i].frame, whole[i].frame);
        EXPECT_EQ(chunked[i].patch_offset, whole[i].patch_offset) << "chunk " << chunk << " frame " << i;
        EXPECT_EQ(chunked[i].new_offset, whole[i].new_offset);
      }
    }
  }
}

TEST(OnFrame, PatchOffsetIsWhereTheNextFrameStarts) {
  // Cutting the patch at a resume point leaves a prefix that ends exactly after a
  // frame: feeding it writes exactly new_offset bytes.
  Fixture f = make_fixture(Compression::kZstd, 12);
  auto points = resume_points(f, f.patch.size());
  ASSERT_GE(points.size(), 3u);
  const auto& p = points[1];
  MemorySource old_source(f.old_image);
  VectorWriter out;
  auto patcher = delta::Patcher::create(old_source, out);
  ASSERT_TRUE(patcher);
  ASSERT_TRUE((*patcher)->feed(ByteSpan(f.patch.data(), p.patch_offset)));
  EXPECT_EQ((*patcher)->new_written(), p.new_offset);
  EXPECT_TRUE(std::equal(out.data().begin(), out.data().end(), f.new_image.begin()));
}

TEST(OnFrame, ErrorFromCallbackStopsThePatch) {
  Fixture f = make_fixture(Compression::kZstd, 12);
  int calls = 0;
  delta::PatchOptions opt;
  opt.on_frame = [&](const delta::ResumePoint&) -> Status {
    if (++calls == 2) return fail(ErrorCode::kCancelled, "power is low");
    return ok();
  };
  auto out = test::apply_patch(f.old_image, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(calls, 2) << "no frame after a refused checkpoint";
}

TEST(OnFrame, EmptyNewHasNoFrames) {
  Bytes old_image = test::random_bytes(1000, 230);
  auto patch = test::make_patch(old_image, {}, test::fast_options());
  ASSERT_TRUE(patch);
  int calls = 0;
  delta::PatchOptions opt;
  opt.on_frame = [&](const delta::ResumePoint&) {
    ++calls;
    return ok();
  };
  auto out = test::apply_patch(old_image, *patch, opt);
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->empty());
  EXPECT_EQ(calls, 0);
}

TEST(Progress, MonotonicAndEndsAtNewSize) {
  Fixture f = make_fixture(Compression::kZstd, 12, 3'000'000);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
  delta::PatchOptions opt;
  opt.progress = [&](std::uint64_t done, std::uint64_t total) { calls.emplace_back(done, total); };
  auto out = test::apply_patch(f.old_image, f.patch, opt);
  ASSERT_TRUE(out);
  ASSERT_GE(calls.size(), 2u);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, f.new_image.size());
    if (i) {
      EXPECT_GT(calls[i].first, calls[i - 1].first);
    }
  }
  EXPECT_EQ(calls.back().first, f.new_image.size());
}

// ---- header access, new_written, read_header, parse_header ----

TEST(PatcherState, HeaderAvailableOnceParsed) {
  Fixture f = make_fixture();
  auto parsed = delta::parse_header(f.patch);
  ASSERT_TRUE(parsed);
  const std::size_t header_size = parsed->second;
  MemorySource old_source(f.old_image);
  VectorWriter out;
  auto p = delta::Patcher::create(old_source, out);
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)->header(), nullptr);
  ASSERT_TRUE((*p)->feed(ByteSpan(f.patch.data(), header_size - 1)));
  EXPECT_EQ((*p)->header(), nullptr);
  EXPECT_EQ((*p)->new_written(), 0u);
  ASSERT_TRUE((*p)->feed(ByteSpan(f.patch.data() + header_size - 1, 1)));
  ASSERT_NE((*p)->header(), nullptr);
  EXPECT_EQ((*p)->header()->new_size, f.new_image.size());
  EXPECT_EQ((*p)->header()->new_hash, content_hash(f.new_image));
  ASSERT_TRUE((*p)->feed(ByteSpan(f.patch).subspan(header_size)));
  EXPECT_EQ((*p)->new_written(), f.new_image.size());
  ASSERT_TRUE((*p)->finish());
  EXPECT_TRUE(out.data() == f.new_image);
}

TEST(PatcherState, FinishWithoutFeedIsTruncated) {
  MemorySource old_source{ByteSpan{}};
  VectorWriter out;
  auto p = delta::Patcher::create(old_source, out);
  ASSERT_TRUE(p);
  Status st = (*p)->finish();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kPatchTruncated);
}

TEST(ReadHeader, ReadsOnlyTheHeader) {
  Fixture f = make_fixture();
  auto parsed = delta::parse_header(f.patch);
  ASSERT_TRUE(parsed);
  MemoryReader reader(f.patch);
  auto h = delta::read_header(reader);
  ASSERT_TRUE(h) << test::describe(fail(h.error()));
  EXPECT_EQ(h->new_size, f.new_image.size());
  EXPECT_EQ(h->old_hash, content_hash(f.old_image));
  // The reader is left right after the header.
  Bytes rest(f.patch.size());
  auto n = reader.read(rest);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, f.patch.size() - parsed->second);
}

TEST(ReadHeader, TruncatedAndGarbage) {
  Fixture f = make_fixture();
  auto parsed = delta::parse_header(f.patch);
  ASSERT_TRUE(parsed);
  for (std::size_t len = 0; len < parsed->second; ++len) {
    MemoryReader reader(ByteSpan(f.patch.data(), len));
    auto h = delta::read_header(reader);
    ASSERT_FALSE(h) << len;
    EXPECT_EQ(h.error().code, ErrorCode::kPatchTruncated) << len << ": " << h.error().message;
  }
  Bytes garbage = test::random_bytes(200, 240);
  garbage[0] = 'X';
  MemoryReader reader(garbage);
  auto h = delta::read_header(reader);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, ErrorCode::kPatchMalformed);
}

TEST(ParseHeader, EveryPrefixIsTruncated) {
  Fixture f = make_fixture();
  auto parsed = delta::parse_header(f.patch);
  ASSERT_TRUE(parsed);
  for (std::size_t len = 0; len < parsed->second; ++len) {
    auto h = delta::parse_header(ByteSpan(f.patch.data(), len));
    ASSERT_FALSE(h) << len;
    EXPECT_EQ(h.error().code, ErrorCode::kPatchTruncated) << len;
  }
}

TEST(ParseHeader, EmptyInput) {
  auto h = delta::parse_header(ByteSpan{});
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, ErrorCode::kPatchTruncated);
}

TEST(ParseHeader, WrongMagicWithinTheFirstBytes) {
  for (Bytes b : {Bytes{'X'}, Bytes{'O', 'X'}, Bytes{'O', 'T', 'X'}, Bytes{'B', 'S', 'D', 'I', 'F', 'F', '4', '0'}}) {
    auto h = delta::parse_header(b);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code, ErrorCode::kPatchMalformed) << b.size();
  }
}

// ---- errors from around the patcher ----

using FailingWriter = test::FullDiskWriter;

TEST(Surroundings, WriterErrorPropagatesWithContext) {
  Fixture f = make_fixture();
  MemorySource old_source(f.old_image);
  MemoryReader reader(f.patch);
  FailingWriter out(10'000);
  Status st = delta::apply(old_source, reader, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_NE(st.error().message.find("no space left on device"), std::string::npos) << st.error().message;
}

TEST(Surroundings, OldReadErrorPropagates) {
  Fixture f = make_fixture();
  CountingSource broken(f.old_image, /*broken=*/true);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(broken, reader, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo) << "hashing OLD fails first";

  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = content_hash(f.old_image);
  MemoryReader reader2(f.patch);
  VectorWriter out2;
  Status st2 = delta::apply(broken, reader2, out2, opt);
  ASSERT_FALSE(st2);
  EXPECT_EQ(st2.error().code, ErrorCode::kIo) << "then reading OLD for a COPY fails";
}

class FailingReader final : public Reader {
 public:
  explicit FailingReader(ByteSpan data) : data_(data) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    if (pos_ >= data_.size() / 2) return fail(ErrorCode::kIo, "connection reset");
    std::size_t n = std::min({out.size(), data_.size() / 2 - pos_, std::size_t{100}});
    std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(pos_), n, out.begin());
    pos_ += n;
    return n;
  }

 private:
  ByteSpan data_;
  std::size_t pos_ = 0;
};

TEST(Surroundings, PatchReadErrorPropagates) {
  Fixture f = make_fixture();
  MemorySource old_source(f.old_image);
  FailingReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(old_source, reader, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_NE(st.error().message.find("connection reset"), std::string::npos);
}

}  // namespace
}  // namespace ota
