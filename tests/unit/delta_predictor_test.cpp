// The reference predictors (x86 rel32, Thumb-2 BL), their address map, and
// compression with OLD as prefix dictionary (docs/formats.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "delta/predict.hpp"
#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::Compression;
using delta::Predictor;
using delta::PredictorChoice;

// A synthetic program: random filler with call sites, each pointing at a
// target; NEW inserts `insert_len` bytes at `insert_at`, and every call still
// reaches the same target, now moved. This is what a recompiled binary looks
// like to a delta: many operands change by the size of the insertion.
struct Program {
  Bytes old_image, new_image;
};

enum class Arch { kX86, kThumb };

void put_call(Bytes& img, std::size_t s, std::int64_t rel, Arch arch) {
  if (arch == Arch::kX86) {
    img[s - 1] = 0xE8;
    const auto v = static_cast<std::uint32_t>(static_cast<std::int32_t>(rel));
    for (int j = 0; j < 4; ++j) img[s + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(v >> (8 * j));
    return;
  }
  // Thumb-2 BL: S:I1:I2:imm10:imm11:0, J = NOT(I) XOR S.
  const auto u = static_cast<std::uint32_t>(rel) & 0x1FFFFFF;
  const std::uint32_t S = u >> 24 & 1, I1 = u >> 23 & 1, I2 = u >> 22 & 1;
  const std::uint32_t J1 = (1 ^ I1) ^ S, J2 = (1 ^ I2) ^ S;
  const std::uint32_t h1 = 0xF000 | S << 10 | (u >> 12 & 0x3FF);
  const std::uint32_t h2 = 0xD000 | J1 << 13 | J2 << 11 | (u >> 1 & 0x7FF);
  img[s] = static_cast<std::uint8_t>(h1);
  img[s + 1] = static_cast<std::uint8_t>(h1 >> 8);
  img[s + 2] = static_cast<std::uint8_t>(h2);
  img[s + 3] = static_cast<std::uint8_t>(h2 >> 8);
}

Program make_program(Arch arch, std::size_t size, std::size_t insert_at, std::size_t insert_len,
                     std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes filler = test::structured_bytes(size, seed);
  // Keep the filler free of accidental call shapes so the sites are exactly ours.
  for (auto& b : filler) {
    if (b == 0xE8 || b == 0xE9 || b == 0x0F) b = 0x90;
    if ((b & 0xF8) == 0xF0) b = 0x47;
  }
  if (arch == Arch::kX86) {  // an x86-64 ELF identification
    const std::uint8_t elf[20] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 62, 0};
    std::copy(std::begin(elf), std::end(elf), filler.begin());
  }
  const Bytes inserted = test::structured_bytes(insert_len, seed + 1);
  Bytes old_image = filler;
  Bytes new_image = test::with_insertion(filler, insert_at, inserted);
  auto moved = [&](std::size_t x) { return x < insert_at ? x : x + insert_len; };
  for (std::size_t s = 64; s + 8 < size; s += 24) {
    if (s + 4 > insert_at && s < insert_at + 8) continue;
    const std::size_t site = arch == Arch::kThumb ? (s & ~std::size_t{1}) : s;
    std::size_t target = 32 + static_cast<std::size_t>(rng() % (size - 64));
    if (arch == Arch::kThumb) target &= ~std::size_t{1};
    const auto rel = [&](std::size_t at, std::size_t t) {
      return static_cast<std::int64_t>(t) - static_cast<std::int64_t>(at) - 4;
    };
    put_call(old_image, site, rel(site, target), arch);
    put_call(new_image, moved(site), rel(moved(site), moved(target)), arch);
  }
  return {std::move(old_image), std::move(new_image)};
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
  delta::PatchOptions background;  // NEW written and hashed on a second thread
  background.hash_in_background = true;
  auto threaded = test::apply_in_chunks(p.old_image, patch, [](std::size_t left) { return std::min<std::size_t>(left, 333); },
                                        background);
  ASSERT_TRUE(threaded);
  EXPECT_TRUE(*threaded == p.new_image);
}

TEST(Predictor, X86ExplainsMovedCalls) {
  const Program p = make_program(Arch::kX86, 200000, 90000, 1000, 11);
  Made plain = diff_with(p, PredictorChoice::kNone);
  Made predicted = diff_with(p, PredictorChoice::kAuto);
  EXPECT_EQ(plain.stats.predictor, Predictor::kNone);
  EXPECT_EQ(predicted.stats.predictor, Predictor::kX86) << "auto picks x86 for an x86 ELF";
  EXPECT_GT(predicted.stats.map_entries, 0u);
  EXPECT_LT(predicted.patch.size() * 2, plain.patch.size())
      << "predicted " << predicted.patch.size() << " vs plain " << plain.patch.size();
  expect_applies(p, plain.patch);
  expect_applies(p, predicted.patch);
}

TEST(Predictor, ThumbExplainsMovedCalls) {
  const Program p = make_program(Arch::kThumb, 200000, 90000, 1000, 12);
  Made plain = diff_with(p, PredictorChoice::kNone);
  Made predicted = diff_with(p, PredictorChoice::kAuto);
  EXPECT_EQ(predicted.stats.predictor, Predictor::kThumb) << "auto tries Thumb on a non-x86 image";
  EXPECT_LT(predicted.patch.size() * 2, plain.patch.size())
      << "predicted " << predicted.patch.size() << " vs plain " << plain.patch.size();
  expect_applies(p, predicted.patch);
}

TEST(Predictor, ForcedPredictorOnUnrelatedDataStillRoundTrips) {
  const Bytes old_image = test::random_bytes(50000, 3);
  const Bytes new_image = test::with_random_edits(test::with_insertion(old_image, 100, test::random_bytes(77, 4)), 300, 5);
  for (PredictorChoice choice : {PredictorChoice::kX86, PredictorChoice::kThumb}) {
    delta::DiffOptions opt = test::fast_options(Compression::kZstd, 12);
    opt.predictor = choice;
    auto patch = test::make_patch(old_image, new_image, opt);
    ASSERT_TRUE(patch);
    auto out = test::apply_patch(old_image, *patch);
    ASSERT_TRUE(out) << test::describe(out ? ok() : fail(out.error()));
    EXPECT_TRUE(*out == new_image);
  }
}

TEST(Predictor, AFewChangedBytesNeedNoMap) {
  const Program p = make_program(Arch::kX86, 100000, 50000, 0, 13);
  Bytes changed = p.old_image;
  changed[40000] ^= 1;
  changed[70000] ^= 1;
  delta::DiffOptions opt;  // the CLI's defaults
  VectorWriter out;
  auto stats = delta::diff(p.old_image, changed, out, opt);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->predictor, Predictor::kNone);
  EXPECT_LT(out.data().size(), 120u);
}

TEST(Predictor, ZstdWithOldAsDictionaryRoundTrips) {
  const Program p = make_program(Arch::kThumb, 120000, 30000, 5000, 14);
  // NEW also repeats a block of OLD far from its position: a match into OLD.
  Program q = p;
  q.new_image = test::concat(q.new_image, test::slice(q.old_image, 1000, 20000));
  Made plain = diff_with(q, PredictorChoice::kNone, Compression::kZstd);
  Made dict = diff_with(q, PredictorChoice::kNone, Compression::kZstdOld);
  auto header = delta::parse_header(dict.patch);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->first.compression, Compression::kZstdOld);
  EXPECT_GT(std::uint64_t{1} << header->first.window_log, q.old_image.size());
  EXPECT_LE(dict.patch.size(), plain.patch.size() + plain.patch.size() / 20);
  expect_applies(q, dict.patch);

  // A device that cannot hold the window refuses before writing anything.
  delta::PatchOptions small;
  small.max_window_log = 16;
  auto refused = test::apply_patch(q.old_image, dict.patch, small);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kLimitExceeded);
}

TEST(Predictor, EveryMutationFailsOrGivesNew) {
  const Program p = make_program(Arch::kThumb, 6000, 3000, 64, 15);
  delta::DiffOptions opt = test::fast_options(Compression::kZstdOld, 12);
  opt.predictor = PredictorChoice::kThumb;
  auto patch = test::make_patch(p.old_image, p.new_image, opt);
  ASSERT_TRUE(patch);
  ASSERT_LT(patch->size(), 4000u);
  std::size_t failures = 0;
  for (std::size_t i = 0; i < patch->size(); ++i) {
    for (std::uint8_t x : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
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
  for (std::size_t len = 0; len < patch->size(); ++len) {
    auto out = test::apply_patch(p.old_image, ByteSpan(patch->data(), len));
    ASSERT_FALSE(out) << "a prefix of " << len << " bytes succeeded";
  }
}

// ---- executables inside a larger image (a root filesystem) ----

using delta::detail::EmbeddedElf;
using delta::detail::MapEntry;

// An ELF64 header at `at` with one PT_LOAD over `size` file bytes, no section headers.
void put_elf64(Bytes& img, std::size_t at, std::uint64_t size, std::uint16_t machine) {
  auto put = [&](std::size_t off, std::uint64_t v, int bytes) {
    for (int j = 0; j < bytes; ++j) img[at + off + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(v >> (8 * j));
  };
  std::fill(img.begin() + static_cast<std::ptrdiff_t>(at), img.begin() + static_cast<std::ptrdiff_t>(at + 120), 0);
  const std::uint8_t ident[6] = {0x7F, 'E', 'L', 'F', 2, 1};
  std::copy(std::begin(ident), std::end(ident), img.begin() + static_cast<std::ptrdiff_t>(at));
  put(16, 2, 2);         // e_type
  put(18, machine, 2);   // e_machine
  put(32, 64, 8);        // e_phoff
  put(54, 56, 2);        // e_phentsize
  put(56, 1, 2);         // e_phnum
  put(64, 1, 4);         // PT_LOAD
  put(64 + 8, 0, 8);     // p_offset
  put(64 + 32, size, 8); // p_filesz
}

TEST(EmbeddedElf, FoundAtAlignedOffsetsWithTheirSizes) {
  Bytes img(1 << 20, 0x20);
  put_elf64(img, 4096, 100000, 62);     // x86-64
  put_elf64(img, 200704, 50000, 183);   // AArch64
  put_elf64(img, 300001, 50000, 62);    // not 512-aligned: not a file's start
  put_elf64(img, 400384, 50000, 40);    // 32-bit ARM: no predictor here
  put_elf64(img, 600064, 1 << 20, 62);  // runs past the image
  const auto found = delta::detail::find_embedded_elf(img);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].offset, 4096u);
  EXPECT_EQ(found[0].size, 100000u);
  EXPECT_EQ(found[0].predictor, Predictor::kX86);
  EXPECT_EQ(found[1].offset, 200704u);
  EXPECT_EQ(found[1].size, 50000u);
  EXPECT_EQ(found[1].predictor, Predictor::kArm64);
}

TEST(EmbeddedElf, AnyBytesGiveABoundedAnswer) {
  // Headers cut at every length and filled with random values: the scan reads
  // only inside the image (ASan in CI) and every region it reports lies inside it.
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    Bytes img = test::random_bytes(4096 + seed * 7, seed);
    for (std::size_t at = 0; at + 6 <= img.size(); at += 512) {
      const std::uint8_t ident[6] = {0x7F, 'E', 'L', 'F', static_cast<std::uint8_t>(1 + (seed & 1)), 1};
      std::copy(std::begin(ident), std::end(ident), img.begin() + static_cast<std::ptrdiff_t>(at));
      img[at + 18 < img.size() ? at + 18 : at] = (seed % 3) ? 62 : 183;
    }
    for (std::size_t cut : {img.size(), img.size() - 1, std::size_t{600}, std::size_t{63}, std::size_t{0}}) {
      const auto found = delta::detail::find_embedded_elf(ByteSpan(img.data(), cut));
      std::uint64_t last_end = 0;
      for (const EmbeddedElf& e : found) {
        EXPECT_EQ(e.offset % 512, 0u);
        EXPECT_GE(e.offset, last_end);
        EXPECT_GT(e.size, 0u);
        EXPECT_LE(e.offset + e.size, cut);
        last_end = e.offset + e.size;
      }
    }
  }
}

TEST(EmbeddedElf, CoversAreCutToTheRegions) {
  const std::vector<EmbeddedElf> regions = {{100, 50, Predictor::kX86}, {300, 100, Predictor::kX86}};
  std::vector<MapEntry> covers = {{0, 90, 5}, {80, 300, 7}, {350, 10, -3}, {500, 10, 1}};
  delta::detail::keep_covers_inside(regions, covers);
  ASSERT_EQ(covers.size(), 3u);
  EXPECT_EQ(covers[0].old_start, 100u);
  EXPECT_EQ(covers[0].length, 50u);
  EXPECT_EQ(covers[0].shift, 7);
  EXPECT_EQ(covers[1].old_start, 300u);
  EXPECT_EQ(covers[1].length, 80u);
  EXPECT_EQ(covers[2].old_start, 350u);
  EXPECT_EQ(covers[2].length, 10u);
}

TEST(Predictor, X86ExecutableInsideAFilesystemImage) {
  // A filesystem-like image: other files, then the program at a block boundary;
  // in NEW a file grew before it, so the program starts two blocks later and its
  // calls moved. The auto mode finds the ELF inside and predicts its calls.
  const std::size_t prog_size = (std::size_t{1} << 20) + 50000;
  const Program p = make_program(Arch::kX86, prog_size, prog_size / 2, 1000, 21);
  auto image = [&](const Bytes& prog, std::size_t before) {
    Bytes img = test::concat(test::structured_bytes(before, 22), prog);
    img.resize((img.size() + 4095) / 4096 * 4096 + 65536, 0);
    put_elf64(img, before, prog.size(), 62);
    return img;
  };
  Program fs{image(p.old_image, 65536), image(p.new_image, 65536 + 8192)};
  Made plain = diff_with(fs, PredictorChoice::kNone);
  Made predicted = diff_with(fs, PredictorChoice::kAuto);
  EXPECT_EQ(predicted.stats.predictor, Predictor::kX86) << "auto finds the x86 ELF inside the image";
  EXPECT_LT(predicted.patch.size() * 2, plain.patch.size())
      << "predicted " << predicted.patch.size() << " vs plain " << plain.patch.size();
  expect_applies(fs, predicted.patch);

  // The same image without the ELF header: no embedded executable, Thumb is tried and dropped.
  Program bare = fs;
  for (Bytes* b : {&bare.old_image, &bare.new_image}) std::fill(b->begin(), b->begin() + 65536 + 8192 + 120, 0x20);
  Made none = diff_with(bare, PredictorChoice::kAuto);
  EXPECT_NE(none.stats.predictor, Predictor::kX86);
  expect_applies(bare, none.patch);
}

// ---- the address map ----

using delta::detail::AddressMap;

TEST(AddressMap, EncodeDecodeAndLookup) {
  AddressMap m = AddressMap::from_covers({{100, 50, 10}, {120, 100, 10}, {400, 10, -300}, {10, 5, 7}}, 0);
  // {10,5,+7}, {100..220,+10} merged (same shift, touching), {400,10,-300}
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.map(12), std::optional<std::int64_t>(19));
  EXPECT_EQ(m.map(219), std::optional<std::int64_t>(229));
  EXPECT_EQ(m.map(220), std::nullopt);
  EXPECT_EQ(m.map(405), std::optional<std::int64_t>(105));
  EXPECT_EQ(m.map(0), std::nullopt);
  auto back = AddressMap::decode(m.encode(), 1000, 100);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->encode(), m.encode());
}

TEST(AddressMap, RejectsInvalidMaps) {
  auto code = [](const Bytes& data, std::uint64_t old_size, std::uint64_t max_entries = 100) {
    auto m = AddressMap::decode(data, old_size, max_entries);
    return m ? ErrorCode::kOk : m.error().code;
  };
  EXPECT_EQ(code({1, 0, 5, 0}, 100), ErrorCode::kOk);                        // [0,5) +0
  EXPECT_EQ(code({1, 0, 0, 0}, 100), ErrorCode::kPatchMalformed);            // empty entry
  EXPECT_EQ(code({1, 90, 20, 0}, 100), ErrorCode::kPatchMalformed);          // past OLD
  EXPECT_EQ(code({1, 0, 5, 3}, 100), ErrorCode::kPatchMalformed);            // maps before NEW's start
  EXPECT_EQ(code({2, 0, 5, 2, 0, 5, 0}, 100), ErrorCode::kPatchMalformed);   // touching, same shift
  EXPECT_EQ(code({1, 0, 5, 0, 9}, 100), ErrorCode::kPatchMalformed);         // trailing byte
  EXPECT_EQ(code({2, 0, 5, 0}, 100), ErrorCode::kPatchMalformed);            // truncated
  EXPECT_EQ(code({3, 0, 1, 0, 1, 1, 0, 1, 1, 0}, 100, 2), ErrorCode::kLimitExceeded);
  // NEW offsets past 2^62: [0, 5) shifted by 2^62 - 5 ends at 2^62 (zigzag(d) = 2d); one more
  // is refused, and so is a second entry whose shift, added to the first, passes it.
  const Bytes to_the_limit = {1, 0, 5, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  EXPECT_EQ(code(to_the_limit, 100), ErrorCode::kOk);
  Bytes past = to_the_limit;
  past[3] = 0xf8;
  EXPECT_EQ(code(past, 100), ErrorCode::kPatchMalformed);
  const Bytes two_to_61 = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40};  // zigzag(2^61)
  Bytes twice = {2, 0, 1};
  twice.insert(twice.end(), two_to_61.begin(), two_to_61.end());  // [0, 1) + 2^61
  twice.insert(twice.end(), {0, 1});
  twice.insert(twice.end(), two_to_61.begin(), two_to_61.end());  // [1, 2) + 2^62
  EXPECT_EQ(code(twice, 100), ErrorCode::kPatchMalformed);
  twice.resize(3 + two_to_61.size());
  twice[0] = 1;
  EXPECT_EQ(code(twice, 100), ErrorCode::kOk);
}

TEST(AddressMap, LookupMatchesALinearScan) {
  // Maps of 1 to 3,000 entries with gaps: every offset up to past the end
  // resolves as a scan of the entries says.
  std::mt19937_64 rng(77);
  for (std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{300}, std::size_t{3000}}) {
    std::vector<MapEntry> covers;
    std::uint64_t at = rng() % 50;
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint64_t len = 1 + rng() % 200;
      covers.push_back({at, len, static_cast<std::int64_t>(rng() % 1000) + static_cast<std::int64_t>(i)});
      at += len + rng() % 3 * (rng() % 100);
    }
    AddressMap m = AddressMap::from_covers(covers, 0);
    auto back = AddressMap::decode(m.encode(), at + 10, 1u << 20);
    ASSERT_TRUE(back);
    for (std::uint64_t t = 0; t < at + 10; ++t) {
      std::optional<std::int64_t> want;
      for (const MapEntry& c : covers)
        if (t >= c.old_start && t < c.old_start + c.length) {
          want = static_cast<std::int64_t>(t) + c.shift;
          break;
        }
      ASSERT_EQ(m.map(t), want) << "count " << count << " offset " << t;
      ASSERT_EQ(back->map(t), want) << "decoded, count " << count << " offset " << t;
    }
  }
}

// The x86 predictor against a byte-at-a-time statement of its rule
// (docs/formats.md): a site is a position s where the two bytes before s form
// a rel32 shape and no such position lies in s-3..s-1; its 4 bytes, inside the
// window, hold a target that the map moves.
Bytes reference_x86(const AddressMap& map, ByteSpan window, std::uint64_t ws, std::uint64_t old_size, std::uint64_t q,
                    std::size_t n, std::int64_t delta) {
  const std::uint64_t we = std::min<std::uint64_t>(ws + window.size(), old_size);
  auto at = [&](std::uint64_t i) -> int { return i >= ws && i < we ? window[i - ws] : -1; };
  auto shape = [&](std::uint64_t k) {
    if (k < 2 || at(k - 1) < 0 || at(k - 2) < 0) return false;
    const int b1 = at(k - 1), b2 = at(k - 2);
    const bool rip = (b1 & 0xC7) == 0x05;
    const std::vector<int> ops = {0x8B, 0x8D, 0x89, 0x3B, 0x03, 0x2B, 0x33, 0x39, 0x85, 0x63, 0x0B, 0x23, 0xC7, 0x80,
                                  0x83, 0x81, 0xFF, 0x10, 0x11, 0x28, 0x29, 0x6F, 0x7F, 0xB6, 0xB7, 0x3A, 0x38, 0x88};
    return b1 == 0xE8 || b1 == 0xE9 || (b2 == 0x0F && (b1 & 0xF0) == 0x80) ||
           (rip && std::find(ops.begin(), ops.end(), b2) != ops.end());
  };
  Bytes out(window.begin() + static_cast<std::ptrdiff_t>(q - ws), window.begin() + static_cast<std::ptrdiff_t>(q - ws + n));
  for (std::uint64_t s = q >= 3 ? q - 3 : 0; s < q + n; ++s) {
    if (!shape(s) || (s >= 1 && shape(s - 1)) || (s >= 2 && shape(s - 2)) || (s >= 3 && shape(s - 3))) continue;
    if (at(s) < 0 || at(s + 3) < 0) continue;
    const std::uint32_t raw = static_cast<std::uint32_t>(at(s)) | static_cast<std::uint32_t>(at(s + 1)) << 8 |
                              static_cast<std::uint32_t>(at(s + 2)) << 16 | static_cast<std::uint32_t>(at(s + 3)) << 24;
    const std::int64_t target = static_cast<std::int64_t>(s) + 4 + static_cast<std::int32_t>(raw);
    if (target < 0 || static_cast<std::uint64_t>(target) >= old_size) continue;
    const auto mapped = map.map(static_cast<std::uint64_t>(target));
    if (!mapped) continue;
    const std::int64_t pred = *mapped - (static_cast<std::int64_t>(s) + delta + 4);
    if (pred < INT32_MIN || pred > INT32_MAX) continue;
    const auto v = static_cast<std::uint32_t>(static_cast<std::int32_t>(pred));
    for (std::uint64_t j = 0; j < 4; ++j)
      if (s + j >= q && s + j < q + n) out[s + j - q] = static_cast<std::uint8_t>(v >> (8 * j));
  }
  return out;
}

// Both scans: the AVX2 one (where the CPU has it) and the portable one.
class X86Scan : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override { delta::detail::use_portable_x86_scan(GetParam()); }
  void TearDown() override { delta::detail::use_portable_x86_scan(false); }
};

TEST_P(X86Scan, MatchesTheRuleByteForByte) {
  // Dense opcode bytes (every shape, overlapping sites, sites across the
  // window's edges, opcodes next to the admitted ones) in windows of every alignment.
  std::mt19937_64 rng(5);
  const std::uint8_t alphabet[] = {0xE8, 0xE9, 0x0F, 0x85, 0x8B, 0x05, 0x0D, 0x3D, 0x80, 0x8F, 0x00, 0xFF, 0x10,
                                   0x01, 0x2A, 0xC6, 0xC7, 0x63, 0x3A, 0xB6, 0x6F, 0x7F, 0x15, 0x25, 0x35, 0x08};
  Bytes old_image(4096);
  for (auto& b : old_image) b = rng() % 3 ? alphabet[rng() % sizeof alphabet] : static_cast<std::uint8_t>(rng());
  std::vector<MapEntry> covers;
  for (std::uint64_t at = 0; at < old_image.size(); at += 64) covers.push_back({at, 48, static_cast<std::int64_t>(rng() % 64) - 32});
  AddressMap map = AddressMap::from_covers(covers, 0);
  for (int trial = 0; trial < 3000; ++trial) {
    const std::uint64_t q = rng() % old_image.size();
    const std::size_t n = static_cast<std::size_t>(1 + rng() % std::min<std::uint64_t>(trial % 10 ? 200 : 2000, old_image.size() - q));
    const std::uint64_t ws = q - std::min<std::uint64_t>(q, rng() % 12);
    const std::uint64_t we = std::min<std::uint64_t>(old_image.size(), q + n + rng() % 8);
    const ByteSpan window(old_image.data() + ws, static_cast<std::size_t>(we - ws));
    const std::int64_t delta = static_cast<std::int64_t>(rng() % 100) - 50;
    Bytes got(n);
    delta::detail::predict(Predictor::kX86, map, window, ws, old_image.size(), q, n, delta, got.data());
    ASSERT_EQ(got, reference_x86(map, window, ws, old_image.size(), q, n, delta))
        << "q " << q << " n " << n << " window [" << ws << ", " << we << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Predictor, X86Scan, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& p) { return p.param ? "Portable" : "Native"; });

}  // namespace
}  // namespace ota
