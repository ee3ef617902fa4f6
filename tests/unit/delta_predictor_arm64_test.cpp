// The AArch64 reference predictor (docs/formats.md, "Predictor"): the
// encoders, each form on a hand-assembled OLD, the rule word for word on
// dense code, and the caller's window.
#include "unit/arm64_words.hpp"

namespace ota {
namespace {

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

}  // namespace
}  // namespace ota
