// Golden byte vectors that pin the ota delta format (docs/formats.md), one
// comment per field. These are hand-built, not generator output: they must keep
// applying for as long as format versions 1 and 3 exist. If one of these fails,
// the format changed; that needs a new version number, not a new vector.
#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
using test::concat;

// ---------------------------------------------------------------------------
// Vector 0: the example of docs/formats.md ("Delta patch", "Example").
//   OLD = 00 01 02 03 04 05 06 07
//   NEW = 00 01 02 13 04 05 AA BB 06 07
// ---------------------------------------------------------------------------
const Bytes kOld0 = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
const Bytes kNew0 = {0x00, 0x01, 0x02, 0x13, 0x04, 0x05, 0xaa, 0xbb, 0x06, 0x07};

const Bytes kPatch0 = {
    0x4f, 0x54, 0x44,  // magic "OTD"
    0x01,              // version 1
    0x00,              // compression: none
    0x00,              // window_log: 0 (no compression)
    0x0c,              // frame_log: 12 (4 KiB frames)
    0x08,              // old_size 8
    0x0a,              // new_size 10
    // BLAKE2b-256(OLD)
    0x77, 0x06, 0x5d, 0x25, 0xb6, 0x22, 0xa8, 0x25, 0x10, 0x94, 0xd8, 0x69, 0xed, 0xf6, 0xb4, 0xe9,
    0xba, 0x07, 0x08, 0xa8, 0xdb, 0x1f, 0x23, 0x9c, 0xb6, 0x8e, 0x4e, 0xeb, 0x45, 0x85, 0x16, 0x21,
    // BLAKE2b-256(NEW)
    0xd4, 0x56, 0xda, 0xab, 0x63, 0xa6, 0x93, 0x3e, 0x25, 0x98, 0x97, 0x96, 0xa8, 0xd5, 0xb7, 0x7d,
    0x92, 0xbf, 0xb9, 0xbc, 0x90, 0x99, 0xbc, 0x21, 0xea, 0x3e, 0xc9, 0x79, 0x48, 0x0b, 0xcc, 0x87,
    0x00,              // frame 0, mode raw
    0x0c,              // COPY 3 (3 << 2 | 0)
    0x05, 0x10,        // ADD 1: 03 + 10 = 13
    0x08,              // COPY 2
    0x0a, 0xaa, 0xbb,  // INSERT 2: aa bb
    0x00,              // COPY to the end of the frame (06 07)
};

// ---------------------------------------------------------------------------
// Vector 1: no compression, one frame, every record type.
//   OLD = "0123456789abcdef" (16 bytes)
//   NEW = "NEW" "0123" "bcb" "ABCDEFGHIJKLMNOPQRSTUVWXYZ-+*/=!" "01234" (47 bytes)
// ---------------------------------------------------------------------------
const Bytes kOld1 = text("0123456789abcdef");
const Bytes kNew1 = text("NEW0123bcbABCDEFGHIJKLMNOPQRSTUVWXYZ-+*/=!01234");

const Bytes kHeader1 = {
    'O', 'T', 'D',  // magic
    0x01,           // format version 1
    0x00,           // compression: 0 = none
    0x00,           // window_log: 0 (no decoder window without compression)
    0x0c,           // frame_log: 12 (frames of 4096 NEW bytes)
    0x10,           // old_size: ULEB128(16)
    0x2f,           // new_size: ULEB128(47)
    // old_hash: BLAKE2b-256("0123456789abcdef")
    0xc7, 0x83, 0xba, 0xf5, 0xfb, 0x14, 0x27, 0xe7, 0xd9, 0x24, 0xc9, 0xfe, 0x93, 0xee, 0x16, 0x11,
    0x69, 0x32, 0x4b, 0xb1, 0x39, 0xd9, 0xcd, 0x8d, 0x8b, 0x96, 0x02, 0xc4, 0x12, 0xec, 0x6c, 0xda,
    // new_hash: BLAKE2b-256(NEW)
    0xd2, 0x0c, 0xf1, 0xf8, 0xd1, 0xd0, 0xff, 0x62, 0xb1, 0x3b, 0x7b, 0xc6, 0x05, 0x3c, 0x81, 0x9e,
    0x35, 0x2a, 0x73, 0x1f, 0xc6, 0xb6, 0xfb, 0x5b, 0x4f, 0x29, 0x41, 0xd8, 0x53, 0x8e, 0x1a, 0x86,
};

const Bytes kFrames1 = {
    // frame 0 (NEW[0, 47), the last and only frame)
    0x00,                 // frame mode: 0 = raw records
    0x0e, 'N', 'E', 'W',  // INSERT 3: tag ULEB128(3 << 2 | 2) = 14, then 3 literal bytes
    0x10,                 // COPY 4: tag 4 << 2 | 0 = 16; OLD[0, 4) "0123"; cursor 0 -> 4
    0x33,                 // SEEK +6: tag zigzag(6) << 2 | 3 = 12 << 2 | 3 = 51; cursor 4 -> 10
    0x0d,                 // ADD 3: tag 3 << 2 | 1 = 13; NEW = OLD[10, 13) "abc" + diff (mod 256)
    0x01, 0x01, 0xff,     //   diff bytes: 'a'+1 = 'b', 'b'+1 = 'c', 'c'+0xff = 'b' (wraps); cursor -> 13
    0x82, 0x01,           // INSERT 32: tag ULEB128(32 << 2 | 2 = 130) = 0x82 0x01 (two-byte varint)
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P',  //   literal
    'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', '-', '+', '*', '/', '=', '!',  //   bytes
    0x67,                 // SEEK -13: tag zigzag(-13) << 2 | 3 = 25 << 2 | 3 = 103; cursor 13 -> 0
    0x00,                 // COPY 0: "to the end of the frame": 5 bytes, OLD[0, 5) "01234"
};

const Bytes kPatch1 = concat({kHeader1, kFrames1});

// ---------------------------------------------------------------------------
// Vector 2: zstd, two frames; the OLD cursor restarts at 0 in every frame.
//   OLD[i] = (31 * i + 7) mod 256, 5000 bytes
//   NEW = OLD[100, 4196) + OLD[0, 10) (4106 bytes: one full 4 KiB frame and 10 bytes)
// ---------------------------------------------------------------------------
Bytes old2() {
  Bytes b(5000);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(31 * i + 7);
  return b;
}
Bytes new2() {
  const Bytes o = old2();
  Bytes n(4106);
  std::copy(o.begin() + 100, o.begin() + 4196, n.begin());
  std::copy(o.begin(), o.begin() + 10, n.begin() + 4096);
  return n;
}

const Bytes kHeader2 = {
    'O', 'T', 'D',  // magic
    0x01,           // format version 1
    0x01,           // compression: 1 = zstd
    0x0a,           // window_log: 10 (the device needs a 1 KiB zstd window)
    0x0c,           // frame_log: 12 (4096 NEW bytes per frame)
    0x88, 0x27,     // old_size: ULEB128(5000)
    0x8a, 0x20,     // new_size: ULEB128(4106)
    // old_hash: BLAKE2b-256(OLD)
    0x15, 0x79, 0x87, 0x70, 0x52, 0x95, 0x1a, 0x83, 0x73, 0xd7, 0x11, 0x6b, 0x79, 0xa0, 0xd6, 0x25,
    0x22, 0xd5, 0x1d, 0x87, 0x93, 0x14, 0x51, 0x97, 0xe2, 0x60, 0x4b, 0x12, 0x2c, 0xea, 0xda, 0xc2,
    // new_hash: BLAKE2b-256(NEW)
    0x35, 0x7b, 0x2f, 0x10, 0x88, 0xe7, 0x54, 0x9f, 0x5e, 0x3e, 0xd5, 0x94, 0x74, 0x33, 0x69, 0x26,
    0x70, 0x8b, 0x18, 0xa7, 0x52, 0x26, 0xec, 0x13, 0xe2, 0xb1, 0xc3, 0x1d, 0x8b, 0xc2, 0xd3, 0x97,
};

const Bytes kFrame2a = {
    // frame 0: NEW[0, 4096), exactly 2^frame_log bytes (every frame but the last is full)
    0x00,        // frame mode: 0 = raw (a zstd patch may still store a frame raw)
    0xa3, 0x06,  // SEEK +100: tag ULEB128(zigzag(100) << 2 | 3 = 803) = 0xa3 0x06; cursor 0 -> 100
    0x00,        // COPY 0: to the end of the frame, 4096 bytes: OLD[100, 4196)
};

const Bytes kFrame2b = {
    // frame 1: NEW[4096, 4106), the last frame; the cursor is back at 0
    0x01,                    // frame mode: 1 = one zstd frame holding the records
    0x28, 0xb5, 0x2f, 0xfd,  //   zstd magic
    0x20,                    //   frame header descriptor: single segment, 1-byte content size, no checksum
    0x01,                    //   frame content size: 1 byte of records
    0x09, 0x00, 0x00,        //   block header (LE24): size 1 << 3 | type raw (0) << 1 | last (1)
    0x28,                    //   records: COPY 10: tag 10 << 2 | 0 = 40; OLD[0, 10)
};

const Bytes kPatch2 = concat({kHeader2, kFrame2a, kFrame2b});

// ---------------------------------------------------------------------------
// Vector 3: OLD and NEW both empty: a header and no frames.
// ---------------------------------------------------------------------------
const Bytes kPatch3 = {
    'O', 'T', 'D',  // magic
    0x01,           // format version 1
    0x00,           // compression: none
    0x00,           // window_log: 0
    0x0c,           // frame_log: 12
    0x00,           // old_size: 0
    0x00,           // new_size: 0 (so zero frames follow)
    // old_hash: BLAKE2b-256("") (b2sum -l 256 of an empty file)
    0x0e, 0x57, 0x51, 0xc0, 0x26, 0xe5, 0x43, 0xb2, 0xe8, 0xab, 0x2e, 0xb0, 0x60, 0x99, 0xda, 0xa1,
    0xd1, 0xe5, 0xdf, 0x47, 0x77, 0x8f, 0x77, 0x87, 0xfa, 0xab, 0x45, 0xcd, 0xf1, 0x2f, 0xe3, 0xa8,
    // new_hash: BLAKE2b-256("")
    0x0e, 0x57, 0x51, 0xc0, 0x26, 0xe5, 0x43, 0xb2, 0xe8, 0xab, 0x2e, 0xb0, 0x60, 0x99, 0xda, 0xa1,
    0xd1, 0xe5, 0xdf, 0x47, 0x77, 0x8f, 0x77, 0x87, 0xfa, 0xab, 0x45, 0xcd, 0xf1, 0x2f, 0xe3, 0xa8,
};

// ---------------------------------------------------------------------------
// Version 3 (record blocks): vector 0 and vector 2 again, with the records of
// each frame in blocks: ULEB128 tags_len, add_len, insert_len, then the tags,
// the ADD bytes and the INSERT bytes.
// ---------------------------------------------------------------------------
Bytes with_version(Bytes header, std::uint8_t version) {
  header[3] = version;
  return header;
}

const Bytes kPatch0v3 = concat({
    with_version(Bytes(kPatch0.begin(), kPatch0.begin() + 73), 0x03),  // the header of vector 0, version 3
    {
        0x00,                          // frame 0, mode raw
        0x05, 0x01, 0x02,              // block: 5 tag bytes, 1 ADD byte, 2 INSERT bytes
        0x0c, 0x05, 0x08, 0x0a, 0x00,  // tags: COPY 3, ADD 1, COPY 2, INSERT 2, COPY to the end of the frame
        0x10,                          // ADD bytes: 03 + 10 = 13
        0xaa, 0xbb,                    // INSERT bytes
    },
});

const Bytes kHeader2v3 = with_version(kHeader2, 0x03);

const Bytes kFrame2av3 = {
    0x00,              // frame 0, mode raw
    0x03, 0x00, 0x00,  // block: 3 tag bytes, no ADD or INSERT bytes
    0xa3, 0x06,        // SEEK +100
    0x00,              // COPY to the end of the frame
};

const Bytes kFrame2bv3 = {
    0x01,                    // frame 1, mode zstd
    0x28, 0xb5, 0x2f, 0xfd,  //   zstd magic
    0x20,                    //   frame header descriptor: single segment, 1-byte content size
    0x04,                    //   frame content size: 4 bytes (one block)
    0x21, 0x00, 0x00,        //   block header (LE24): size 4 << 3 | raw | last
    0x01, 0x00, 0x00,        //   record block: 1 tag byte, no ADD or INSERT bytes
    0x28,                    //   COPY 10
};

const Bytes kPatch2v3 = concat({kHeader2v3, kFrame2av3, kFrame2bv3});

// Both empty, version 3: what the generator writes by default.
const Bytes kPatch3v3 = with_version(kPatch3, 0x03);

// ---- the vectors apply ----

TEST(Golden, HashesInVectorsAreBlake2b256) {
  // Guards the vectors themselves: the hash fields are the hashes of OLD and NEW.
  Digest o1 = content_hash(kOld1), n1 = content_hash(kNew1), o2 = content_hash(old2()), n2 = content_hash(new2());
  EXPECT_TRUE(std::equal(o1.begin(), o1.end(), kHeader1.begin() + 9));
  EXPECT_TRUE(std::equal(n1.begin(), n1.end(), kHeader1.begin() + 41));
  EXPECT_TRUE(std::equal(o2.begin(), o2.end(), kHeader2.begin() + 11));
  EXPECT_TRUE(std::equal(n2.begin(), n2.end(), kHeader2.begin() + 43));
}

TEST(Golden, Vector0DocumentedExample) {
  Digest o = content_hash(kOld0), n = content_hash(kNew0);
  EXPECT_TRUE(std::equal(o.begin(), o.end(), kPatch0.begin() + 9));
  EXPECT_TRUE(std::equal(n.begin(), n.end(), kPatch0.begin() + 41));
  auto out = test::apply_patch(kOld0, kPatch0);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_EQ(*out, kNew0);
}

TEST(Golden, Version3DocumentedExample) {
  auto out = test::apply_patch(kOld0, kPatch0v3);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_EQ(*out, kNew0);
  auto bytewise = test::apply_in_chunks(kOld0, kPatch0v3, [](std::size_t) { return 1; });
  ASSERT_TRUE(bytewise) << test::describe(fail(bytewise.error()));
  EXPECT_EQ(*bytewise, kNew0);
  auto h = delta::parse_header(kPatch0v3);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->first.version, 3);
  EXPECT_EQ(delta::encode_header(h->first), Bytes(kPatch0v3.begin(), kPatch0v3.begin() + 73));
}

TEST(Golden, Version3TwoFramesRawAndZstd) {
  std::vector<delta::ResumePoint> points;
  delta::PatchOptions opt;
  opt.on_frame = [&](const delta::ResumePoint& p) {
    points.push_back(p);
    return ok();
  };
  auto out = test::apply_patch(old2(), kPatch2v3, opt);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == new2());
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].patch_offset, kHeader2v3.size() + kFrame2av3.size());
  EXPECT_EQ(points[0].new_offset, 4096u);
  EXPECT_EQ(points[1].patch_offset, kPatch2v3.size());
  auto bytewise = test::apply_in_chunks(old2(), kPatch2v3, [](std::size_t) { return 1; });
  ASSERT_TRUE(bytewise) << test::describe(fail(bytewise.error()));
  EXPECT_TRUE(*bytewise == new2());
}

TEST(Golden, Version3ResumesAtTheFrameBoundary) {
  const Bytes n = new2();
  const Bytes done(n.begin(), n.begin() + 4096);
  const Bytes o = old2();
  MemorySource old_source(o), written(done);
  VectorWriter out;
  delta::PatchOptions opt;
  opt.resume = delta::ResumePoint{1, kHeader2v3.size() + kFrame2av3.size(), 4096};
  opt.written_prefix = &written;
  auto p = delta::Patcher::create(old_source, out, opt);
  ASSERT_TRUE(p);
  Status fed = (*p)->feed(kPatch2v3);
  ASSERT_TRUE(fed) << test::describe(fed);
  Status finished = (*p)->finish();
  ASSERT_TRUE(finished) << test::describe(finished);
  EXPECT_EQ(out.data(), Bytes(n.begin() + 4096, n.end()));
}

TEST(Golden, GeneratorWritesVersion3ByDefault) {
  auto patch = test::make_patch({}, {}, test::fast_options(delta::Compression::kNone, 12));
  ASSERT_TRUE(patch);
  EXPECT_EQ(*patch, kPatch3v3);
  auto out = test::apply_patch({}, kPatch3v3);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
}

TEST(Golden, VersionRules) {
  // Version 3 goes with every predictor; 1 and 2 only with their own.
  for (unsigned predictor = 0; predictor <= 3; ++predictor) {
    for (std::uint8_t version = 1; version <= 4; ++version) {
      Bytes h = kHeader1;
      h[3] = version;
      h[4] = static_cast<std::uint8_t>(predictor << 4);
      auto parsed = delta::parse_header(h);
      const bool valid = version == 3 || version == (predictor == 3 ? 2 : 1);
      EXPECT_EQ(static_cast<bool>(parsed), valid) << "version " << int(version) << ", predictor " << predictor;
      if (!parsed) {
        EXPECT_EQ(parsed.error().code, ErrorCode::kUnsupported);
      } else {
        EXPECT_EQ(delta::encode_header(parsed->first), h) << "encode(parse(x)) == x";
      }
    }
  }
  EXPECT_EQ(delta::format_version_for(delta::Predictor::kNone), 3);
  EXPECT_EQ(delta::format_version_for(delta::Predictor::kArm64), 3);
  EXPECT_EQ(delta::format_version_for(delta::Predictor::kX86, delta::RecordLayout::kInterleaved), 1);
  EXPECT_EQ(delta::format_version_for(delta::Predictor::kArm64, delta::RecordLayout::kInterleaved), 2);
}

TEST(Golden, Vector1AllRecordTypes) {
  auto out = test::apply_patch(kOld1, kPatch1);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_EQ(std::string(out->begin(), out->end()), std::string(kNew1.begin(), kNew1.end()));
}

TEST(Golden, Vector1HeaderParses) {
  auto parsed = delta::parse_header(kPatch1);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->second, kHeader1.size());
  const auto& h = parsed->first;
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.compression, delta::Compression::kNone);
  EXPECT_EQ(h.window_log, 0);
  EXPECT_EQ(h.frame_log, 12);
  EXPECT_EQ(h.old_size, 16u);
  EXPECT_EQ(h.new_size, 47u);
  EXPECT_EQ(h.old_hash, content_hash(kOld1));
  EXPECT_EQ(h.new_hash, content_hash(kNew1));
  EXPECT_EQ(h.frame_count(), 1u);
  EXPECT_EQ(delta::encode_header(h), kHeader1) << "encode(parse(x)) == x";
}

TEST(Golden, Vector2TwoFramesCursorResetsAndZstdFrame) {
  std::vector<delta::ResumePoint> points;
  delta::PatchOptions opt;
  opt.on_frame = [&](const delta::ResumePoint& p) {
    points.push_back(p);
    return ok();
  };
  auto out = test::apply_patch(old2(), kPatch2, opt);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == new2());
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].frame, 1u);
  EXPECT_EQ(points[0].patch_offset, kHeader2.size() + kFrame2a.size());
  EXPECT_EQ(points[0].new_offset, 4096u);
  EXPECT_EQ(points[1].frame, 2u);
  EXPECT_EQ(points[1].patch_offset, kPatch2.size());
  EXPECT_EQ(points[1].new_offset, 4106u);
}

TEST(Golden, Vector2ByteByByte) {
  auto out = test::apply_in_chunks(old2(), kPatch2, [](std::size_t) { return 1; });
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == new2());
}

TEST(Golden, Vector3BothEmpty) {
  auto out = test::apply_patch({}, kPatch3);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(out->empty());
}

TEST(Golden, GeneratorWritesTheSameHeaderForBothEmpty) {
  auto opt = test::fast_options(delta::Compression::kNone, 12);
  opt.layout = delta::RecordLayout::kInterleaved;
  auto patch = test::make_patch({}, {}, opt);
  ASSERT_TRUE(patch);
  EXPECT_EQ(*patch, kPatch3);
}

// ---- header encoding is pinned ----

TEST(Golden, EncodeHeaderPinned) {
  delta::PatchHeader h;
  h.version = 1;
  h.compression = delta::Compression::kZstd;
  h.window_log = 20;
  h.frame_log = 24;
  h.old_size = 300;
  h.new_size = std::uint64_t{1} << 32;
  for (std::size_t i = 0; i < 32; ++i) {
    h.old_hash[i] = static_cast<std::uint8_t>(i);
    h.new_hash[i] = static_cast<std::uint8_t>(0xff - i);
  }
  const Bytes expected = {
      'O', 'T', 'D',                  // magic
      0x01,                           // version 1
      0x01,                           // compression: zstd
      0x14,                           // window_log: 20
      0x18,                           // frame_log: 24
      0xac, 0x02,                     // old_size: ULEB128(300)
      0x80, 0x80, 0x80, 0x80, 0x10,   // new_size: ULEB128(2^32)
      // old_hash: 00 01 .. 1f
      0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
      0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
      // new_hash: ff fe .. e0
      0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6, 0xf5, 0xf4, 0xf3, 0xf2, 0xf1, 0xf0,
      0xef, 0xee, 0xed, 0xec, 0xeb, 0xea, 0xe9, 0xe8, 0xe7, 0xe6, 0xe5, 0xe4, 0xe3, 0xe2, 0xe1, 0xe0,
  };
  EXPECT_EQ(delta::encode_header(h), expected);
  auto parsed = delta::parse_header(expected);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->second, expected.size());
  EXPECT_EQ(parsed->first.compression, h.compression);
  EXPECT_EQ(parsed->first.window_log, h.window_log);
  EXPECT_EQ(parsed->first.frame_log, h.frame_log);
  EXPECT_EQ(parsed->first.old_size, h.old_size);
  EXPECT_EQ(parsed->first.new_size, h.new_size);
  EXPECT_EQ(parsed->first.old_hash, h.old_hash);
  EXPECT_EQ(parsed->first.new_hash, h.new_hash);
  EXPECT_EQ(parsed->first.frame_count(), 256u);
}

TEST(Golden, MaxHeaderSizeIsEnough) {
  delta::PatchHeader h;
  h.old_size = std::uint64_t{1} << 62;
  h.new_size = std::uint64_t{1} << 62;
  EXPECT_LE(delta::encode_header(h).size(), delta::kMaxHeaderSize);
  auto parsed = delta::parse_header(delta::encode_header(h));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->first.new_size, std::uint64_t{1} << 62);
}

TEST(Golden, GeneratorHeaderMatchesEncodeHeader) {
  Bytes new_image = kNew1;
  delta::DiffOptions opt = test::fast_options(delta::Compression::kZstd, 12);
  opt.window_log = 15;  // version 3: the default of both DiffOptions and PatchHeader
  auto patch = test::make_patch(kOld1, new_image, opt);
  ASSERT_TRUE(patch);
  delta::PatchHeader h;
  h.compression = delta::Compression::kZstd;
  h.window_log = 15;
  h.frame_log = 12;
  h.old_size = kOld1.size();
  h.new_size = new_image.size();
  h.old_hash = content_hash(kOld1);
  h.new_hash = content_hash(new_image);
  Bytes header = delta::encode_header(h);
  ASSERT_GE(patch->size(), header.size());
  EXPECT_EQ(Bytes(patch->begin(), patch->begin() + static_cast<std::ptrdiff_t>(header.size())), header);
}

// ---- hand-built invalid patches: each fails with the documented code ----

struct Bad {
  const char* name;
  Bytes old_image;
  Bytes patch;
  ErrorCode code;
};

// Header 1 with the given fields replaced (bytes 0..8 are magic..new_size).
Bytes header1_with(std::size_t index, std::uint8_t value) {
  Bytes h = kHeader1;
  h[index] = value;
  return h;
}

std::vector<Bad> bad_patches() {
  const Bytes o1 = kOld1, o2 = old2();
  // Header 1 and a raw frame 0 holding the given records.
  auto frame1 = [&](Bytes records) { return concat({kHeader1, Bytes{0x00}, records}); };
  auto frame2b = [&](Bytes zstd_records) {
    // A one-block raw zstd frame holding the given records, as frame 1 of vector 2.
    Bytes z = {0x28, 0xb5, 0x2f, 0xfd, 0x20, static_cast<std::uint8_t>(zstd_records.size()),
               static_cast<std::uint8_t>(zstd_records.size() << 3 | 1), 0x00, 0x00};
    return concat({kHeader2, kFrame2a, Bytes{0x01}, z, zstd_records});
  };
  // Version 3: header 1 (version 3) and a raw frame 0 holding the given blocks;
  // header 2 (version 3), frame 0 and a zstd frame 1 holding the given blocks.
  const Bytes h1v3 = with_version(kHeader1, 0x03);
  auto v3raw = [&](Bytes blocks) { return concat({h1v3, Bytes{0x00}, blocks}); };
  auto v3zstd = [&](Bytes blocks) {
    Bytes z = {0x28, 0xb5, 0x2f, 0xfd, 0x20, static_cast<std::uint8_t>(blocks.size()),
               static_cast<std::uint8_t>(blocks.size() << 3 | 1), 0x00, 0x00};
    return concat({kHeader2v3, kFrame2av3, Bytes{0x01}, z, blocks});
  };
  Bytes wrong_new_hash = kPatch1;
  wrong_new_hash[41] ^= 0x01;
  return {
      // header
      {"BadMagic", o1, concat({Bytes{'O', 'T', 'X'}, Bytes(kPatch1.begin() + 3, kPatch1.end())}), ErrorCode::kPatchMalformed},
      {"Bsdiff40Magic", o1, text("BSDIFF40"), ErrorCode::kPatchMalformed},
      {"Version0", o1, concat({header1_with(3, 0), kFrames1}), ErrorCode::kUnsupported},
      {"Version2", o1, concat({header1_with(3, 2), kFrames1}), ErrorCode::kUnsupported},
      {"UnknownCompression", o1, concat({header1_with(4, 5), kFrames1}), ErrorCode::kUnsupported},
      {"UnknownPredictor", o1, concat({header1_with(4, 0x30), kFrames1}), ErrorCode::kUnsupported},
      {"WindowWithoutCompression", o1, concat({header1_with(5, 10), kFrames1}), ErrorCode::kPatchMalformed},
      {"FrameLog11", o1, concat({header1_with(6, 11), kFrames1}), ErrorCode::kPatchMalformed},
      {"FrameLog31", o1, concat({header1_with(6, 31), kFrames1}), ErrorCode::kPatchMalformed},
      {"ZstdWindow9", o2, concat({Bytes(kHeader2.begin(), kHeader2.begin() + 5), Bytes{0x09},
                              Bytes(kHeader2.begin() + 6, kHeader2.end()), kFrame2a, kFrame2b}),
       ErrorCode::kPatchMalformed},
      {"ZstdWindow32", o2, concat({Bytes(kHeader2.begin(), kHeader2.begin() + 5), Bytes{0x20},
                               Bytes(kHeader2.begin() + 6, kHeader2.end()), kFrame2a, kFrame2b}),
       ErrorCode::kPatchMalformed},
      {"OverlongOldSize", o1, concat({Bytes(kHeader1.begin(), kHeader1.begin() + 7), Bytes{0x90, 0x00},
                                  Bytes(kHeader1.begin() + 8, kHeader1.end()), kFrames1}),
       ErrorCode::kPatchMalformed},
      {"OldSizeOver2To62", o1, concat({Bytes(kHeader1.begin(), kHeader1.begin() + 7),
                                   Bytes{0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40},
                                   Bytes(kHeader1.begin() + 8, kHeader1.end())}),
       ErrorCode::kPatchMalformed},
      // frames
      {"FrameMode2", o1, concat({kHeader1, Bytes{0x02}, Bytes(kFrames1.begin() + 1, kFrames1.end())}),
       ErrorCode::kPatchMalformed},
      {"ZstdFrameInUncompressedPatch", o1, concat({kHeader1, Bytes{0x01}, Bytes(kFrames1.begin() + 1, kFrames1.end())}),
       ErrorCode::kPatchMalformed},
      {"SeekByZero", o1, frame1({0x03, 0x00}), ErrorCode::kPatchMalformed},
      {"SeekBeforeOld", o1, frame1({0x07, 0x00}), ErrorCode::kPatchMalformed},  // zigzag(-1) = 1
      {"SeekPastOld", o1, frame1({0x8b, 0x01, 0x00}), ErrorCode::kPatchMalformed},  // zigzag(17) = 34
      {"CopyPastOld", o1, frame1({0x44, 0x00}), ErrorCode::kPatchMalformed},       // COPY 17 of 16
      {"CopyAfterSeekPastOld", o1, frame1({0x83, 0x01, 0x08}), ErrorCode::kPatchMalformed},  // SEEK +16, COPY 2
      {"CopyPastFrame", o1, frame1({0x0e, 'N', 'E', 'W', 0xc0, 0x01}), ErrorCode::kPatchMalformed},  // COPY 48
      {"AddZero", o1, frame1({0x01}), ErrorCode::kPatchMalformed},
      {"AddPastOld", o1, frame1({0x45, 0x00}), ErrorCode::kPatchMalformed},  // ADD 17 of 16
      {"InsertZero", o1, frame1({0x02}), ErrorCode::kPatchMalformed},
      {"InsertPastFrame", o1, frame1({0xc2, 0x01}), ErrorCode::kPatchMalformed},  // INSERT 48 into 47
      {"OverlongTag", o1, frame1({0x80, 0x00}), ErrorCode::kPatchMalformed},
      {"TagOver64Bits", o1, frame1({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}),
       ErrorCode::kPatchMalformed},
      {"FrameCannotEndEarly", o2,
       // frame 0 stops after COPY 100 (tag 0x90 0x03): the next "mode byte" is read as a record (ADD 0)
       concat({kHeader2, Bytes{0x00, 0x90, 0x03}, kFrame2b}), ErrorCode::kPatchMalformed},
      {"TrailingByteAfterLastFrame", o1, concat({kPatch1, Bytes{0x00}}), ErrorCode::kPatchMalformed},
      {"TrailingFrameAfterEmptyNew", Bytes{}, concat({kPatch3, Bytes{0x00, 0x00}}), ErrorCode::kPatchMalformed},
      {"LastFrameShort", o1, frame1({0x0e, 'N', 'E', 'W'}), ErrorCode::kPatchTruncated},
      {"NoFrames", o1, kHeader1, ErrorCode::kPatchTruncated},
      {"WrongNewHash", o1, wrong_new_hash, ErrorCode::kNewMismatch},
      {"WrongOldSize", text("0123456789abcde"), kPatch1, ErrorCode::kOldMismatch},
      {"WrongOldBytes", text("0123456789abcdeF"), kPatch1, ErrorCode::kOldMismatch},
      // zstd frames
      {"ZstdRecordsPastFrame", o2, frame2b({0x28, 0x28}), ErrorCode::kPatchMalformed},  // two COPY 10
      {"ZstdFrameEndsMidRecord", o2, frame2b({0x0e, 'x'}), ErrorCode::kPatchMalformed},  // INSERT 3, 1 byte
      // COPY 5 of the frame's 10 bytes, then the zstd frame ends: the frame is incomplete
      {"ZstdFrameEndsEarly", o2, frame2b({0x14}), ErrorCode::kPatchMalformed},
      // The patch stops inside the zstd frame (block header promises 1 byte that never comes)
      {"ZstdFrameCutShort", o2, concat({kHeader2, kFrame2a, Bytes{0x01, 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x01, 0x09, 0x00, 0x00}}),
       ErrorCode::kPatchTruncated},
      // version 3
      {"Version4", o1, concat({header1_with(3, 4), kFrames1}), ErrorCode::kUnsupported},
      {"V3BlockWithoutRecords", o1, v3raw({0x00, 0x00, 0x00}), ErrorCode::kPatchMalformed},
      {"V3OverlongBlockLength", o1, v3raw({0x81, 0x00, 0x00, 0x00, 0x00}), ErrorCode::kPatchMalformed},
      {"V3StreamOverLimit", o1, v3raw({0x81, 0x80, 0x04, 0x00, 0x00}), ErrorCode::kPatchMalformed},  // 65537
      {"V3BlockLengthOver64Bits", o1, v3raw({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}),
       ErrorCode::kPatchMalformed},
      // 32768 + 32768 + 1 bytes: each stream fits, the block does not
      {"V3BlockOverLimit", o1, v3raw({0x80, 0x80, 0x02, 0x80, 0x80, 0x02, 0x01}), ErrorCode::kPatchMalformed},
      {"V3TagRunsPastItsStream", o1, v3raw({0x01, 0x00, 0x00, 0x82}), ErrorCode::kPatchMalformed},
      {"V3AddRunsPastItsStream", o1, v3raw({0x01, 0x01, 0x00, 0x09, 0x01}), ErrorCode::kPatchMalformed},  // ADD 2
      {"V3InsertRunsPastItsStream", o1, v3raw({0x01, 0x00, 0x01, 0x0a, 'x'}), ErrorCode::kPatchMalformed},
      {"V3AddBytesLeftOver", o1, v3raw({0x01, 0x02, 0x00, 0x05, 0x01, 0x01}), ErrorCode::kPatchMalformed},
      {"V3InsertBytesLeftOver", o1, v3raw({0x01, 0x00, 0x02, 0x06, 'x', 'y'}), ErrorCode::kPatchMalformed},
      {"V3InvalidTag", o1, v3raw({0x02, 0x00, 0x00, 0x80, 0x00}), ErrorCode::kPatchMalformed},
      {"V3AddZero", o1, v3raw({0x01, 0x00, 0x00, 0x01}), ErrorCode::kPatchMalformed},
      {"V3CopyPastFrame", o1, v3raw({0x02, 0x00, 0x00, 0xc0, 0x01}), ErrorCode::kPatchMalformed},  // COPY 48
      // INSERT of the whole frame (47 bytes), then a SEEK +1 in the same block
      {"V3RecordAfterFrameEnd", o1, v3raw(concat({Bytes{0x03, 0x00, 0x2f, 0xbe, 0x01, 0x0b}, kNew1})),
       ErrorCode::kPatchMalformed},
      {"V3TruncatedInLengths", o1, v3raw({0x05, 0x01}), ErrorCode::kPatchTruncated},
      {"V3TruncatedInStreams", o1, v3raw({0x05, 0x01, 0x02, 0x0c, 0x05}), ErrorCode::kPatchTruncated},
      {"V3ZstdEndsInsideBlock", o2, v3zstd({0x02, 0x00, 0x00, 0x28}), ErrorCode::kPatchMalformed},
      {"V3ZstdEndsInsideLengths", o2, v3zstd({0x01, 0x00}), ErrorCode::kPatchMalformed},
      {"V3ZstdEndsBeforeFrameEnd", o2, v3zstd({0x01, 0x00, 0x00, 0x14}), ErrorCode::kPatchMalformed},  // COPY 5
      {"V3ZstdBlockAfterFrameEnd", o2, v3zstd({0x01, 0x00, 0x00, 0x28, 0x01, 0x00, 0x00, 0x07}),
       ErrorCode::kPatchMalformed},
      // Vector 1's interleaved records read as a block: lengths 14, 'N', 'E' ask for more bytes than follow
      {"V3InterleavedFrame", o1, concat({h1v3, kFrames1}), ErrorCode::kPatchTruncated},
      {"NotZstd", o2, concat({kHeader2, kFrame2a, Bytes{0x01, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00}}),
       ErrorCode::kDecompress},
  };
}

void PrintTo(const Bad& b, std::ostream* os) { *os << b.name; }

class BadPatch : public testing::TestWithParam<Bad> {};

TEST_P(BadPatch, FailsWithDocumentedCode) {
  const Bad& b = GetParam();
  auto out = test::apply_patch(b.old_image, b.patch);
  ASSERT_FALSE(out) << b.name << ": applied, giving " << out->size() << " bytes";
  EXPECT_EQ(out.error().code, b.code) << test::describe(fail(out.error()));
  EXPECT_FALSE(out.error().message.empty());
  // Fed byte by byte: the same verdict.
  auto bytewise = test::apply_in_chunks(b.old_image, b.patch, [](std::size_t) { return 1; });
  ASSERT_FALSE(bytewise);
  EXPECT_EQ(bytewise.error().code, b.code) << test::describe(fail(bytewise.error()));
}

INSTANTIATE_TEST_SUITE_P(Golden, BadPatch, testing::ValuesIn(bad_patches()),
                         [](const testing::TestParamInfo<Bad>& param) { return std::string(param.param.name); });

TEST(Golden, ZstdFrameIsValidWhenComplete) {
  // Control for the Zstd* bad patches: the same framing with a complete COPY 10 applies.
  Bytes z = {0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x01, 0x09, 0x00, 0x00, 0x28};
  auto out = test::apply_patch(old2(), concat({kHeader2, kFrame2a, Bytes{0x01}, z}));
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == new2());
}

TEST(Golden, FrameErrorsNameTheFrame) {
  Bytes patch = concat({kHeader2, kFrame2a, Bytes{0x01, 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x02, 0x11, 0x00, 0x00, 0x28, 0x28}});
  auto out = test::apply_patch(old2(), patch);
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("frame 1"), std::string::npos) << out.error().message;
}

}  // namespace
}  // namespace ota
