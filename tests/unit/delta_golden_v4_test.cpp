// Golden vectors of delta format version 4 (docs/formats.md, "Compressions 3
// and 4: LZMA2"): version 3's frames with each compressed frame one raw LZMA2
// stream. The first vector is hand-built (an LZMA2 stream of one uncompressed
// chunk); the other two are generator output of liblzma 5.4 pinned as bytes:
// whatever the generator writes later, these must keep applying.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ota/core/hash.hpp"
#include "ota/delta/delta.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using test::concat;

// Vector 0 of the version 1 to 3 vectors (docs/formats.md, "Example").
const Bytes kOld0 = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
const Bytes kNew0 = {0x00, 0x01, 0x02, 0x13, 0x04, 0x05, 0xaa, 0xbb, 0x06, 0x07};

Bytes header0(std::uint8_t version, std::uint8_t coding, std::uint8_t window_log) {
  Bytes h = {0x4f, 0x54, 0x44, version, coding, window_log, 0x0c, 0x08, 0x0a};
  const Digest o = content_hash(kOld0), n = content_hash(kNew0);
  h.insert(h.end(), o.begin(), o.end());
  h.insert(h.end(), n.begin(), n.end());
  return h;
}

// The block of vector 0 (11 bytes), as version 3 stores it raw.
const Bytes kBlock0 = {
    0x05, 0x01, 0x02,              // block: 5 tag bytes, 1 ADD byte, 2 INSERT bytes
    0x0c, 0x05, 0x08, 0x0a, 0x00,  // tags: COPY 3, ADD 1, COPY 2, INSERT 2, COPY to the end of the frame
    0x10,                          // ADD bytes: 03 + 10 = 13
    0xaa, 0xbb,                    // INSERT bytes
};

// Version 4, compression 3 (LZMA2), a 4 KiB dictionary: frame 0 is compressed
// (mode 1, blocks) and holds an LZMA2 stream of one uncompressed chunk.
const Bytes kPatch0v4 = concat({
    header0(0x04, 0x03, 0x0c),
    {0x01},              // frame 0, mode 1: compressed, record blocks
    {0x01, 0x00, 0x0a},  // LZMA2 chunk: uncompressed, dictionary reset; size - 1 = 10 (big-endian)
    kBlock0,             // the chunk's 11 bytes
    {0x00},              // LZMA2 end marker: the frame ends
});

// Generator output (liblzma 5.4.1, preset 9e, 4 KiB dictionary): OLD and NEW
// below, compression 3, and compression 4 (OLD as preset dictionary). Both
// frames are mode 3 (compressed, interleaved records): LZMA2 chunks 0xe0
// (compressed, dictionary and state reset, properties) and 0xc0 (state reset
// and properties: the dictionary holds OLD).
const std::string kOldText = "The quick brown fox jumps over the lazy dog. 0123456789abcdefghij";
const std::string kNewText = "The quick brown cat jumps over the lazy dog! zzzzzzzzzzzz9876543210 9876543210 "
                             "9876543210 9876543210 9876543210 jihgfedcba jihgfedcba jihgfedcba";

const Bytes kPatchLzma = {
    0x4f, 0x54, 0x44, 0x04, 0x03, 0x0c, 0x0c, 0x41, 0x90, 0x01, 0xff, 0xcc, 0x36, 0x29, 0x32, 0x0c,
    0xf0, 0x7f, 0x56, 0x75, 0x97, 0xa7, 0xa2, 0xe8, 0xc6, 0x0b, 0xbb, 0xf3, 0x16, 0xa2, 0xd9, 0xd2,
    0x8d, 0x1c, 0xa0, 0xb3, 0xfc, 0x1f, 0x34, 0x07, 0xa9, 0x58, 0xc7, 0x07, 0x1a, 0xa9, 0xb7, 0x57,
    0x09, 0x03, 0x4b, 0x11, 0x16, 0xd9, 0x55, 0x62, 0xf7, 0x1c, 0x14, 0x86, 0x59, 0x8f, 0x82, 0xc0,
    0x79, 0xcd, 0x88, 0x3f, 0x03, 0x16, 0xaa, 0xc5, 0x2d, 0x14, 0x03, 0xe0, 0x00, 0x6c, 0x00, 0x2b,
    0x5d, 0x00, 0x20, 0x03, 0x5b, 0xb1, 0xae, 0xdc, 0x90, 0x05, 0xcf, 0x14, 0x73, 0x41, 0x02, 0x8a,
    0xa4, 0xf9, 0x5e, 0x51, 0x2e, 0xb8, 0x5b, 0xcb, 0xfa, 0x70, 0x1a, 0x8e, 0xae, 0xf3, 0x0e, 0x20,
    0xd2, 0xad, 0x03, 0x5e, 0xad, 0xfe, 0x18, 0xf4, 0x1f, 0x0f, 0x2b, 0xc0, 0x00, 0x00,
};

const Bytes kPatchLzmaOld = {
    0x4f, 0x54, 0x44, 0x04, 0x04, 0x0c, 0x0c, 0x41, 0x90, 0x01, 0xff, 0xcc, 0x36, 0x29, 0x32, 0x0c,
    0xf0, 0x7f, 0x56, 0x75, 0x97, 0xa7, 0xa2, 0xe8, 0xc6, 0x0b, 0xbb, 0xf3, 0x16, 0xa2, 0xd9, 0xd2,
    0x8d, 0x1c, 0xa0, 0xb3, 0xfc, 0x1f, 0x34, 0x07, 0xa9, 0x58, 0xc7, 0x07, 0x1a, 0xa9, 0xb7, 0x57,
    0x09, 0x03, 0x4b, 0x11, 0x16, 0xd9, 0x55, 0x62, 0xf7, 0x1c, 0x14, 0x86, 0x59, 0x8f, 0x82, 0xc0,
    0x79, 0xcd, 0x88, 0x3f, 0x03, 0x16, 0xaa, 0xc5, 0x2d, 0x14, 0x03, 0xc0, 0x00, 0x6c, 0x00, 0x2b,
    0x5d, 0x00, 0x20, 0x03, 0x5b, 0xaf, 0x28, 0x1d, 0x7c, 0xce, 0x4f, 0x54, 0x5f, 0x83, 0x6b, 0x44,
    0x18, 0xd9, 0xe1, 0x60, 0xed, 0x2a, 0x52, 0xfe, 0x24, 0xab, 0x80, 0xca, 0x04, 0x45, 0xf1, 0x19,
    0x40, 0xa1, 0x8a, 0x96, 0xaa, 0xf3, 0xde, 0x96, 0xb5, 0x0d, 0x32, 0xc0, 0x00, 0x00,
};

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

void expect_applies(const Bytes& old_image, const Bytes& patch, const Bytes& new_image) {
  auto out = test::apply_patch(old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_EQ(*out, new_image);
  auto bytewise = test::apply_in_chunks(old_image, patch, [](std::size_t) { return 1; });
  ASSERT_TRUE(bytewise) << test::describe(fail(bytewise.error()));
  EXPECT_EQ(*bytewise, new_image);
}

TEST(GoldenV4, StoredChunkExample) {
  expect_applies(kOld0, kPatch0v4, kNew0);
  auto h = delta::parse_header(kPatch0v4);
  ASSERT_TRUE(h) << test::describe(fail(h.error()));
  EXPECT_EQ(h->first.version, 4);
  EXPECT_EQ(h->first.compression, delta::Compression::kLzma);
  EXPECT_EQ(h->first.window_log, 12);
  EXPECT_EQ(delta::encode_header(h->first), Bytes(kPatch0v4.begin(), kPatch0v4.begin() + 73));
}

TEST(GoldenV4, GeneratedLzmaAndLzmaOldVectorsApply) {
  expect_applies(text(kOldText), kPatchLzma, text(kNewText));
  expect_applies(text(kOldText), kPatchLzmaOld, text(kNewText));
  auto h = delta::parse_header(kPatchLzmaOld);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->first.compression, delta::Compression::kLzmaOld);
}

TEST(GoldenV4, TheGeneratorsOutputAppliesAndSaysVersion4) {
  for (auto c : {delta::Compression::kLzma, delta::Compression::kLzmaOld}) {
    delta::DiffOptions opt;
    opt.compression = c;
    opt.old_dictionary_max = c == delta::Compression::kLzmaOld ? std::uint64_t{1} << 20 : 0;
    opt.frame_log = 12;
    opt.window_log = 12;
    opt.predictor = delta::PredictorChoice::kNone;
    auto patch = test::make_patch(text(kOldText), text(kNewText), opt);
    ASSERT_TRUE(patch) << test::describe(fail(patch.error()));
    EXPECT_EQ((*patch)[3], 4);
    EXPECT_EQ((*patch)[4], static_cast<std::uint8_t>(c));
    expect_applies(text(kOldText), *patch, text(kNewText));
  }
}

TEST(GoldenV4, DefaultsAndOlderVersions) {
  // Default options: LZMA2 (with OLD as dictionary for a small OLD), version 4.
  auto v4 = test::make_patch(text(kOldText), text(kNewText), delta::DiffOptions{});
  ASSERT_TRUE(v4);
  EXPECT_EQ((*v4)[3], 4);
  EXPECT_EQ((*v4)[4] & 0x0f, static_cast<int>(delta::Compression::kLzmaOld));
  // zstd: version 3, as before version 4 existed.
  delta::DiffOptions zstd;
  zstd.compression = delta::Compression::kZstd;
  auto v3 = test::make_patch(text(kOldText), text(kNewText), zstd);
  ASSERT_TRUE(v3);
  EXPECT_EQ((*v3)[3], 3);
  // The interleaved layout is for patchers of versions 1 and 2: zstd, whatever was asked.
  delta::DiffOptions old_layout;
  old_layout.layout = delta::RecordLayout::kInterleaved;
  auto v1 = test::make_patch(text(kOldText), text(kNewText), old_layout);
  ASSERT_TRUE(v1);
  EXPECT_EQ((*v1)[3], 1);
  EXPECT_EQ((*v1)[4] & 0x0f, static_cast<int>(delta::Compression::kZstdOld));
  for (const Bytes* p : {&*v4, &*v3, &*v1}) expect_applies(text(kOldText), *p, text(kNewText));
}

TEST(GoldenV4, VersionAndCompressionGoTogether) {
  struct Case {
    std::uint8_t version, coding, window_log;
    bool valid;
  };
  for (const Case& c : std::vector<Case>{{4, 3, 12, true},   {4, 4, 12, true},   {3, 3, 12, false},
                                         {1, 3, 12, false},  {4, 1, 12, false},  {4, 0, 0, false},
                                         {4, 3, 11, false},  {4, 3, 31, false},  {4, 0x33, 12, true}}) {
    auto parsed = delta::parse_header(header0(c.version, c.coding, c.window_log));
    EXPECT_EQ(static_cast<bool>(parsed), c.valid)
        << "version " << int(c.version) << ", coding " << int(c.coding) << ", window " << int(c.window_log);
    if (parsed) EXPECT_EQ(delta::encode_header(parsed->first), header0(c.version, c.coding, c.window_log));
  }
  EXPECT_EQ(delta::format_version_for(delta::Predictor::kX86, delta::RecordLayout::kBlocks, delta::Compression::kLzma), 4);
  EXPECT_EQ(delta::format_version_for(delta::Predictor::kX86, delta::RecordLayout::kBlocks, delta::Compression::kZstd), 3);
}

struct Bad {
  const char* name;
  Bytes patch;
  ErrorCode code;
};

std::vector<Bad> bad_patches() {
  const Bytes h = header0(0x04, 0x03, 0x0c);
  auto frame = [&](Bytes lzma2) { return concat({h, {0x01}, std::move(lzma2)}); };
  return {
      // The stream stops inside the chunk: the patch is incomplete.
      {"CutInsideChunk", frame(concat({{0x01, 0x00, 0x0a}, Bytes(kBlock0.begin(), kBlock0.begin() + 5)})),
       ErrorCode::kPatchTruncated},
      // The chunk is complete but the end marker never comes.
      {"NoEndMarker", frame(concat({{0x01, 0x00, 0x0a}, kBlock0})), ErrorCode::kPatchTruncated},
      // The stream ends after 5 of the block's 11 bytes: the frame ends inside a block.
      {"EndsInsideBlock", frame(concat({{0x01, 0x00, 0x04}, Bytes(kBlock0.begin(), kBlock0.begin() + 5), {0x00}})),
       ErrorCode::kPatchMalformed},
      // A chunk after the frame's records are complete.
      {"RecordsPastTheFrame", frame(concat({{0x01, 0x00, 0x0a}, kBlock0, {0x02, 0x00, 0x00, 0x00, 0x00}})),
       ErrorCode::kPatchMalformed},
      // The first chunk must reset the dictionary (no preset dictionary with compression 3).
      {"FirstChunkKeepsDictionary", frame(concat({{0x02, 0x00, 0x0a}, kBlock0, {0x00}})), ErrorCode::kDecompress},
      // An invalid control byte (0x03..0x7f).
      {"InvalidControl", frame({0x03, 0x00, 0x00, 0x00}), ErrorCode::kDecompress},
      // A compressed chunk of garbage.
      {"GarbageChunk", frame({0xe0, 0x00, 0x0a, 0x00, 0x04, 0x5d, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}),
       ErrorCode::kDecompress},
      // Bytes after the last frame.
      {"TrailingBytes", concat({kPatch0v4, {0x00}}), ErrorCode::kPatchMalformed},
  };
}

TEST(GoldenV4, BadStreamsFailWithTheirDocumentedCodes) {
  for (const Bad& b : bad_patches()) {
    auto out = test::apply_patch(kOld0, b.patch);
    ASSERT_FALSE(out) << b.name << ": applied";
    EXPECT_EQ(out.error().code, b.code) << b.name << ": " << test::describe(fail(out.error()));
    auto bytewise = test::apply_in_chunks(kOld0, b.patch, [](std::size_t) { return 1; });
    ASSERT_FALSE(bytewise) << b.name;
    EXPECT_EQ(bytewise.error().code, b.code) << b.name << " (byte by byte): " << test::describe(fail(bytewise.error()));
  }
}

}  // namespace
}  // namespace ota
