// delta::Patcher and delta::apply: the decoder window limit, callbacks,
// header access, and errors from the Source, the Writer and the Reader around it.
#include "unit/patcher_fixture.hpp"

namespace ota {
namespace {

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
