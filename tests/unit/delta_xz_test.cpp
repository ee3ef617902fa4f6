// Format version 6: images holding xz streams (a squashfs with xz blocks) are
// diffed with the streams expanded, and the patcher re-encodes NEW's streams
// byte for byte. Round trip, the streams left alone, resume at every frame
// boundary, a wrong OLD, damaged tables, truncation and the memory limit.
#include <gtest/gtest.h>
#include <lzma.h>

#include <string>
#include <vector>

#include "delta/codec/xz.hpp"
#include "delta/xz_tables.hpp"
#include "ota/delta/delta.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using codec::XzParams;
using delta::ResumePoint;

// Text-like bytes: words from a small vocabulary (compress like files do).
Bytes words(std::size_t n, std::uint64_t seed) {
  static const char* kWords[] = {"update", "bank", "frame", "delta", "stream", "device", "image", "hash",
                                 "signed", "rollout", "wave", "agent", "broker", "kernel", "rootfs", "block"};
  Bytes out;
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  while (out.size() < n) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const std::string w = std::string(kWords[x % 16]) + ((x >> 8) % 7 == 0 ? ".\n" : " ");
    out.insert(out.end(), w.begin(), w.end());
  }
  out.resize(n);
  return out;
}

Bytes encode(ByteSpan data, const XzParams& p) {
  Bytes out(data.size() + 4096);
  auto n = codec::xz_encode(data, p, out);
  EXPECT_TRUE(n);
  out.resize(n ? *n : 0);
  return out;
}

// An xz stream liblzma's presets do not make again (lc=4, nice_len 100).
Bytes unusual_stream(ByteSpan data) {
  lzma_options_lzma lz{};
  lzma_lzma_preset(&lz, 6);
  lz.lc = 4;
  lz.lp = 0;
  lz.nice_len = 100;
  lzma_filter f[] = {{LZMA_FILTER_LZMA2, &lz}, {LZMA_VLI_UNKNOWN, nullptr}};
  Bytes out(data.size() + 4096);
  std::size_t pos = 0;
  EXPECT_EQ(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC64, nullptr, data.data(), data.size(), out.data(), &pos,
                                      out.size()),
            LZMA_OK);
  out.resize(pos);
  return out;
}

XzParams squashfs_like() {
  XzParams p;
  p.dict_size = 32 * 1024;
  return p;
}

XzParams zstd_like() {  // mksquashfs -comp zstd
  XzParams p;
  p.codec = codec::StreamCodec::kZstd;
  p.preset = 15;
  return p;
}

XzParams gzip_like() {  // mksquashfs -comp gzip: level 9, default strategy
  XzParams p;
  p.codec = codec::StreamCodec::kZlib;
  p.preset = 9;
  return p;
}

XzParams xz_tool_like() {
  XzParams p;
  p.preset = 9;
  p.extreme = true;
  p.check = 4;
  p.dict_size = 1 << 20;
  p.bcj = 4;  // x86
  p.stream_encoder = true;
  return p;
}

// A "filesystem": a raw superblock, blocks of 20..40 KiB each as one xz
// stream (every fourth from the third a zstd frame, from the fifth a zlib
// stream) behind a 2-byte length,
// one stream of xz(1)'s kind, one that no preset reproduces, and raw tables
// at the end. NEW: half the blocks edited
// a little, a small one inserted, one gone.
struct Pair {
  Bytes old_image, new_image;
  std::size_t reencodable = 0;  // NEW's streams that liblzma makes again
};

Pair make_pair_of_images() {
  std::vector<Bytes> old_blocks, new_blocks;
  for (std::uint64_t i = 0; i < 12; ++i) old_blocks.push_back(test::structured_bytes(20'000 + 1'700 * i, i + 1));
  new_blocks = old_blocks;
  for (std::size_t i : {1u, 2u, 4u, 7u, 8u, 11u}) {
    Bytes& b = new_blocks[i];
    const Bytes fresh = test::random_bytes(100, 100 + i);
    std::copy(fresh.begin(), fresh.end(), b.begin() + static_cast<std::ptrdiff_t>(b.size() / 3));
  }
  new_blocks.insert(new_blocks.begin() + 5, test::structured_bytes(2'000, 77));
  new_blocks.erase(new_blocks.begin() + 9);
  auto build = [](const std::vector<Bytes>& blocks, std::uint64_t seed, std::size_t* reencodable) {
    Bytes img = test::random_bytes(1000, seed);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const Bytes s = i == 3    ? encode(blocks[i], xz_tool_like())
                      : i == 10 ? unusual_stream(blocks[i])
                      : i % 4 == 2 ? encode(blocks[i], zstd_like())
                      : i % 4 == 0 && i > 0 ? encode(blocks[i], gzip_like())
                                            : encode(blocks[i], squashfs_like());
      img.push_back(static_cast<std::uint8_t>(s.size()));
      img.push_back(static_cast<std::uint8_t>(s.size() >> 8));
      img.insert(img.end(), s.begin(), s.end());
      if (reencodable && i != 10) ++*reencodable;
    }
    const Bytes tail = words(3000, seed + 5);
    img.insert(img.end(), tail.begin(), tail.end());
    return img;
  };
  Pair p;
  p.old_image = build(old_blocks, 1, nullptr);
  p.new_image = build(new_blocks, 1, &p.reencodable);
  return p;
}

const Pair& pair() {
  static const Pair p = make_pair_of_images();
  return p;
}

delta::DiffOptions options(std::uint8_t frame_log = 16) {
  auto opt = test::fast_options(delta::Compression::kLzma, frame_log);
  return opt;
}

TEST(XzStreams, FindsTheStreamsAndTheSettingsThatMakeThemAgain) {
  const auto found = codec::find_xz_streams(pair().new_image, delta::kMaxXzSegment, true);
  ASSERT_EQ(found.size(), 12u);
  EXPECT_EQ(found[0].offset, 1002u);
  ASSERT_TRUE(found[0].params);
  XzParams want = squashfs_like();
  EXPECT_EQ(*found[0].params, want);
  ASSERT_TRUE(found[3].params);  // presets 6 to 9 differ only in the dictionary, which the stream gives
  XzParams tool = xz_tool_like();
  tool.preset = 6;
  EXPECT_EQ(*found[3].params, tool);
  EXPECT_FALSE(found[10].params);  // lc=4: no preset makes it
  ASSERT_TRUE(found[6].params);
  EXPECT_EQ(found[6].codec, codec::StreamCodec::kZstd);
  EXPECT_EQ(*found[6].params, zstd_like());
  ASSERT_TRUE(found[4].params);
  EXPECT_EQ(found[4].codec, codec::StreamCodec::kZlib);
  EXPECT_EQ(*found[4].params, gzip_like());
}

TEST(XzDelta, RoundTripIsVersion6AndFarSmallerThanThePlainDelta) {
  VectorWriter out;
  auto stats = delta::diff(pair().old_image, pair().new_image, out, options());
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->version, delta::kRecompressFormatVersion);
  EXPECT_EQ(stats->new_streams, pair().reencodable);
  EXPECT_EQ(stats->old_streams, 11u);  // not the one NEW has unchanged and cannot re-encode
  EXPECT_EQ(stats->patch_size, out.data().size());
  auto got = test::apply_patch(pair().old_image, out.data());
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, pair().new_image);

  auto plain_opt = options();
  plain_opt.recompress = false;
  auto plain = test::make_patch(pair().old_image, pair().new_image, plain_opt);
  ASSERT_TRUE(plain);
  EXPECT_LT(out.data().size() * 5, plain->size()) << out.data().size() << " vs " << plain->size() << " copy " << stats->copy_bytes << " add " << stats->add_bytes << " insert " << stats->insert_bytes << " records " << stats->records;

  auto h = delta::parse_header(out.data());
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->first.recompress);
  EXPECT_EQ(h->first.old_size, pair().old_image.size());
  EXPECT_EQ(h->first.new_size, pair().new_image.size());
  EXPECT_EQ(h->first.new_hash, content_hash(pair().new_image));
  EXPECT_EQ(h->first.expanded_new_size, stats->expanded_new_size);
  EXPECT_EQ(delta::encode_header(h->first), Bytes(out.data().begin(), out.data().begin() + h->second));
}

TEST(XzDelta, ImagesWithoutEnoughStreamsKeepTheirVersion) {
  const Bytes old_image = words(200'000, 1), new_image = words(200'000, 2);
  VectorWriter out;
  auto stats = delta::diff(old_image, new_image, out, options());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->version, delta::kLzmaFormatVersion);
}

struct Applied {
  Bytes patch;
  std::vector<ResumePoint> points;
};

const Applied& applied() {
  static const Applied a = [] {
    Applied r;
    auto patch = test::make_patch(pair().old_image, pair().new_image, options(16));
    EXPECT_TRUE(patch);
    r.patch = *patch;
    delta::PatchOptions po;
    po.on_frame = [&](const ResumePoint& rp) {
      r.points.push_back(rp);
      return ok();
    };
    auto out = test::apply_patch(pair().old_image, r.patch, po);
    EXPECT_TRUE(out && *out == pair().new_image);
    return r;
  }();
  return a;
}

Result<Bytes> resume(const ResumePoint& rp, bool jump, Bytes prefix) {
  MemorySource old_source(pair().old_image);
  MemorySource written(prefix);
  VectorWriter out;
  delta::PatchOptions po;
  po.resume = rp;
  po.written_prefix = &written;
  OTA_TRY_ASSIGN(auto p, delta::Patcher::create(old_source, out, po));
  const Bytes& patch = applied().patch;
  std::size_t at = 0;
  while (at < patch.size()) {
    if (jump && p->header() && p->next_offset() > at) {
      OTA_TRY(p->skip(p->next_offset() - at));
      at = static_cast<std::size_t>(p->next_offset());
      continue;
    }
    const std::size_t n = std::min<std::size_t>(999, patch.size() - at);
    OTA_TRY(p->feed(ByteSpan(patch.data() + at, n)));
    at += n;
  }
  OTA_TRY(p->finish());
  prefix.insert(prefix.end(), out.data().begin(), out.data().end());
  return prefix;
}

TEST(XzDelta, ResumesAtEveryFrameBoundaryWithTheRealNewOffset) {
  const auto& pts = applied().points;
  ASSERT_GE(pts.size(), 4u);
  for (const auto& rp : pts) {
    ASSERT_LE(rp.new_offset, pair().new_image.size());
    for (bool jump : {false, true}) {
      Bytes prefix(pair().new_image.begin(), pair().new_image.begin() + static_cast<std::ptrdiff_t>(rp.new_offset));
      auto got = resume(rp, jump, prefix);
      ASSERT_TRUE(got) << "frame " << rp.frame << ": " << got.error().message;
      EXPECT_EQ(*got, pair().new_image) << "frame " << rp.frame;
    }
  }
  // A damaged prefix, in raw bytes or inside a stream (which then does not
  // decode), is "new mismatch" at the end: what makes the agent start over.
  const auto& rp = pts[pts.size() / 2];
  ASSERT_GT(rp.new_offset, 1002u + 2000u);
  Bytes prefix(pair().new_image.begin(), pair().new_image.begin() + static_cast<std::ptrdiff_t>(rp.new_offset));
  Result<Bytes> got = Bytes{};
  for (std::size_t at : {std::size_t{500}, std::size_t{1002 + 1000}}) {  // the raw superblock; stream 0
    Bytes bad = prefix;
    bad[at] ^= 1;
    got = resume(rp, true, bad);
    ASSERT_FALSE(got) << at;
    EXPECT_EQ(got.error().code, ErrorCode::kNewMismatch) << at << ": " << got.error().message;
  }
  // A point that is not one of the patch's is refused.
  ResumePoint off = rp;
  off.new_offset += 1;
  prefix.push_back(0);
  got = resume(off, false, prefix);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kUsage);
}

TEST(XzDelta, AWrongOldIsNamedWhateverTheBaseCheck) {
  Bytes old_image = pair().old_image;
  old_image[1002 + 500] ^= 0x20;  // inside OLD's first stream
  for (auto check : {delta::BaseCheck::kHashFirst, delta::BaseCheck::kHashOnFailure,
                     delta::BaseCheck::kHashWhilePatching}) {
    delta::PatchOptions po;
    po.base_check = check;
    auto got = test::apply_patch(old_image, applied().patch, po);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code, ErrorCode::kOldMismatch) << got.error().message;
  }
}

TEST(XzDelta, EveryDamagedHeaderOrTableByteFailsCleanly) {
  const Bytes& patch = applied().patch;
  auto h = delta::parse_header(patch);
  ASSERT_TRUE(h);
  const std::size_t end = std::min<std::size_t>(patch.size(), h->second + 400);
  for (std::size_t i = 0; i < end; ++i) {
    Bytes bad = patch;
    bad[i] ^= 0x11;
    auto got = test::apply_patch(pair().old_image, bad);
    if (got) {
      EXPECT_EQ(*got, pair().new_image) << "byte " << i;
    }
  }
  for (std::size_t n = 0; n < end; n += 7) {
    auto got = test::apply_patch(pair().old_image, ByteSpan(patch).first(n));
    ASSERT_FALSE(got) << n;
    EXPECT_EQ(got.error().code, ErrorCode::kPatchTruncated) << n << ": " << got.error().message;
  }
}

TEST(XzDelta, SettingsThatNeedTooMuchMemoryAreRefused) {
  delta::PatchOptions po;
  po.max_xz_encoder_memory = 64 * 1024;
  auto got = test::apply_patch(pair().old_image, applied().patch, po);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kLimitExceeded);
}

// OLD: three streams of 64 KiB expanded, with 100 raw bytes before each.
std::vector<delta::detail::XzPiece> three_streams() {
  std::vector<codec::XzStream> s;
  for (std::uint64_t i = 0; i < 3; ++i) s.push_back({codec::StreamCodec::kXz, 100 + i * 1100, 1000, 65536, std::nullopt});
  return delta::detail::pieces_of(3400, s, false, 16);
}

TEST(XzLocality, ACoverIntoAStreamTheFrameBarelyReadsBecomesLiteralBytes) {
  using delta::detail::Block;
  const auto old = three_streams();  // expanded: raw [0,100), stream 0 [100, 65636), raw, stream 1 ...
  const std::uint64_t s1 = old[3].exp_offset;
  std::vector<Block> blocks = {
      {0, 200, 5000, 10},       // 5,000 bytes of stream 0, and 4,000 more below: kept
      {5010, 6000, 4000, 20},
      {9030, s1 + 10, 300, 40},  // 300 bytes of stream 1, nothing more: literal
      {9370, 9000, 2000, 0},     // stream 0 again, still cached: kept
  };
  delta::detail::keep_covers_local(old, 2, blocks);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[1].new_pos, 5010u);
  EXPECT_EQ(blocks[1].insert_len, 20u + 300u + 40u);  // the dropped cover and its literals
  EXPECT_EQ(blocks[2].new_pos, 9370u);
  EXPECT_EQ(blocks[2].add_len, 2000u);
}

TEST(XzLocality, AFirstCoverDroppedKeepsItsPlaceAsLiterals) {
  using delta::detail::Block;
  const auto old = three_streams();
  std::vector<Block> blocks = {{0, 300, 100, 5}, {105, old[5].exp_offset + 10, 9000, 0}};
  delta::detail::keep_covers_local(old, 2, blocks);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].add_len, 0u);
  EXPECT_EQ(blocks[0].insert_len, 105u);
  EXPECT_EQ(blocks[1].add_len, 9000u);
}

}  // namespace
}  // namespace ota
