// Delta format version 5 (docs/formats.md, "ELF tables"): the x86 and arm64
// predictors also re-point the fields of OLD's .eh_frame_hdr table, its FDEs'
// initial locations and the 8-byte pointers of its data sections. A synthetic
// x86-64 ELF64 executable whose functions move (one is inserted near the
// start) carries all three; the tests read its tables, round-trip it through
// every version, pin a golden vector and feed the readers broken images.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "delta/elf_tables.hpp"
#include "delta/predict.hpp"
#include "ota/delta/delta.hpp"
#include "support/patching.hpp"
#include "support/synthetic_elf.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using test::Function;
using test::kBase;
using test::Layout;
using test::make_elf;

using delta::Compression;
using delta::Predictor;
using delta::detail::Block;
using delta::detail::ElfTables;

// Functions of random code with E8 calls to each other (the x86 predictor's
// part), and a version of them with one function inserted after the first
// and a few bytes edited.
struct Pair {
  Layout old_layout, new_layout;
};

Pair make_pair_of_images(std::size_t functions, std::size_t data_words, std::uint64_t seed) {
  std::vector<Function> funcs;
  for (std::uint32_t i = 0; i < functions; ++i) {
    Bytes code = test::random_bytes(24 + (i * 37) % 90, seed + i);
    funcs.push_back({i, code});
  }
  const auto ids = static_cast<std::uint32_t>(functions + 1);
  Pair p;
  p.old_layout = make_elf(funcs, data_words, ids);
  std::vector<Function> next = funcs;
  next.insert(next.begin() + 1, Function{static_cast<std::uint32_t>(functions), test::random_bytes(200, seed + 999)});
  for (std::size_t k = 3; k < next.size(); k += 17) next[k].code[next[k].code.size() / 2] ^= 0x5A;
  p.new_layout = make_elf(next, data_words, ids);
  return p;
}

std::size_t fde_sites(const ElfTables& t) {
  std::size_t n = 0;
  for (std::uint64_t s = t.eh_begin; s < t.eh_end; ++s) n += t.fde_site(s);
  return n;
}

Result<ElfTables> tables_of(const Bytes& image) { return delta::detail::read_elf_tables(MemorySource(image)); }

delta::DiffOptions options(Compression c = Compression::kLzma) {
  delta::DiffOptions opt = test::fast_options(c, 12);
  opt.old_dictionary_max = 0;
  return opt;
}

void expect_applies(const Bytes& old_image, const Bytes& patch, const Bytes& new_image) {
  auto out = test::apply_patch(old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == new_image);
  auto bytewise = test::apply_in_chunks(old_image, patch, [](std::size_t left) { return std::min<std::size_t>(left, 7); });
  ASSERT_TRUE(bytewise) << test::describe(fail(bytewise.error()));
  EXPECT_TRUE(*bytewise == new_image);
}

TEST(ElfTables, FindsTheSearchTableTheFdesAndTheDataSections) {
  const Pair p = make_pair_of_images(300, 3000, 1);
  const Layout& l = p.old_layout;
  auto t = tables_of(l.image);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->hdr_offset, l.hdr);
  EXPECT_EQ(t->table_begin, l.hdr + 12);
  EXPECT_EQ(t->table_end, l.hdr + 12 + 8 * l.functions);
  EXPECT_EQ(t->eh_begin, l.eh);
  EXPECT_EQ(fde_sites(*t), l.functions);
  EXPECT_TRUE(t->fde_site(l.eh + 20 + 8)) << "the first FDE's initial location";
  EXPECT_FALSE(t->fde_site(l.eh + 8)) << "a CIE has none";
  // Only .data is a pointer range: .text is executable, .eh_frame(_hdr) are tables of their own.
  ASSERT_EQ(t->pointer_ranges.size(), 1u);
  EXPECT_EQ(t->pointer_ranges[0], std::make_pair(l.data, l.data_end));
  // x86-64 ET_EXEC: .text is where 32-bit absolute immediates are looked for.
  ASSERT_EQ(t->code_ranges.size(), 1u);
  EXPECT_EQ(t->code_ranges[0], std::make_pair(l.text, l.hdr));
  EXPECT_EQ(t->fde_shift, 2u) << "20-byte records: initial locations 4-aligned, not all 8-aligned";
  // Another machine (AArch64, e_machine 183), or a PIE executable or shared
  // object (ET_DYN, e_type 3), whose code has no absolute addresses: the
  // same tables, no code ranges.
  for (const auto& [at, value] : {std::pair<std::size_t, std::uint8_t>{18, 183}, {16, 3}}) {
    Bytes other = l.image;
    other[at] = value;
    auto to = tables_of(other);
    ASSERT_TRUE(to) << at;
    EXPECT_TRUE(to->code_ranges.empty()) << at;
    EXPECT_EQ(to->table_end, t->table_end) << at;
    EXPECT_EQ(to->pointer_ranges, t->pointer_ranges) << at;
  }
  EXPECT_EQ(t->to_offset(kBase + 0x1234), std::optional<std::uint64_t>(0x1234));
  EXPECT_EQ(t->to_offset(kBase + l.image.size() + 0x10000), std::nullopt);
  EXPECT_EQ(t->bias(0x20), std::optional<std::int64_t>(kBase));
}

TEST(ElfTables, OnlyElf64LittleEndianImagesHaveAny) {
  const Pair p = make_pair_of_images(20, 30, 2);
  for (auto change : {std::make_pair(0, 0x7E), std::make_pair(4, 1), std::make_pair(5, 2)}) {
    Bytes img = p.old_layout.image;
    img[static_cast<std::size_t>(change.first)] = static_cast<std::uint8_t>(change.second);
    auto t = tables_of(img);
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->empty()) << "byte " << change.first;
  }
  auto t = tables_of(test::random_bytes(5000, 3));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->empty());
  auto tiny = tables_of(Bytes{0x7F, 'E', 'L', 'F'});
  ASSERT_TRUE(tiny);
  EXPECT_TRUE(tiny->empty());
}

TEST(ElfTables, PredictsEveryMovedFieldOfNew) {
  // With the exact map of the insertion, the prediction of OLD's tables at
  // their NEW places is NEW's bytes there (no instruction scan: kNone).
  const Pair p = make_pair_of_images(200, 600, 4);
  const Layout &o = p.old_layout, &n = p.new_layout;
  auto t = tables_of(o.image);
  ASSERT_TRUE(t);
  const std::uint64_t first_end = o.text + ((5 + 24 + 15) / 16 * 16);  // function 0 stays, the rest moves by 208
  const std::int64_t moved = 208;
  const std::int64_t tables_moved = static_cast<std::int64_t>(n.hdr) - static_cast<std::int64_t>(o.hdr);
  std::vector<delta::detail::MapEntry> covers = {{0, first_end, 0},
                                                 {first_end, o.hdr - first_end, moved},
                                                 {o.hdr, o.image.size() - o.hdr, tables_moved}};
  const auto map = delta::detail::AddressMap::from_covers(covers, 0);
  // .data: pointers only; its OLD bytes at NEW's offset.
  const std::int64_t data_delta = static_cast<std::int64_t>(n.data) - static_cast<std::int64_t>(o.data);
  Bytes out(static_cast<std::size_t>(o.data_end - o.data));
  delta::detail::predict(Predictor::kNone, map, o.image, 0, o.image.size(), o.data, out.size(), data_delta, out.data(), &*t);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), n.image.begin() + static_cast<std::ptrdiff_t>(n.data)));
  // The FDE of function 1 (OLD's second FDE) is NEW's third.
  const std::uint64_t old_fde = o.eh + 20 + 20, new_fde = n.eh + 20 + 40;
  Bytes f(20);
  delta::detail::predict(Predictor::kNone, map, o.image, 0, o.image.size(), old_fde, 20,
                         static_cast<std::int64_t>(new_fde) - static_cast<std::int64_t>(old_fde), f.data(), &*t);
  EXPECT_TRUE(std::equal(f.begin() + 8, f.begin() + 12, n.image.begin() + static_cast<std::ptrdiff_t>(new_fde + 8)))
      << "initial location";
  // Table entry of function 5: OLD entry 5 is NEW entry 6; the start moved, the FDE moved.
  Bytes e(8);
  const std::uint64_t old_entry = o.hdr + 12 + 8 * 5, new_entry = n.hdr + 12 + 8 * 6;
  delta::detail::predict(Predictor::kNone, map, o.image, 0, o.image.size(), old_entry, 8,
                         static_cast<std::int64_t>(new_entry) - static_cast<std::int64_t>(old_entry), e.data(), &*t);
  EXPECT_EQ(test::slice(e, 0, 4), test::slice(n.image, new_entry, 4)) << "function start";
  // The code of function 5: its `mov $address_of_function_6, %edi` at the start.
  const std::uint64_t old_fn = o.text + 16 * 0;  // function 0 stays; its mov points to function 1
  Bytes c(5);
  delta::detail::predict(Predictor::kNone, map, o.image, 0, o.image.size(), old_fn, 5, 0, c.data(), &*t);
  EXPECT_EQ(c[0], 0xBF);
  EXPECT_EQ(test::slice(c, 1, 4), test::slice(n.image, n.text + 1, 4)) << "imm32: function 1 moved by 208 bytes";
  EXPECT_NE(test::slice(c, 1, 4), test::slice(o.image, o.text + 1, 4));
}

TEST(ElfTables, Version5RoundTripsAndIsSmallerThanVersion4) {
  const Pair p = make_pair_of_images(1500, 20000, 5);
  const Bytes &o = p.old_layout.image, &n = p.new_layout.image;
  delta::DiffOptions opt = options();
  auto v5 = test::make_patch(o, n, opt);
  ASSERT_TRUE(v5) << test::describe(fail(v5.error()));
  EXPECT_EQ((*v5)[3], 5);
  EXPECT_EQ((*v5)[4] >> 4, static_cast<int>(Predictor::kX86));
  expect_applies(o, *v5, n);
  opt.elf_tables = false;
  auto v4 = test::make_patch(o, n, opt);
  ASSERT_TRUE(v4);
  EXPECT_EQ((*v4)[3], 4);
  expect_applies(o, *v4, n);
  EXPECT_LT(v5->size() * 2, v4->size()) << "version 5 " << v5->size() << " B, version 4 " << v4->size() << " B";
  // zstd keeps version 3, with OLD as dictionary too.
  for (auto c : {Compression::kZstd, Compression::kZstdOld}) {
    delta::DiffOptions z = options(c);
    if (c == Compression::kZstdOld) z.old_dictionary_max = std::uint64_t{1} << 24;
    auto v3 = test::make_patch(o, n, z);
    ASSERT_TRUE(v3);
    EXPECT_EQ((*v3)[3], 3);
    expect_applies(o, *v3, n);
  }
  // LZMA2 with OLD as dictionary: version 5 as well.
  delta::DiffOptions lo = options();
  lo.old_dictionary_max = std::uint64_t{1} << 24;
  auto v5old = test::make_patch(o, n, lo);
  ASSERT_TRUE(v5old);
  EXPECT_EQ((*v5old)[3], 5);
  EXPECT_EQ((*v5old)[4] & 15, static_cast<int>(Compression::kLzmaOld));
  expect_applies(o, *v5old, n);
}

TEST(ElfTables, TablesThatDoNotPayAreLeftOut) {
  // NEW's data words keep OLD's values although the functions moved (as a PIE
  // image's integers that look like addresses would): re-pointing them would
  // make thousands of bytes differ that match as they are, more than the few
  // functions' table fields explain. The generator leaves the tables out
  // (version 4), with the predictor it was told to use.
  Pair p = make_pair_of_images(40, 30000, 8);
  Layout& nl = p.new_layout;
  const Layout& ol = p.old_layout;
  ASSERT_EQ(ol.data_end - ol.data, nl.data_end - nl.data);
  std::copy(ol.image.begin() + static_cast<std::ptrdiff_t>(ol.data), ol.image.begin() + static_cast<std::ptrdiff_t>(ol.data_end),
            nl.image.begin() + static_cast<std::ptrdiff_t>(nl.data));
  delta::DiffOptions opt = options();
  opt.predictor = delta::PredictorChoice::kX86;
  auto patch = test::make_patch(ol.image, nl.image, opt);
  ASSERT_TRUE(patch) << test::describe(fail(patch.error()));
  EXPECT_EQ((*patch)[3], 4);
  EXPECT_EQ((*patch)[4] >> 4, static_cast<int>(Predictor::kX86));
  expect_applies(ol.image, *patch, nl.image);
  // The same pair with NEW's own pointers: the tables pay and are kept.
  const Pair q = make_pair_of_images(40, 30000, 8);
  auto kept = test::make_patch(q.old_layout.image, q.new_layout.image, opt);
  ASSERT_TRUE(kept);
  EXPECT_EQ((*kept)[3], 5);
  expect_applies(q.old_layout.image, *kept, q.new_layout.image);
}

TEST(ElfTables, TheSamePatchForAnyThreadCountAndFrameSplit) {
  // 4 KiB frames: the search table spans several, each gets its part.
  const Pair p = make_pair_of_images(2000, 3000, 6);
  ASSERT_GT(p.new_layout.eh - p.new_layout.hdr, std::uint64_t{3} * 4096);
  delta::DiffOptions opt = options();
  opt.threads = 1;
  auto one = test::make_patch(p.old_layout.image, p.new_layout.image, opt);
  opt.threads = 4;
  auto four = test::make_patch(p.old_layout.image, p.new_layout.image, opt);
  ASSERT_TRUE(one && four);
  EXPECT_TRUE(*one == *four);
  expect_applies(p.old_layout.image, *one, p.new_layout.image);
}

TEST(ElfTables, BrokenTablesInOldStillRoundTrip) {
  // Every byte of the headers, of the search table's start and of the first
  // .eh_frame records, changed in OLD: the readers take whatever they find,
  // generator and patcher agree, and NEW comes out.
  const Pair p = make_pair_of_images(40, 60, 7);
  const Layout& l = p.old_layout;
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < 64 + 2 * 56; ++i) positions.push_back(i);
  for (std::size_t i = 0; i < 40; ++i) positions.push_back(l.hdr + i);
  for (std::size_t i = 0; i < 64; ++i) positions.push_back(l.eh + i);
  const std::size_t shoff = l.data_end;
  for (std::size_t i = 64; i < 64 * 5; i += 3) positions.push_back(shoff + i);
  delta::DiffOptions opt = options();
  opt.predictor = delta::PredictorChoice::kX86;
  for (std::size_t pos : positions) {
    for (std::uint8_t x : {std::uint8_t{0x01}, std::uint8_t{0xFF}}) {
      Bytes old_image = l.image;
      old_image[pos] ^= x;
      auto t = tables_of(old_image);
      ASSERT_TRUE(t) << pos;
      auto patch = test::make_patch(old_image, p.new_layout.image, opt);
      ASSERT_TRUE(patch) << pos;
      auto out = test::apply_patch(old_image, *patch);
      ASSERT_TRUE(out) << "byte " << pos << " ^ " << int{x} << ": " << test::describe(fail(out.error()));
      ASSERT_TRUE(*out == p.new_layout.image) << "byte " << pos;
    }
  }
}

TEST(ElfTables, SpliceKeepsTheBlocksTilingTheFrame) {
  // Frame [100, 200) as three blocks; a replacement for [120, 260) replaces its part.
  std::vector<Block> frame = {{100, 0, 10, 5}, {115, 50, 30, 0}, {145, 90, 40, 15}};
  const std::vector<Block> replacement = {{120, 500, 8, 0}, {128, 700, 16, 8}, {152, 900, 108, 0}};
  delta::detail::splice_blocks(frame, replacement);
  std::uint64_t at = 100;
  for (const Block& b : frame) {
    EXPECT_EQ(b.new_pos, at);
    at += b.add_len + b.insert_len;
  }
  EXPECT_EQ(at, 200u);
  ASSERT_EQ(frame.size(), 5u);
  EXPECT_EQ(frame[1].new_pos, 115u);
  EXPECT_EQ(frame[1].add_len, 5u);  // [115, 120) of the second block
  EXPECT_EQ(frame[2].old_pos, 500u);
  EXPECT_EQ(frame[4].new_pos, 152u);
  EXPECT_EQ(frame[4].old_pos, 900u);
  EXPECT_EQ(frame[4].add_len, 48u);  // cut at the frame's end
  // A replacement that misses the frame changes nothing.
  std::vector<Block> other = {{0, 0, 50, 0}};
  delta::detail::splice_blocks(other, replacement);
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].add_len, 50u);
}

TEST(ElfTables, Version5GoesWithLzmaAndTheX86OrArm64Predictor) {
  delta::PatchHeader h;
  h.compression = Compression::kLzma;
  h.predictor = Predictor::kX86;
  h.elf_tables = true;
  h.window_log = 12;
  h.frame_log = 12;
  Bytes enc = delta::encode_header(h);
  EXPECT_EQ(enc[3], 5);
  auto parsed = delta::parse_header(enc);
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->first.elf_tables);
  EXPECT_EQ(parsed->first.version, 5);
  h.elf_tables = false;
  EXPECT_EQ(delta::encode_header(h)[3], 4);
  auto v4 = delta::parse_header(delta::encode_header(h));
  ASSERT_TRUE(v4);
  EXPECT_FALSE(v4->first.elf_tables);
  struct Case {
    std::uint8_t coding;  // predictor << 4 | compression
    const char* why;
  };
  for (const Case& c : {Case{0x11, "zstd"}, Case{0x12, "zstd with OLD"}, Case{0x10, "no compression"},
                        Case{0x23, "Thumb predictor"}, Case{0x03, "no predictor"}}) {
    Bytes bad = enc;
    bad[4] = c.coding;
    auto r = delta::parse_header(bad);
    ASSERT_FALSE(r) << c.why;
    EXPECT_EQ(r.error().code, ErrorCode::kUnsupported) << c.why;
  }
  Bytes arm = enc;
  arm[4] = 0x34;  // arm64, LZMA2 with OLD
  EXPECT_TRUE(delta::parse_header(arm));
  Bytes v7 = enc;
  v7[3] = 7;  // version 6 is the xz-stream wrapper; 7 does not exist
  auto r7 = delta::parse_header(v7);
  ASSERT_FALSE(r7);
  EXPECT_EQ(r7.error().code, ErrorCode::kUnsupported);
}

// ---- golden vector ----

// Generator output for make_pair_of_images(12, 24, 8) with golden_options()
// (LZMA2 preset 2, 4 KiB frames and dictionary, the x86 predictor with ELF
// tables): whatever the generator writes later, it must keep applying.
const Bytes kGoldenV5 = {
    0x4f, 0x54, 0x44, 0x05, 0x13, 0x11, 0x0c, 0x90, 0x16, 0x80, 0x18, 0x2f, 0x03, 0xb1, 0xed, 0xc8,
    0x25, 0x30, 0xe0, 0x8e, 0xe2, 0x6f, 0x56, 0xeb, 0x0b, 0xe4, 0xff, 0xe8, 0xa7, 0x04, 0x3d, 0x45,
    0x75, 0x90, 0x91, 0x8e, 0x64, 0xdf, 0xe0, 0x7e, 0xe7, 0x79, 0x77, 0x72, 0x9d, 0x03, 0x80, 0x44,
    0x82, 0xe3, 0xbe, 0xab, 0x32, 0x33, 0x23, 0x37, 0x2b, 0x41, 0xf4, 0x23, 0x59, 0x4e, 0xd1, 0xa2,
    0xff, 0x91, 0x92, 0xcf, 0x57, 0x53, 0x21, 0x03, 0xba, 0xc3, 0x57, 0x00, 0x16, 0x05, 0x00, 0xa4,
    0x08, 0x00, 0x00, 0xfd, 0x06, 0xa0, 0x03, 0x00, 0xa0, 0x01, 0x10, 0x00, 0xc0, 0x01, 0x28, 0x00,
    0x8f, 0x04, 0x08, 0x03, 0xe0, 0x01, 0x6c, 0x01, 0x4c, 0x5d, 0x00, 0x50, 0x00, 0x3d, 0x25, 0x90,
    0x03, 0x53, 0xae, 0xfe, 0xfa, 0x5d, 0x6d, 0xd6, 0x7f, 0xec, 0xf3, 0xcd, 0x18, 0x08, 0x15, 0xfc,
    0xbd, 0x4d, 0x0d, 0xcb, 0xa7, 0xe3, 0x12, 0x84, 0x0c, 0x6c, 0x3f, 0x14, 0xa5, 0xdc, 0xd2, 0x7f,
    0xc1, 0x94, 0xbf, 0xcf, 0x22, 0x58, 0xd3, 0x69, 0xaa, 0xb7, 0x28, 0x1b, 0x3a, 0x76, 0xe3, 0x59,
    0x65, 0x68, 0xce, 0x60, 0x67, 0x1a, 0xe9, 0xdb, 0xc0, 0x8f, 0x99, 0xa8, 0xb7, 0xa7, 0xda, 0xae,
    0xf2, 0xfd, 0x92, 0xa8, 0x8a, 0x9b, 0x49, 0x0d, 0x15, 0x87, 0x27, 0x03, 0xac, 0x12, 0x48, 0x06,
    0x9a, 0xf3, 0xd7, 0xb3, 0x4b, 0x60, 0x76, 0x5a, 0x2a, 0x6e, 0x92, 0x9c, 0x6c, 0xee, 0x33, 0x3c,
    0xcd, 0x1a, 0x65, 0x4e, 0x15, 0xc0, 0xb4, 0x72, 0x11, 0x76, 0x29, 0xbd, 0x22, 0xca, 0xd3, 0x83,
    0x68, 0x27, 0x94, 0xf3, 0x77, 0x16, 0xf9, 0x94, 0xa7, 0x8d, 0x64, 0xce, 0xaf, 0x13, 0x12, 0x3d,
    0xef, 0x7d, 0x8c, 0x59, 0x39, 0x1e, 0x79, 0x88, 0x80, 0x53, 0x6f, 0xae, 0x45, 0x0f, 0x3a, 0x87,
    0x98, 0x07, 0x3a, 0x1d, 0xb1, 0x0f, 0x11, 0x77, 0x21, 0xfe, 0xde, 0x74, 0x56, 0x83, 0xdc, 0x2d,
    0x4b, 0xd5, 0x71, 0xa6, 0x29, 0xd2, 0x87, 0x13, 0x88, 0x64, 0x7d, 0x35, 0x83, 0x72, 0xc7, 0xe6,
    0x2f, 0x70, 0x8d, 0x32, 0x59, 0x1e, 0x37, 0xd4, 0x74, 0x7d, 0x36, 0x96, 0xac, 0xbc, 0x0f, 0x20,
    0x3f, 0x46, 0x61, 0x9a, 0x6e, 0x1c, 0x81, 0xed, 0xac, 0x4b, 0x16, 0x72, 0x6e, 0x13, 0xcf, 0x04,
    0x2b, 0x19, 0x29, 0xb8, 0xc2, 0xe1, 0x59, 0x67, 0xba, 0x49, 0xb0, 0xa3, 0xc3, 0x5a, 0xe4, 0xa6,
    0xf0, 0xcb, 0xcc, 0xcd, 0x16, 0x97, 0x32, 0xe3, 0x89, 0xf1, 0x8d, 0x64, 0x9c, 0x4c, 0x71, 0xba,
    0x08, 0xf1, 0xe6, 0x02, 0xd6, 0xac, 0x38, 0x76, 0x8b, 0x35, 0xc9, 0xeb, 0x0a, 0x21, 0xce, 0xc1,
    0x70, 0x7a, 0xad, 0xde, 0x0e, 0xe8, 0x14, 0x0c, 0x76, 0xc3, 0xf9, 0xf1, 0xb1, 0xae, 0xc6, 0xb2,
    0x8a, 0x8d, 0x3a, 0xf2, 0x63, 0x1d, 0xab, 0x25, 0x7e, 0x24, 0x17, 0x0f, 0x3c, 0xa4, 0xb0, 0xce,
    0x07, 0xa9, 0x59, 0x88, 0x3b, 0xb1, 0x76, 0x28, 0xe8, 0x0c, 0xb0, 0x96, 0x00, 0x3d, 0x53, 0xea,
    0xe7, 0xf0, 0xd7, 0x94, 0xb7, 0x1d, 0x78, 0x5b, 0xc4, 0x50, 0x26, 0x1a, 0xb0, 0xcb, 0xd6, 0xa3,
    0xb7, 0xaa, 0xbb, 0xdc, 0x5b, 0x8a, 0x00, 0x00
};

delta::DiffOptions golden_options() {
  delta::DiffOptions opt = options();
  opt.predictor = delta::PredictorChoice::kX86;
  return opt;
}

TEST(GoldenV5, GeneratedVectorApplies) {
  const Pair p = make_pair_of_images(12, 24, 8);
  ASSERT_EQ(kGoldenV5[3], 5);
  expect_applies(p.old_layout.image, kGoldenV5, p.new_layout.image);
  auto now = test::make_patch(p.old_layout.image, p.new_layout.image, golden_options());
  ASSERT_TRUE(now);
  EXPECT_EQ((*now)[3], 5);
  expect_applies(p.old_layout.image, *now, p.new_layout.image);
}

TEST(GoldenV5, EveryMutationFailsOrGivesNew) {
  const Pair p = make_pair_of_images(12, 24, 8);
  for (std::size_t i = 0; i < kGoldenV5.size(); ++i) {
    for (std::uint8_t x : {std::uint8_t{0x01}, std::uint8_t{0xFF}}) {
      Bytes patch = kGoldenV5;
      patch[i] ^= x;
      auto out = test::apply_patch(p.old_layout.image, patch);
      if (out) {
        EXPECT_TRUE(*out == p.new_layout.image) << "byte " << i;
      }
    }
  }
}

}  // namespace
}  // namespace ota
