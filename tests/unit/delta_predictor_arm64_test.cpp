// The AArch64 reference predictor (docs/formats.md, "Predictor"): BL and ADRP
// pairs on hand-assembled words (and the forms that are not sites), ADRP page
// arithmetic, targets the prediction must leave alone, addresses past the end
// of OLD, the window edges, the rule restated word by word and checked on
// dense random code, zero-initialised memory mapped from ELF program headers,
// a round trip on a synthetic AArch64 image whose code, data and .bss move,
// and the header's version rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "delta/predict.hpp"
#include "ota/delta/delta.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {

using delta::Compression;
using delta::Predictor;
using delta::PredictorChoice;
using delta::detail::AddressMap;
using delta::detail::MapEntry;

// ---- A64 encoders (Arm ARM, C6), byte offsets relative to the instruction ----

std::uint32_t field(std::int64_t v, unsigned bits) { return static_cast<std::uint32_t>(v) & ((1u << bits) - 1); }
std::uint32_t b(std::int64_t off) { return 0x14000000 | field(off >> 2, 26); }
std::uint32_t bl(std::int64_t off) { return 0x94000000 | field(off >> 2, 26); }
std::uint32_t b_cond(unsigned cond, std::int64_t off) { return 0x54000000 | field(off >> 2, 19) << 5 | cond; }
std::uint32_t cbz_x(unsigned rt, std::int64_t off) { return 0xB4000000 | field(off >> 2, 19) << 5 | rt; }
std::uint32_t cbnz_w(unsigned rt, std::int64_t off) { return 0x35000000 | field(off >> 2, 19) << 5 | rt; }
std::uint32_t tbz(unsigned rt, unsigned bit, std::int64_t off) {
  return (bit >> 5) << 31 | 0x36000000 | (bit & 31) << 19 | field(off >> 2, 14) << 5 | rt;
}
std::uint32_t tbnz(unsigned rt, unsigned bit, std::int64_t off) { return tbz(rt, bit, off) | 0x01000000; }
std::uint32_t ldr_literal_x(unsigned rt, std::int64_t off) { return 0x58000000 | field(off >> 2, 19) << 5 | rt; }
std::uint32_t adr(unsigned rd, std::int64_t off) {
  const std::uint32_t u = field(off, 21);
  return 0x10000000 | (u & 3) << 29 | (u >> 2) << 5 | rd;
}
std::uint32_t adrp(unsigned rd, std::int64_t pages) { return adr(rd, pages) | 0x80000000; }
std::uint32_t add_x(unsigned rd, unsigned rn, unsigned imm12) { return 0x91000000 | imm12 << 10 | rn << 5 | rd; }
// Loads and stores with an unsigned offset, given in bytes (a multiple of the access size).
std::uint32_t ldr_x(unsigned rt, unsigned rn, unsigned off) { return 0xF9400000 | (off / 8) << 10 | rn << 5 | rt; }
std::uint32_t ldr_w(unsigned rt, unsigned rn, unsigned off) { return 0xB9400000 | (off / 4) << 10 | rn << 5 | rt; }
std::uint32_t ldrb(unsigned rt, unsigned rn, unsigned off) { return 0x39400000 | off << 10 | rn << 5 | rt; }
std::uint32_t str_q(unsigned rt, unsigned rn, unsigned off) { return 0x3D800000 | (off / 16) << 10 | rn << 5 | rt; }
std::uint32_t ldr_d(unsigned rt, unsigned rn, unsigned off) { return 0xFD400000 | (off / 8) << 10 | rn << 5 | rt; }
constexpr std::uint32_t kNop = 0xD503201F;
constexpr std::uint32_t kRet = 0xD65F03C0;

// ---- decoders, written from the rule in docs/formats.md ----

std::int64_t sext(std::uint32_t v, unsigned bits) {
  const std::int64_t x = v & ((std::uint64_t{1} << bits) - 1);
  return x >= (std::int64_t{1} << (bits - 1)) ? x - (std::int64_t{1} << bits) : x;
}

enum class Form { kOther, kImm26, kImm19, kImm14, kAdr, kAdrp, kLo12 };

Form form_of(std::uint32_t w) {
  const std::uint32_t top = w >> 24;
  if ((w & 0x7C000000) == 0x14000000) return Form::kImm26;
  if (top == 0x54 || (w & 0x7E000000) == 0x34000000 || (w & 0x3B000000) == 0x18000000) return Form::kImm19;
  if ((w & 0x7E000000) == 0x36000000) return Form::kImm14;
  if ((w & 0x9F000000) == 0x10000000) return Form::kAdr;
  if ((w & 0x9F000000) == 0x90000000) return Form::kAdrp;
  if (top == 0x91 || (w & 0x3B000000) == 0x39000000) return Form::kLo12;
  return Form::kOther;
}

// Byte offset of a branch's or ADR's target from the instruction (ADRP: pages).
std::int64_t decoded_offset(std::uint32_t w) {
  switch (form_of(w)) {
    case Form::kImm26: return 4 * sext(w, 26);
    case Form::kImm19: return 4 * sext(w >> 5, 19);
    case Form::kImm14: return 4 * sext(w >> 5, 14);
    case Form::kAdr:
    case Form::kAdrp: return sext((w >> 5 & 0x7FFFF) << 2 | (w >> 29 & 3), 21);
    default: return 0;
  }
}

// The scale of the low-12 operand of w if it takes an address from register
// base (ADD 64-bit without shift; LDR/STR/PRFM unsigned offset), else none.
std::optional<unsigned> lo12_scale(std::uint32_t w, unsigned base) {
  if ((w >> 5 & 31) != base) return std::nullopt;
  if ((w & 0xFFC00000) == 0x91000000) return 0u;
  if ((w & 0x3B000000) != 0x39000000) return std::nullopt;
  const unsigned size = w >> 30;
  if ((w & 0x04000000) == 0) return size;
  const unsigned scale = (w >> 23 & 1) * 4 + size;
  if (scale > 4) return std::nullopt;
  return scale;
}

std::uint32_t with_offset(std::uint32_t w, std::int64_t off) {
  switch (form_of(w)) {
    case Form::kImm26: return (w & 0xFC000000) | field(off >> 2, 26);
    case Form::kImm19: return (w & 0xFF00001F) | field(off >> 2, 19) << 5;
    case Form::kImm14: return (w & 0xFFF8001F) | field(off >> 2, 14) << 5;
    case Form::kAdr:
    case Form::kAdrp: return (w & 0x9F00001F) | (field(off, 21) & 3) << 29 | (field(off, 21) >> 2) << 5;
    default: return w;
  }
}

std::uint32_t get_word(const Bytes& img, std::size_t at) {
  return static_cast<std::uint32_t>(img[at]) | static_cast<std::uint32_t>(img[at + 1]) << 8 |
         static_cast<std::uint32_t>(img[at + 2]) << 16 | static_cast<std::uint32_t>(img[at + 3]) << 24;
}
void put_word(Bytes& img, std::size_t at, std::uint32_t w) {
  for (int j = 0; j < 4; ++j) img[at + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(w >> (8 * j));
}

// The rule of docs/formats.md, one word at a time: the reference bytes of
// OLD[q, q + n) at NEW offset q + delta, seeing only OLD bytes inside the window.
Bytes reference_arm64(const AddressMap& map, ByteSpan window, std::uint64_t ws, std::uint64_t old_size,
                      std::uint64_t q, std::size_t n, std::int64_t delta) {
  const std::uint64_t we = std::min<std::uint64_t>(ws + window.size(), old_size);
  auto word_at = [&](std::int64_t s) -> std::optional<std::uint32_t> {
    if (s < static_cast<std::int64_t>(ws) || static_cast<std::uint64_t>(s) + 4 > we) return std::nullopt;
    std::uint32_t w = 0;
    for (int j = 0; j < 4; ++j) w |= static_cast<std::uint32_t>(window[static_cast<std::size_t>(s) - ws + static_cast<std::size_t>(j)]) << (8 * j);
    return w;
  };
  // Inside OLD through the map; past it (ADRP pairs only) with the shift of
  // the last entry, when that entry ends at old_size (maps OLD's last byte).
  auto mapped = [&](std::int64_t t, bool past_end) -> std::optional<std::int64_t> {
    if (t < 0) return std::nullopt;
    if (t < static_cast<std::int64_t>(old_size)) return map.map(static_cast<std::uint64_t>(t));
    if (!past_end || old_size == 0) return std::nullopt;
    const auto last = map.map(old_size - 1);
    if (!last) return std::nullopt;
    return t + (*last - static_cast<std::int64_t>(old_size - 1));
  };
  // ADRP at a, user at a + 4: their new words.
  auto pair = [&](std::int64_t a, std::uint32_t p, std::uint32_t u) -> std::optional<std::pair<std::uint32_t, std::uint32_t>> {
    const unsigned rd = p & 31;
    if (rd == 31) return std::nullopt;
    const auto scale = lo12_scale(u, rd);
    if (!scale) return std::nullopt;
    const std::int64_t lo = static_cast<std::int64_t>(u >> 10 & 0xFFF) << *scale;
    if (lo >= 4096) return std::nullopt;
    const auto m = mapped(a / 4096 * 4096 + decoded_offset(p) * 4096 + lo, true);
    if (!m || *m % (std::int64_t{1} << *scale) != 0) return std::nullopt;
    const std::int64_t pc = a + delta;
    const std::int64_t pages = *m / 4096 - (pc >= 0 ? pc / 4096 : -((-pc + 4095) / 4096));
    if (pages < -(1 << 20) || pages >= (1 << 20)) return std::nullopt;
    const std::uint32_t nu = (u & ~(0xFFFu << 10)) | static_cast<std::uint32_t>((*m % 4096) >> *scale) << 10;
    return std::make_pair(with_offset(p, pages), nu);
  };
  Bytes out(window.begin() + static_cast<std::ptrdiff_t>(q - ws), window.begin() + static_cast<std::ptrdiff_t>(q - ws + n));
  for (std::int64_t s = static_cast<std::int64_t>(q) - 3; s < static_cast<std::int64_t>(q + n); ++s) {
    if (s < 0 || s % 4 != 0) continue;
    const auto w = word_at(s);
    if (!w) continue;
    std::optional<std::uint32_t> nw;
    const Form f = form_of(*w);
    if (f == Form::kImm26 && (*w >> 31) == 1) {  // BL; B is not a site
      if (const auto m = mapped(s + decoded_offset(*w), false)) {
        const std::int64_t pred = *m - (s + delta);
        if (pred >= -(std::int64_t{1} << 27) && pred < (std::int64_t{1} << 27) && pred % 4 == 0) nw = with_offset(*w, pred);
      }
    } else if (f == Form::kAdrp) {
      if (const auto u = word_at(s + 4))
        if (const auto p = pair(s, *w, *u)) nw = p->first;
    } else if (f == Form::kLo12) {
      if (const auto p0 = word_at(s - 4); p0 && form_of(*p0) == Form::kAdrp)
        if (const auto p = pair(s - 4, *p0, *w)) nw = p->second;
    }
    if (!nw) continue;
    for (std::int64_t j = 0; j < 4; ++j)
      if (s + j >= static_cast<std::int64_t>(q) && s + j < static_cast<std::int64_t>(q + n))
        out[static_cast<std::size_t>(s + j) - q] = static_cast<std::uint8_t>(*nw >> (8 * j));
  }
  return out;
}

// The predictor on OLD[q, q + n), the whole OLD as window.
Bytes predicted(const AddressMap& map, const Bytes& old_image, std::uint64_t q, std::size_t n, std::int64_t delta) {
  Bytes out(n);
  delta::detail::predict(Predictor::kArm64, map, old_image, 0, old_image.size(), q, n, delta, out.data());
  return out;
}
std::uint32_t predicted_word(const AddressMap& map, const Bytes& old_image, std::uint64_t s, std::int64_t delta = 0) {
  return get_word(predicted(map, old_image, s, 4, delta), 0);
}

// ---- the encoders ----

TEST(Arm64Encoding, EncodersMatchTheArchitecture) {
  // Words from clang --target=aarch64-linux-gnu (llvm-objdump -d), byte offsets from the instruction.
  EXPECT_EQ(bl(0), 0x94000000u);
  EXPECT_EQ(b(-4), 0x17FFFFFFu);
  EXPECT_EQ(b_cond(1, 8), 0x54000041u);   // b.ne
  EXPECT_EQ(cbz_x(0, 8), 0xB4000040u);
  EXPECT_EQ(cbnz_w(3, -8), 0x35FFFFC3u);
  EXPECT_EQ(tbz(0, 3, 8), 0x36180040u);
  EXPECT_EQ(tbnz(5, 40, -4), 0xB747FFE5u);
  EXPECT_EQ(adr(2, 12), 0x10000062u);
  EXPECT_EQ(adrp(0, 1), 0xB0000000u);
  EXPECT_EQ(adrp(9, -2), 0xD0FFFFE9u);
  EXPECT_EQ(add_x(0, 0, 16), 0x91004000u);
  EXPECT_EQ(ldr_x(1, 0, 8), 0xF9400401u);
  EXPECT_EQ(ldr_w(1, 2, 4), 0xB9400441u);
  EXPECT_EQ(str_q(3, 4, 32), 0x3D800883u);
  EXPECT_EQ(ldrb(1, 2, 5), 0x39401441u);
  EXPECT_EQ(ldr_literal_x(7, 16), 0x58000087u);
  EXPECT_EQ(ldr_d(0, 1, 8), 0xFD400420u);
}

TEST(Arm64Encoding, OffsetsRoundTrip) {
  test::Rng rng(1);
  for (int i = 0; i < 2000; ++i) {
    const std::int64_t w26 = static_cast<std::int64_t>(rng.below(1 << 26)) - (1 << 25);
    const std::int64_t w19 = static_cast<std::int64_t>(rng.below(1 << 19)) - (1 << 18);
    const std::int64_t w14 = static_cast<std::int64_t>(rng.below(1 << 14)) - (1 << 13);
    const std::int64_t b21 = static_cast<std::int64_t>(rng.below(1 << 21)) - (1 << 20);
    EXPECT_EQ(decoded_offset(b(4 * w26)), 4 * w26);
    EXPECT_EQ(decoded_offset(bl(4 * w26)), 4 * w26);
    EXPECT_EQ(decoded_offset(b_cond(static_cast<unsigned>(i % 16), 4 * w19)), 4 * w19);
    EXPECT_EQ(decoded_offset(cbz_x(static_cast<unsigned>(i % 31), 4 * w19)), 4 * w19);
    EXPECT_EQ(decoded_offset(cbnz_w(static_cast<unsigned>(i % 31), 4 * w19)), 4 * w19);
    EXPECT_EQ(decoded_offset(ldr_literal_x(static_cast<unsigned>(i % 31), 4 * w19)), 4 * w19);
    EXPECT_EQ(decoded_offset(tbz(static_cast<unsigned>(i % 31), static_cast<unsigned>(i % 64), 4 * w14)), 4 * w14);
    EXPECT_EQ(decoded_offset(tbnz(static_cast<unsigned>(i % 31), static_cast<unsigned>(i % 64), 4 * w14)), 4 * w14);
    EXPECT_EQ(decoded_offset(adr(static_cast<unsigned>(i % 31), b21)), b21);
    EXPECT_EQ(decoded_offset(adrp(static_cast<unsigned>(i % 31), b21)), b21);
    // Re-encoding changes the offset and nothing else.
    const std::uint32_t t = tbnz(7, 33, 4 * w14);
    EXPECT_EQ(with_offset(t, 8), tbnz(7, 33, 8));
    EXPECT_EQ(with_offset(adrp(9, b21), -3), adrp(9, -3));
  }
}

// ---- each form on a hand-assembled OLD ----

// 64 KiB of NOPs; [0, 0x8000) stays where it is, [0x8000, 0x10000) moves by `shift`.
struct Layout {
  Bytes old_image;
  AddressMap map;
};

Layout layout(std::int64_t shift, std::uint64_t size = 0x10000) {
  Layout l;
  l.old_image.resize(size);
  for (std::size_t s = 0; s + 4 <= size; s += 4) put_word(l.old_image, s, kNop);
  l.map = AddressMap::from_covers({{0, 0x8000, 0}, {0x8000, size - 0x8000, shift}}, 0);
  return l;
}

// Branches and address forms that are not sites: left alone even when their
// target moved (docs/formats.md says why).
struct NotASite {
  const char* name;
  std::uint32_t (*encode)(std::int64_t off);
};

const NotASite kNotSites[] = {
    {"B", [](std::int64_t o) { return b(o); }},
    {"B.cond", [](std::int64_t o) { return b_cond(0xB, o); }},
    {"CBZ", [](std::int64_t o) { return cbz_x(3, o); }},
    {"CBNZ", [](std::int64_t o) { return cbnz_w(4, o); }},
    {"LDR literal", [](std::int64_t o) { return ldr_literal_x(5, o); }},
    {"TBZ", [](std::int64_t o) { return tbz(6, 17, o); }},
    {"TBNZ", [](std::int64_t o) { return tbnz(7, 63, o); }},
    {"ADR", [](std::int64_t o) { return adr(8, o); }},
};

TEST(Arm64Predictor, BlFollowsItsTarget) {
  Layout l = layout(0x1230);
  const std::uint64_t s = 0x7F00, t = 0x8100;  // the target moves by 0x1230
  put_word(l.old_image, s, bl(static_cast<std::int64_t>(t - s)));
  EXPECT_EQ(predicted_word(l.map, l.old_image, s), bl(0x8100 + 0x1230 - 0x7F00));
  // The instruction moved too (NEW offset s + 8): the offset shrinks by 8.
  EXPECT_EQ(predicted_word(l.map, l.old_image, s, 8), bl(0x8100 + 0x1230 - 0x7F08));
  // Moved with its target: nothing changes.
  EXPECT_EQ(predicted_word(l.map, l.old_image, s, 0x1230), bl(static_cast<std::int64_t>(t - s)));
  // Backwards: a call in the moved part to a target in the fixed part.
  put_word(l.old_image, 0x8200, bl(0x7E00 - 0x8200));
  EXPECT_EQ(predicted_word(l.map, l.old_image, 0x8200, 0x1230), bl(0x7E00 - (0x8200 + 0x1230)));
  // Near the ends of the reach: 128 MiB - 4 fits, 128 MiB does not.
  Layout far = layout((std::int64_t{1} << 27) - 4 - (0x8100 - 0x7F00));
  put_word(far.old_image, s, bl(static_cast<std::int64_t>(t - s)));
  EXPECT_EQ(predicted_word(far.map, far.old_image, s), bl((std::int64_t{1} << 27) - 4));
  Layout too_far = layout((std::int64_t{1} << 27) - (0x8100 - 0x7F00));
  put_word(too_far.old_image, s, bl(static_cast<std::int64_t>(t - s)));
  EXPECT_EQ(predicted_word(too_far.map, too_far.old_image, s), bl(static_cast<std::int64_t>(t - s)));
  // -128 MiB fits: the call at NEW offset 2^27 + 0x7F00 to 0x7F00 (its target stays).
  put_word(l.old_image, 0x7F00, bl(0x7E00 - 0x7F00));
  EXPECT_EQ(predicted_word(l.map, l.old_image, 0x7F00, (std::int64_t{1} << 27) - 0x100),
            bl(-(std::int64_t{1} << 27)));
  EXPECT_EQ(predicted_word(l.map, l.old_image, 0x7F00, (std::int64_t{1} << 27) - 0x100 + 4), bl(0x7E00 - 0x7F00));
}

TEST(Arm64Predictor, OtherBranchesAndAdrAreNotSites) {
  Layout l = layout(0x1230);
  for (const NotASite& f : kNotSites) {
    SCOPED_TRACE(f.name);
    const std::uint32_t w = f.encode(0x8100 - 0x7F00);
    put_word(l.old_image, 0x7F00, w);
    EXPECT_EQ(predicted_word(l.map, l.old_image, 0x7F00), w);
    EXPECT_EQ(predicted_word(l.map, l.old_image, 0x7F00, 8), w);
  }
}

TEST(Arm64Predictor, TargetsOutsideOldOrTheMapLeaveTheWord) {
  Layout l = layout(0x1230);
  // Before OLD, past OLD (a BL never maps past the end), into a gap of the map, misaligned.
  const std::uint32_t before = bl(-0x200), past = bl(0x10000);
  put_word(l.old_image, 0x100, before);
  put_word(l.old_image, 0xFFF0, past);
  EXPECT_EQ(predicted_word(l.map, l.old_image, 0x100), before);
  EXPECT_EQ(predicted_word(l.map, l.old_image, 0xFFF0, 8), past);
  AddressMap gap = AddressMap::from_covers({{0, 0x4000, 0}, {0x9000, 0x7000, 0x1230}}, 0);
  const std::uint32_t into_gap = bl(0x6000);
  put_word(l.old_image, 0x100, into_gap);  // target 0x6100: not mapped
  EXPECT_EQ(predicted_word(gap, l.old_image, 0x100), into_gap);
  Layout odd = layout(2);
  const std::uint32_t call = bl(0x200);
  put_word(odd.old_image, 0x7F00, call);  // target 0x8100 -> 0x8102: no BL reaches it
  EXPECT_EQ(predicted_word(odd.map, odd.old_image, 0x7F00), call);
}

// An ADRP at s and its partner at s + 4.
struct PairWords {
  std::uint32_t adrp, user;
};
PairWords predicted_pair(const Layout& l, std::uint64_t s, std::int64_t delta = 0) {
  const Bytes out = predicted(l.map, l.old_image, s, 8, delta);
  return {get_word(out, 0), get_word(out, 4)};
}

TEST(Arm64Predictor, AdrpPairsFollowTheirTarget) {
  Layout l = layout(0x1FF0);
  // adrp x0, page 9; add x0, x0, #0x10: target 0x9010 -> 0xB000 (page 11, low 0).
  put_word(l.old_image, 0x100, adrp(0, 9));
  put_word(l.old_image, 0x104, add_x(0, 0, 0x10));
  PairWords p = predicted_pair(l, 0x100);
  EXPECT_EQ(p.adrp, adrp(0, 11));
  EXPECT_EQ(p.user, add_x(0, 0, 0));
  // The same pair in NEW at 0x1100 (one page on): the page offset is one less.
  p = predicted_pair(l, 0x100, 0x1000);
  EXPECT_EQ(p.adrp, adrp(0, 10));
  EXPECT_EQ(p.user, add_x(0, 0, 0));
  // Loads and stores: the low 12 bits are scaled by the access size.
  Layout m = layout(0x1230);
  const struct {
    const char* name;
    std::uint32_t user_old, user_new;
  } users[] = {
      {"LDR X", ldr_x(1, 2, 0x10), ldr_x(1, 2, 0x240)},    // 0x9010 -> 0xA240
      {"LDR W", ldr_w(1, 2, 0x10), ldr_w(1, 2, 0x240)},
      {"LDRB", ldrb(1, 2, 0x10), ldrb(1, 2, 0x240)},
      {"STR Q", str_q(1, 2, 0x10), str_q(1, 2, 0x240)},
      {"LDR D", ldr_d(1, 2, 0x10), ldr_d(1, 2, 0x240)},
  };
  for (const auto& u : users) {
    SCOPED_TRACE(u.name);
    put_word(m.old_image, 0x200, adrp(2, 9));
    put_word(m.old_image, 0x204, u.user_old);
    p = predicted_pair(m, 0x200);
    EXPECT_EQ(p.adrp, adrp(2, 10));
    EXPECT_EQ(p.user, u.user_new);
  }
}

TEST(Arm64Predictor, AdrpPageArithmetic) {
  // The target crosses into the next page: 0x9FF8 + 0x10 = 0xA008.
  Layout l = layout(0x10);
  put_word(l.old_image, 0x2000, adrp(3, 7));  // page 2 + 7 = page 9
  put_word(l.old_image, 0x2004, ldr_x(4, 3, 0xFF8));
  PairWords p = predicted_pair(l, 0x2000);
  EXPECT_EQ(p.adrp, adrp(3, 8));
  EXPECT_EQ(p.user, ldr_x(4, 3, 0x008));
  // The ADRP crosses a page in NEW (0x1FF8 -> 0x2008), its target stays.
  Layout still = layout(0);
  put_word(still.old_image, 0x1FF8, adrp(5, 8));  // page 1 + 8 = page 9
  put_word(still.old_image, 0x1FFC, add_x(5, 5, 0x123));
  p = predicted_pair(still, 0x1FF8, 0x10);
  EXPECT_EQ(p.adrp, adrp(5, 7));
  EXPECT_EQ(p.user, add_x(5, 5, 0x123));
  // Backwards: an ADRP in the moved part whose target stays below it.
  Layout back = layout(0x1230);
  put_word(back.old_image, 0xC000, adrp(6, -10));  // page 12 - 10 = page 2
  put_word(back.old_image, 0xC004, add_x(6, 6, 0x345));
  p = predicted_pair(back, 0xC000, 0x1230);  // NEW 0xD230: page 13
  EXPECT_EQ(p.adrp, adrp(6, -11));
  EXPECT_EQ(p.user, add_x(6, 6, 0x345));
  // Unmoved: page(target) - page(pc) is what OLD has.
  p = predicted_pair(back, 0xC000, 0);
  EXPECT_EQ(p.adrp, adrp(6, -10));
}

TEST(Arm64Predictor, AdrpWithoutAPartnerIsLeftAlone) {
  Layout l = layout(0x1230);
  auto check_unchanged = [&](std::uint32_t first, std::uint32_t second, const char* why) {
    SCOPED_TRACE(why);
    put_word(l.old_image, 0x300, first);
    put_word(l.old_image, 0x304, second);
    const PairWords p = predicted_pair(l, 0x300);
    EXPECT_EQ(p.adrp, first);
    EXPECT_EQ(p.user, second);
  };
  check_unchanged(adrp(0, 9), add_x(1, 1, 0x10), "another register");
  check_unchanged(adrp(0, 9), ldr_x(0, 1, 0x10), "the register is the loaded one, not the base");
  check_unchanged(adrp(0, 9), kRet, "no low-12 user");
  check_unchanged(adrp(0, 9), 0xB1004000 /* adds x0, x0, #16 */, "ADDS is not a partner");
  check_unchanged(adrp(0, 9), 0x91404000 /* add x0, x0, #16, lsl #12 */, "a shifted ADD is not a partner");
  check_unchanged(adrp(31, 9), 0x910043FF /* add sp, sp, #16 */, "XZR has no address");
  check_unchanged(adrp(0, 9), ldr_x(1, 0, 0x1000), "a low part of 4 KiB or more");
  check_unchanged(kNop, add_x(0, 0, 0x10), "no ADRP");
  check_unchanged(adrp(0, -1), add_x(0, 0, 0x10), "target before OLD");
  // A target that moves off the access size's alignment: 0x9018 -> 0xA24C.
  Layout odd = layout(0x1234);
  put_word(odd.old_image, 0x300, adrp(0, 9));
  put_word(odd.old_image, 0x304, ldr_x(1, 0, 0x18));
  const PairWords p = predicted_pair(odd, 0x300);
  EXPECT_EQ(p.adrp, adrp(0, 9));
  EXPECT_EQ(p.user, ldr_x(1, 0, 0x18));
}

TEST(Arm64Predictor, AdrpPairsPastTheEndOfOldMoveWithTheLastEntry) {
  // Zero-initialised data has no bytes in the file: an address past OLD's
  // end moves with the map's last entry, if that entry ends at OLD's end.
  Layout l = layout(0x1230);
  put_word(l.old_image, 0x100, adrp(0, 0x12));  // 0x12010 -> 0x13240
  put_word(l.old_image, 0x104, add_x(0, 0, 0x10));
  PairWords p = predicted_pair(l, 0x100);
  EXPECT_EQ(p.adrp, adrp(0, 0x13));
  EXPECT_EQ(p.user, add_x(0, 0, 0x240));
  EXPECT_EQ(l.map.map_past_end(0x12010, 0x10000), std::optional<std::int64_t>(0x13240));
  // A map that stops short of OLD's end says nothing past it.
  Layout short_map = l;
  short_map.map = AddressMap::from_covers({{0, 0x8000, 0}, {0x8000, 0x7000, 0x1230}}, 0);
  p = predicted_pair(short_map, 0x100);
  EXPECT_EQ(p.adrp, adrp(0, 0x12));
  EXPECT_EQ(p.user, add_x(0, 0, 0x10));
  EXPECT_EQ(short_map.map.map_past_end(0x12010, 0x10000), std::nullopt);
  // A BL past the end is data, not a call.
  put_word(l.old_image, 0x200, bl(0x12000));
  EXPECT_EQ(predicted_word(l.map, l.old_image, 0x200), bl(0x12000));
}

TEST(Arm64Predictor, WindowEdges) {
  Layout l = layout(0x1230);
  const std::uint32_t call = bl(0x8100 - 0x1000);
  put_word(l.old_image, 0x1000, call);
  const std::uint32_t want = bl(0x8100 + 0x1230 - 0x1000);
  // A word straddling the start or the end of the range: only its bytes inside are written.
  for (std::uint64_t cut = 1; cut < 4; ++cut) {
    const Bytes head = predicted(l.map, l.old_image, 0x1000 + cut, 8, 0);
    for (std::uint64_t j = cut; j < 4; ++j) EXPECT_EQ(head[j - cut], static_cast<std::uint8_t>(want >> (8 * j)));
    const Bytes tail = predicted(l.map, l.old_image, 0xFF8, 8 + cut, 0);
    for (std::uint64_t j = 0; j < cut; ++j) EXPECT_EQ(tail[8 + j], static_cast<std::uint8_t>(want >> (8 * j)));
  }
  // An ADRP just before the range pairs with the user at its start, and an
  // ADRP at the end of the range with the user just after it.
  put_word(l.old_image, 0x2000, adrp(1, 7));  // page 2 + 7: 0x9010 -> 0xA240
  put_word(l.old_image, 0x2004, add_x(1, 1, 0x10));
  EXPECT_EQ(get_word(predicted(l.map, l.old_image, 0x2004, 4, 0), 0), add_x(1, 1, 0x240));
  EXPECT_EQ(get_word(predicted(l.map, l.old_image, 0x2000, 4, 0), 0), adrp(1, 8));
  // With a window that does not show the partner, the word is left alone
  // (callers give kPredictBefore and kPredictAfter bytes, so this does not happen).
  Bytes out(4);
  const ByteSpan from_user(l.old_image.data() + 0x2004, 64);
  delta::detail::predict(Predictor::kArm64, l.map, from_user, 0x2004, l.old_image.size(), 0x2004, 4, 0, out.data());
  EXPECT_EQ(get_word(out, 0), add_x(1, 1, 0x10));
  const ByteSpan to_adrp(l.old_image.data() + 0x1F00, 0x104);
  delta::detail::predict(Predictor::kArm64, l.map, to_adrp, 0x1F00, l.old_image.size(), 0x2000, 4, 0, out.data());
  EXPECT_EQ(get_word(out, 0), adrp(1, 7));
  // The last, partial word of OLD is never an instruction; the word before it is.
  Layout odd = layout(0x1230, 0x10002);
  put_word(odd.old_image, 0xFFFC, bl(-0x100));  // 0xFEFC -> 0x1112C
  odd.old_image[0x10000] = 0x00;
  odd.old_image[0x10001] = 0x94;
  Bytes want_end(6);
  put_word(want_end, 0, bl(0x1112C - 0xFFFC));
  want_end[4] = 0x00;
  want_end[5] = 0x94;
  EXPECT_EQ(predicted(odd.map, odd.old_image, 0xFFFC, 6, 0), want_end);
}

// Dense random code: every form, overlapping pairs, targets near the edges of
// map entries, words of every kind next to each other.
Bytes dense_code(std::size_t size, std::uint64_t seed) {
  test::Rng rng(seed);
  Bytes img(size);
  for (std::size_t s = 0; s + 4 <= size; s += 4) {
    const auto near = [&](unsigned bits) { return static_cast<std::int64_t>(rng.below(1u << bits)) - (1 << (bits - 1)); };
    std::uint32_t w = 0;
    switch (rng.below(12)) {
      case 0: w = bl(4 * near(12)); break;
      case 1: w = b(4 * near(12)); break;
      case 2: w = b_cond(static_cast<unsigned>(rng.below(16)), 4 * near(12)); break;
      case 3: w = rng.below(2) ? cbz_x(static_cast<unsigned>(rng.below(32)), 4 * near(12)) : ldr_literal_x(1, 4 * near(12)); break;
      case 4: w = tbnz(static_cast<unsigned>(rng.below(32)), static_cast<unsigned>(rng.below(64)), 4 * near(12)); break;
      case 5: w = adr(static_cast<unsigned>(rng.below(32)), near(14)); break;
      case 6:
      case 7: w = adrp(static_cast<unsigned>(rng.below(4)), near(3)); break;
      case 8: w = add_x(static_cast<unsigned>(rng.below(4)), static_cast<unsigned>(rng.below(4)), static_cast<unsigned>(rng.below(4096))); break;
      case 9: w = ldr_x(1, static_cast<unsigned>(rng.below(4)), 8 * static_cast<unsigned>(rng.below(600))); break;
      case 10: w = str_q(1, static_cast<unsigned>(rng.below(4)), 16 * static_cast<unsigned>(rng.below(300))); break;
      default: w = static_cast<std::uint32_t>(rng.next()); break;
    }
    put_word(img, s, w);
  }
  return img;
}

AddressMap random_map(std::uint64_t size, std::uint64_t seed) {
  test::Rng rng(seed);
  std::vector<MapEntry> covers;
  for (std::uint64_t at = 0; at < size;) {
    const std::uint64_t len = std::min<std::uint64_t>(size - at, 1 + rng.below(3000));
    // Mostly multiples of 4 (moved code), some not; a few gaps.
    std::int64_t shift = 4 * static_cast<std::int64_t>(rng.below(2000)) - 4000 + (rng.below(5) == 0 ? 2 : 0);
    shift = std::max(shift, -static_cast<std::int64_t>(at));  // NEW offsets are >= 0, as AddressMap::decode checks
    if (rng.below(8) != 0) covers.push_back({at, len, shift});
    at += len;
  }
  return AddressMap::from_covers(covers, 0);
}

TEST(Arm64Predictor, MatchesTheRuleWordForWord) {
  // In windows of every alignment, clipped as callers may clip them (or
  // tighter): exactly what the rule says, seeing only the window.
  const Bytes old_image = dense_code(1 << 15, 2);
  const AddressMap map = random_map(old_image.size(), 3);
  test::Rng rng(4);
  for (int trial = 0; trial < 4000; ++trial) {
    const std::uint64_t q = rng.below(old_image.size());
    const std::size_t n = static_cast<std::size_t>(1 + rng.below(std::min<std::uint64_t>(trial % 10 ? 64 : 3000, old_image.size() - q)));
    const std::uint64_t ws = q - std::min<std::uint64_t>(q, rng.below(12));
    const std::uint64_t we = std::min<std::uint64_t>(old_image.size(), q + n + rng.below(12));
    const ByteSpan window(old_image.data() + ws, static_cast<std::size_t>(we - ws));
    const std::int64_t delta = 4 * static_cast<std::int64_t>(rng.below(2000)) - 4000 + (trial % 7 == 0 ? 1 : 0);
    Bytes got(n);
    delta::detail::predict(Predictor::kArm64, map, window, ws, old_image.size(), q, n, delta, got.data());
    ASSERT_EQ(got, reference_arm64(map, window, ws, old_image.size(), q, n, delta))
        << "q " << q << " n " << n << " window [" << ws << ", " << we << ") delta " << delta;
  }
}

TEST(Arm64Predictor, TheCallersWindowAndAnySplitGiveTheSameBytes) {
  // What the patcher sees (a window of kPredictBefore and kPredictAfter bytes
  // around each piece, the range cut anywhere) equals what the generator sees
  // (all of OLD, one call per record).
  const Bytes old_image = dense_code(1 << 14, 5);
  const AddressMap map = random_map(old_image.size(), 6);
  test::Rng rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::uint64_t q = rng.below(old_image.size());
    const std::size_t n = static_cast<std::size_t>(1 + rng.below(std::min<std::uint64_t>(500, old_image.size() - q)));
    const std::int64_t delta = 4 * static_cast<std::int64_t>(rng.below(200)) - 400;
    const Bytes whole = predicted(map, old_image, q, n, delta);
    Bytes pieces(n);
    for (std::size_t done = 0; done < n;) {
      const std::size_t len = std::min<std::size_t>(n - done, 1 + rng.below(9));
      const std::uint64_t off = q + done;
      const std::uint64_t lo = off >= delta::detail::kPredictBefore ? off - delta::detail::kPredictBefore : 0;
      const std::uint64_t hi = std::min<std::uint64_t>(old_image.size(), off + len + delta::detail::kPredictAfter);
      // A copy of exactly the window, so nothing past it is there to read.
      const Bytes window(old_image.begin() + static_cast<std::ptrdiff_t>(lo), old_image.begin() + static_cast<std::ptrdiff_t>(hi));
      delta::detail::predict(Predictor::kArm64, map, window, lo, old_image.size(), off, len, delta, pieces.data() + done);
      done += len;
    }
    ASSERT_EQ(pieces, whole) << "q " << q << " n " << n;
  }
}

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
  EXPECT_EQ(header->first.version, 2) << "the arm64 predictor needs format version 2";
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
    EXPECT_EQ(delta::format_version_for(p), 1);
  }
  EXPECT_EQ(delta::format_version_for(Predictor::kArm64), 2);
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
  EXPECT_EQ(parse_code(header_bytes(3, 0x30)), ErrorCode::kUnsupported) << "version 3 is unknown";
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
