// The AArch64 predictor on whole images: zero-filled memory in the map, a
// synthetic AArch64 ELF whose code and data move (round trip, size, threads,
// auto mode, mutations), and the header of version 2.
#include "unit/arm64_words.hpp"

namespace ota {
namespace {

// ---- a synthetic AArch64 image whose code and data move ----

struct Segment {
  std::uint64_t offset, vaddr, filesz, memsz;
};

// `size` bytes starting with an ELF64 header and one PT_LOAD program header per segment.
Bytes arm64_elf(std::size_t size, const std::vector<Segment>& segments, std::uint16_t machine = 183) {
  Bytes img(std::max<std::size_t>(size, 64 + 56 * segments.size()));
  auto put = [&](std::size_t at, std::uint64_t v, int bytes) {
    for (int j = 0; j < bytes; ++j) img[at + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(v >> (8 * j));
  };
  const std::uint8_t ident[16] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::copy(std::begin(ident), std::end(ident), img.begin());
  put(16, 2, 2);        // e_type: executable
  put(18, machine, 2);  // e_machine
  put(20, 1, 4);        // e_version
  put(32, 64, 8);       // e_phoff
  put(52, 64, 2);       // e_ehsize
  put(54, 56, 2);       // e_phentsize
  put(56, segments.size(), 2);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::size_t at = 64 + 56 * i;
    put(at, 1, 4);      // PT_LOAD
    put(at + 4, 6, 4);  // RW
    put(at + 8, segments[i].offset, 8);
    put(at + 16, segments[i].vaddr, 8);
    put(at + 24, segments[i].vaddr, 8);
    put(at + 32, segments[i].filesz, 8);
    put(at + 40, segments[i].memsz, 8);
    put(at + 48, 0x10000, 8);
  }
  return img;
}

// ---- zero-initialised memory in the map ----

std::vector<MapEntry> one_cover(std::uint64_t size) { return {{0, size, 0}}; }

TEST(Arm64ZeroFilled, ReplacesTheCoversOfZeroFilledMemory) {
  // OLD's segment at 0x10000 has 0x8000 file bytes and 0x10000 in memory: its
  // zero-filled memory is at file offsets [0x18000, 0x20000); NEW's starts 0x400 later.
  const Bytes old_image = arm64_elf(0x20000, {{0x10000, 0x410000, 0x8000, 0x10000}});
  const Bytes new_image = arm64_elf(0x20400, {{0x10000, 0x410000, 0x8400, 0x10400}});
  std::vector<MapEntry> covers = {{0, 0x1C000, 0}, {0x1C000, 0x4000, 0x100}};
  delta::detail::map_zero_filled(old_image, new_image, covers);
  const AddressMap map = AddressMap::from_covers(covers, 0);
  EXPECT_EQ(map.map(0x100), std::optional<std::int64_t>(0x100));
  EXPECT_EQ(map.map(0x17FFF), std::optional<std::int64_t>(0x17FFF));
  EXPECT_EQ(map.map(0x18000), std::optional<std::int64_t>(0x18400));
  EXPECT_EQ(map.map(0x1FFFF), std::optional<std::int64_t>(0x203FF));
  EXPECT_EQ(map.map_past_end(0x20010, 0x20000), std::optional<std::int64_t>(0x20410));
}

TEST(Arm64ZeroFilled, PastTheEndOfOldTheLastByteCarriesTheShift) {
  // OLD ends where its zero-filled memory starts.
  const Bytes old_image = arm64_elf(0x18000, {{0x10000, 0x410000, 0x8000, 0x10000}});
  const Bytes new_image = arm64_elf(0x18400, {{0x10000, 0x410000, 0x8400, 0x10400}});
  std::vector<MapEntry> covers = one_cover(old_image.size());
  delta::detail::map_zero_filled(old_image, new_image, covers);
  const AddressMap map = AddressMap::from_covers(covers, 0);
  EXPECT_EQ(map.map(0x17FFE), std::optional<std::int64_t>(0x17FFE));
  EXPECT_EQ(map.map(0x17FFF), std::optional<std::int64_t>(0x183FF));
  EXPECT_EQ(map.map_past_end(0x18010, 0x18000), std::optional<std::int64_t>(0x18410));
}

TEST(Arm64ZeroFilled, LeavesTheCoversAloneUnlessBothAreSuchImages) {
  const Bytes old_image = arm64_elf(0x20000, {{0x10000, 0x410000, 0x8000, 0x10000}});
  const Bytes new_image = arm64_elf(0x20400, {{0x10000, 0x410000, 0x8400, 0x10400}});
  auto unchanged = [&](const Bytes& o, const Bytes& n, const char* why) {
    SCOPED_TRACE(why);
    std::vector<MapEntry> covers = one_cover(o.size());
    delta::detail::map_zero_filled(o, n, covers);
    ASSERT_EQ(covers.size(), 1u);
    EXPECT_EQ(covers[0].length, o.size());
    EXPECT_EQ(covers[0].shift, 0);
  };
  unchanged(test::random_bytes(0x20000, 1), new_image, "OLD is no ELF image");
  unchanged(old_image, test::random_bytes(0x20000, 2), "NEW is no ELF image");
  unchanged(arm64_elf(0x20000, {{0x10000, 0x410000, 0x8000, 0x10000}}, 62), new_image, "OLD is x86-64");
  unchanged(old_image, arm64_elf(0x20400, {{0x10000, 0x410000, 0x8400, 0x10400}, {0x18400, 0x430000, 0x10, 0x20}}),
            "a different number of zero-filled segments");
  unchanged(arm64_elf(0x20000, {{0x10000, 0x410800, 0x8000, 0x10000}}), new_image,
            "offsets that do not stand for addresses");
  unchanged(arm64_elf(0x20000, {{0x10000, 0x410000, 0x8000, 0x8000}}), new_image, "no zero-filled memory");
  Bytes elf32 = old_image;
  elf32[4] = 1;
  unchanged(elf32, new_image, "ELF32");
  Bytes big_endian = old_image;
  big_endian[5] = 2;
  unchanged(big_endian, new_image, "big-endian");
  // Program headers out of the file, or more of them than it holds: read nothing past the end.
  Bytes far_table = old_image;
  far_table[32 + 5] = 0x7F;  // e_phoff past the end
  unchanged(far_table, new_image, "e_phoff out of the file");
  Bytes many = arm64_elf(0x100, {{0x10000, 0x410000, 0x8000, 0x10000}});
  many[56] = 0xFF;
  many[57] = 0xFF;  // 65535 program headers in 256 bytes
  unchanged(many, new_image, "e_phnum out of the file");
  Bytes tiny(old_image.begin(), old_image.begin() + 63);
  unchanged(tiny, new_image, "63 bytes");
}

struct Program {
  Bytes old_image, new_image;
};

// A little-endian ELF64 header (e_machine 183) with one program header, a
// loadable segment of the data and the zero-initialised memory after it; code,
// then the data. The code is filler (data-processing words), calls and jumps
// between functions, short branches, ADR, and ADRP + ADD/LDR pairs that
// address the data and the zero-initialised memory. NEW inserts code in the
// middle of the code and bytes in the middle of the data, so code after the
// first insertion moves by one shift, the data by another (not a multiple of
// 4 KiB), the zero-initialised memory by a third, and every reference in NEW is
// encoded for where its target is in NEW.
Program make_arm64_program(std::size_t code_words, std::size_t data_size, std::uint64_t seed, bool elf = true) {
  test::Rng rng(seed);
  enum Kind { kFiller, kCall, kJump, kCond, kTest, kPairAdd, kPairLoad, kPairZero, kAdr };
  const std::size_t zero_size = 0x6000;
  struct Insn {
    Kind kind;
    std::uint32_t bits;   // filler word, or registers and condition
    std::size_t target;   // code word index, or data offset
  };
  auto filler = [&] {
    static const std::uint32_t kOps[] = {0xAA000000, 0xD2800000, 0x8B000000, 0xCB000000, 0xF2A00000,
                                         0x2A000000, 0x52800000, 0x12000000, 0x9B000000, 0xD3400000};
    return kOps[rng.below(10)] | static_cast<std::uint32_t>(rng.below(1u << 21));
  };
  auto program = [&](std::size_t words) {
    std::vector<Insn> p(words);
    for (std::size_t i = 0; i < words; ++i) {
      const std::uint64_t r = rng.below(100);
      const auto near = [&] {
        const std::size_t lo = i >= 200 ? i - 200 : 0;
        return std::min<std::size_t>(words - 1, lo + static_cast<std::size_t>(rng.below(400)));
      };
      if (r < 50) p[i] = {kFiller, filler(), 0};
      else if (r < 62) p[i] = {kCall, 0, static_cast<std::size_t>(rng.below(words / 16)) * 16};
      else if (r < 66) p[i] = {kJump, 0, near()};
      else if (r < 76) p[i] = {kCond, static_cast<std::uint32_t>(rng.below(16)), near()};
      else if (r < 80) p[i] = {kTest, static_cast<std::uint32_t>(rng.below(32)), near()};
      else if (r < 88 && i + 1 < words) {
        p[i] = {kPairAdd, static_cast<std::uint32_t>(rng.below(31)), static_cast<std::size_t>(rng.below(data_size))};
        p[++i] = {kFiller, 0, 0};  // the ADD: written with the ADRP
      } else if (r < 94 && i + 1 < words) {
        p[i] = {kPairLoad, static_cast<std::uint32_t>(rng.below(31)), static_cast<std::size_t>(rng.below(data_size / 8)) * 8};
        p[++i] = {kFiller, 0, 0};
      } else if (r < 96 && i + 1 < words) {
        p[i] = {kPairZero, static_cast<std::uint32_t>(rng.below(31)), static_cast<std::size_t>(rng.below(zero_size / 8)) * 8};
        p[++i] = {kFiller, 0, 0};
      } else if (r < 98) p[i] = {kAdr, static_cast<std::uint32_t>(rng.below(31)), static_cast<std::size_t>(rng.below(data_size))};
      else p[i] = {kFiller, kRet, 0};
    }
    return p;
  };
  const std::size_t header = 0x1000;
  std::vector<Insn> old_code = program(code_words);
  const std::size_t insert_at = code_words / 2 & ~std::size_t{15}, insert_words = 700;
  std::vector<Insn> added = program(insert_words);  // new code: references within itself
  for (Insn& in : added)
    if (in.kind == kCall || in.kind == kJump || in.kind == kCond || in.kind == kTest) in.target += insert_at;
  const Bytes old_data = test::structured_bytes(data_size, seed + 1);
  const std::size_t data_insert_at = data_size / 3, data_insert_len = 1112;
  const Bytes new_data = test::with_insertion(old_data, data_insert_at, test::random_bytes(data_insert_len, seed + 2));

  // Lays out a code and its data; code_pos/data_pos say where a target is.
  auto emit = [&](const std::vector<Insn>& code, const Bytes& data, auto code_pos, auto data_pos) {
    Bytes img(header + 4 * code.size());
    const std::size_t data_start = img.size();
    if (elf) img = arm64_elf(img.size(), {{data_start, 0x400000 + data_start, data.size(), data.size() + zero_size}});
    const auto zero_pos = [&](std::size_t z) { return data_start + data.size() + z; };
    for (std::size_t i = 0; i < code.size(); ++i) {
      const Insn& in = code[i];
      const std::int64_t pc = static_cast<std::int64_t>(header + 4 * i);
      const std::int64_t to_code = static_cast<std::int64_t>(code_pos(in.target)) - pc;
      const std::int64_t to_data = static_cast<std::int64_t>(data_pos(in.target)) - pc;
      switch (in.kind) {
        case kFiller:
          if (in.bits) put_word(img, static_cast<std::size_t>(pc), in.bits);
          break;
        case kCall: put_word(img, static_cast<std::size_t>(pc), bl(to_code)); break;
        case kJump: put_word(img, static_cast<std::size_t>(pc), b(to_code)); break;
        case kCond: put_word(img, static_cast<std::size_t>(pc), b_cond(in.bits, to_code)); break;
        case kTest: put_word(img, static_cast<std::size_t>(pc), tbz(3, in.bits, to_code)); break;
        case kAdr: put_word(img, static_cast<std::size_t>(pc), adr(in.bits, to_data)); break;
        case kPairAdd:
        case kPairLoad:
        case kPairZero: {
          const std::int64_t t = static_cast<std::int64_t>(in.kind == kPairZero ? zero_pos(in.target) : data_pos(in.target));
          put_word(img, static_cast<std::size_t>(pc), adrp(in.bits, (t >> 12) - (pc >> 12)));
          const auto lo = static_cast<unsigned>(t & 0xFFF);
          put_word(img, static_cast<std::size_t>(pc + 4),
                   in.kind == kPairLoad ? ldr_x(1, in.bits, lo) : add_x(in.bits, in.bits, lo));
          break;
        }
      }
    }
    img.insert(img.end(), data.begin(), data.end());
    return img;
  };
  const std::size_t old_data_start = header + 4 * old_code.size();
  Program p;
  p.old_image = emit(
      old_code, old_data, [&](std::size_t w) { return header + 4 * w; },
      [&](std::size_t d) { return old_data_start + d; });
  std::vector<Insn> new_code = old_code;
  new_code.insert(new_code.begin() + static_cast<std::ptrdiff_t>(insert_at), added.begin(), added.end());
  const std::size_t new_data_start = header + 4 * new_code.size();
  // Old code's targets (word indices of old code) and added code's (already in NEW indices).
  std::vector<bool> is_added(new_code.size(), false);
  std::fill(is_added.begin() + static_cast<std::ptrdiff_t>(insert_at),
            is_added.begin() + static_cast<std::ptrdiff_t>(insert_at + insert_words), true);
  for (std::size_t i = 0; i < new_code.size(); ++i) {
    Insn& in = new_code[i];
    if (is_added[i] || !(in.kind == kCall || in.kind == kJump || in.kind == kCond || in.kind == kTest)) continue;
    if (in.target >= insert_at) in.target += insert_words;
  }
  p.new_image = emit(
      new_code, new_data, [&](std::size_t w) { return header + 4 * w; },
      [&](std::size_t d) { return new_data_start + (d < data_insert_at ? d : d + data_insert_len); });
  return p;
}

struct Made {
  Bytes patch;
  delta::DiffStats stats;
};

Made diff_with(const Program& p, PredictorChoice choice, Compression compression = Compression::kZstd) {
  delta::DiffOptions opt = test::fast_options(compression, 16);
  opt.predictor = choice;
  VectorWriter out;
  auto stats = delta::diff(p.old_image, p.new_image, out, opt);
  EXPECT_TRUE(stats) << test::describe(stats ? ok() : fail(stats.error()));
  return {out.data(), stats ? *stats : delta::DiffStats{}};
}

void expect_applies(const Program& p, const Bytes& patch) {
  auto out = test::apply_patch(p.old_image, patch);
  ASSERT_TRUE(out) << test::describe(out ? ok() : fail(out.error()));
  EXPECT_TRUE(*out == p.new_image);
  auto chunked = test::apply_in_chunks(p.old_image, patch, [](std::size_t) { return std::size_t{1}; });
  ASSERT_TRUE(chunked);
  EXPECT_TRUE(*chunked == p.new_image);
  delta::PatchOptions background;
  background.hash_in_background = true;
  auto threaded = test::apply_in_chunks(p.old_image, patch, [](std::size_t left) { return std::min<std::size_t>(left, 333); },
                                        background);
  ASSERT_TRUE(threaded);
  EXPECT_TRUE(*threaded == p.new_image);
}

TEST(Arm64Predictor, SyntheticImageRoundTripsAndShrinks) {
  const Program p = make_arm64_program(60000, 80000, 21);
  ASSERT_TRUE(delta::detail::looks_like_arm64(p.old_image));
  ASSERT_FALSE(delta::detail::looks_like_x86(p.old_image));
  Made plain = diff_with(p, PredictorChoice::kNone);
  Made predicted = diff_with(p, PredictorChoice::kAuto);
  EXPECT_EQ(plain.stats.predictor, Predictor::kNone);
  EXPECT_EQ(predicted.stats.predictor, Predictor::kArm64) << "auto picks arm64 for an AArch64 ELF";
  EXPECT_GT(predicted.stats.map_entries, 0u);
  EXPECT_LT(predicted.patch.size() * 3, plain.patch.size())
      << "predicted " << predicted.patch.size() << " vs plain " << plain.patch.size();
  auto header = delta::parse_header(predicted.patch);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->first.version, 3) << "version 3 by default, with any predictor";
  EXPECT_EQ(header->first.predictor, Predictor::kArm64);
  expect_applies(p, plain.patch);
  expect_applies(p, predicted.patch);
  // Uncompressed records, and zstd with OLD as dictionary.
  expect_applies(p, diff_with(p, PredictorChoice::kArm64, Compression::kNone).patch);
  expect_applies(p, diff_with(p, PredictorChoice::kArm64, Compression::kZstdOld).patch);
}

TEST(Arm64Predictor, TheSamePatchForAnyThreadCount) {
  const Program p = make_arm64_program(20000, 30000, 22);
  delta::DiffOptions opt = test::fast_options(Compression::kZstd, 12);
  opt.predictor = PredictorChoice::kArm64;
  opt.threads = 1;
  auto one = test::make_patch(p.old_image, p.new_image, opt);
  opt.threads = 4;
  auto four = test::make_patch(p.old_image, p.new_image, opt);
  ASSERT_TRUE(one && four);
  EXPECT_EQ(*one, *four);
}

TEST(Arm64Predictor, AutoNeedsAnAArch64Elf) {
  // The same code without the ELF identification: auto tries Thumb, not arm64.
  const Program p = make_arm64_program(20000, 30000, 23, /*elf=*/false);
  EXPECT_FALSE(delta::detail::looks_like_arm64(p.old_image));
  Made m = diff_with(p, PredictorChoice::kAuto);
  EXPECT_NE(m.stats.predictor, Predictor::kArm64);
  expect_applies(p, m.patch);
  // An x86-64 ELF is not AArch64.
  Bytes x86 = p.old_image;
  const std::uint8_t ident[20] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 62, 0};
  std::copy(std::begin(ident), std::end(ident), x86.begin());
  EXPECT_FALSE(delta::detail::looks_like_arm64(x86));
  EXPECT_FALSE(delta::detail::looks_like_arm64(Bytes(ident, ident + 19)));
}

TEST(Arm64Predictor, ForcedOnUnrelatedDataStillRoundTrips) {
  const Bytes old_image = test::random_bytes(50000, 31);
  const Bytes new_image = test::with_random_edits(test::with_insertion(old_image, 100, test::random_bytes(77, 32)), 300, 33);
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    delta::DiffOptions opt = test::fast_options(c, 12);
    opt.predictor = PredictorChoice::kArm64;
    auto patch = test::make_patch(old_image, new_image, opt);
    ASSERT_TRUE(patch);
    auto out = test::apply_patch(old_image, *patch);
    ASSERT_TRUE(out) << test::describe(out ? ok() : fail(out.error()));
    EXPECT_TRUE(*out == new_image);
  }
}

TEST(Arm64Predictor, EveryMutationFailsOrGivesNew) {
  const Program p = make_arm64_program(1200, 1500, 24);
  delta::DiffOptions opt = test::fast_options(Compression::kZstd, 12);
  opt.predictor = PredictorChoice::kArm64;
  auto patch = test::make_patch(p.old_image, p.new_image, opt);
  ASSERT_TRUE(patch);
  ASSERT_LT(patch->size(), 6000u);
  std::size_t failures = 0;
  for (std::size_t i = 0; i < patch->size(); ++i) {
    for (std::uint8_t x : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      Bytes bad = *patch;
      bad[i] ^= x;
      auto out = test::apply_patch(p.old_image, bad);
      if (out) {
        ASSERT_TRUE(*out == p.new_image) << "offset " << i << " xor " << int(x) << " succeeded with a wrong result";
      } else {
        ++failures;
      }
    }
  }
  EXPECT_GT(failures, patch->size());
}

// ---- the header: version 2 is predictor 3 ----

Bytes header_bytes(std::uint8_t version, std::uint8_t coding) {
  delta::PatchHeader h;
  h.compression = Compression::kNone;
  h.window_log = 0;
  h.frame_log = 12;
  h.old_size = 8;
  h.new_size = 10;
  Bytes out = delta::encode_header(h);
  out[3] = version;
  out[4] = coding;
  return out;
}

ErrorCode parse_code(const Bytes& header) {
  auto parsed = delta::parse_header(header);
  return parsed ? ErrorCode::kOk : parsed.error().code;
}

TEST(Arm64Header, VersionTwoCarriesPredictorThree) {
  delta::PatchHeader h;
  h.version = 1;  // interleaved records: version 2 for predictor 3, else 1
  h.predictor = Predictor::kArm64;
  const Bytes encoded = delta::encode_header(h);
  EXPECT_EQ(encoded[3], 2);
  EXPECT_EQ(encoded[4], 0x31);
  auto parsed = delta::parse_header(encoded);
  ASSERT_TRUE(parsed) << test::describe(parsed ? ok() : fail(parsed.error()));
  EXPECT_EQ(parsed->first.version, 2);
  EXPECT_EQ(parsed->first.predictor, Predictor::kArm64);
  // Every other predictor keeps version 1, so those patches stay as they were.
  for (Predictor p : {Predictor::kNone, Predictor::kX86, Predictor::kThumb}) {
    h.predictor = p;
    EXPECT_EQ(delta::encode_header(h)[3], 1);
    EXPECT_EQ(delta::format_version_for(p, delta::RecordLayout::kInterleaved), 1);
    EXPECT_EQ(delta::format_version_for(p), 3);
  }
  EXPECT_EQ(delta::format_version_for(Predictor::kArm64, delta::RecordLayout::kInterleaved), 2);
  EXPECT_EQ(delta::format_version_for(Predictor::kArm64), 3);
}

TEST(Arm64Header, RefusesWhatNoVersionHas) {
  EXPECT_EQ(parse_code(header_bytes(1, 0x00)), ErrorCode::kOk);
  EXPECT_EQ(parse_code(header_bytes(1, 0x20)), ErrorCode::kOk);
  EXPECT_EQ(parse_code(header_bytes(2, 0x30)), ErrorCode::kOk);
  EXPECT_EQ(parse_code(header_bytes(1, 0x30)), ErrorCode::kUnsupported) << "version 1 has no predictor 3";
  EXPECT_EQ(parse_code(header_bytes(2, 0x00)), ErrorCode::kUnsupported) << "version 2 is only for predictor 3";
  EXPECT_EQ(parse_code(header_bytes(2, 0x10)), ErrorCode::kUnsupported);
  EXPECT_EQ(parse_code(header_bytes(1, 0x40)), ErrorCode::kUnsupported) << "predictor 4 is unknown";
  EXPECT_EQ(parse_code(header_bytes(2, 0x40)), ErrorCode::kUnsupported);
  EXPECT_EQ(parse_code(header_bytes(2, 0xF0)), ErrorCode::kUnsupported);
  EXPECT_EQ(parse_code(header_bytes(3, 0x30)), ErrorCode::kOk) << "version 3 goes with any predictor";
  EXPECT_EQ(parse_code(header_bytes(3, 0x00)), ErrorCode::kOk);
  EXPECT_EQ(parse_code(header_bytes(4, 0x30)), ErrorCode::kUnsupported) << "version 4 is unknown";
  auto unknown = delta::parse_header(header_bytes(2, 0x40));
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown patch predictor 4"), std::string::npos) << unknown.error().message;
  auto old_version = delta::parse_header(header_bytes(1, 0x30));
  ASSERT_FALSE(old_version);
  EXPECT_NE(old_version.error().message.find("version 2"), std::string::npos) << old_version.error().message;
}

TEST(Arm64Header, AnArm64PatchRelabelledVersionOneIsRefused) {
  const Program p = make_arm64_program(3000, 4000, 25);
  Made m = diff_with(p, PredictorChoice::kArm64);
  Bytes relabelled = m.patch;
  relabelled[3] = 1;
  auto out = test::apply_patch(p.old_image, relabelled);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace ota
