// The AArch64 predictor suites' helpers (delta_predictor_arm64_test,
// delta_arm64_image_test): A64 encoders and decoders written from the rule in
// docs/formats.md, word access, and the predictor run over an image.
#pragma once

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
namespace {  // each test file its own copy

using delta::Compression;
using delta::Predictor;
using delta::PredictorChoice;
using delta::detail::AddressMap;
using delta::detail::MapEntry;

// ---- A64 encoders (Arm ARM, C6), byte offsets relative to the instruction ----

inline std::uint32_t field(std::int64_t v, unsigned bits) { return static_cast<std::uint32_t>(v) & ((1u << bits) - 1); }
inline std::uint32_t b(std::int64_t off) { return 0x14000000 | field(off >> 2, 26); }
inline std::uint32_t bl(std::int64_t off) { return 0x94000000 | field(off >> 2, 26); }
inline std::uint32_t b_cond(unsigned cond, std::int64_t off) { return 0x54000000 | field(off >> 2, 19) << 5 | cond; }
inline std::uint32_t cbz_x(unsigned rt, std::int64_t off) { return 0xB4000000 | field(off >> 2, 19) << 5 | rt; }
inline std::uint32_t cbnz_w(unsigned rt, std::int64_t off) { return 0x35000000 | field(off >> 2, 19) << 5 | rt; }
inline std::uint32_t tbz(unsigned rt, unsigned bit, std::int64_t off) {
  return (bit >> 5) << 31 | 0x36000000 | (bit & 31) << 19 | field(off >> 2, 14) << 5 | rt;
}
inline std::uint32_t tbnz(unsigned rt, unsigned bit, std::int64_t off) { return tbz(rt, bit, off) | 0x01000000; }
inline std::uint32_t ldr_literal_x(unsigned rt, std::int64_t off) { return 0x58000000 | field(off >> 2, 19) << 5 | rt; }
inline std::uint32_t adr(unsigned rd, std::int64_t off) {
  const std::uint32_t u = field(off, 21);
  return 0x10000000 | (u & 3) << 29 | (u >> 2) << 5 | rd;
}
inline std::uint32_t adrp(unsigned rd, std::int64_t pages) { return adr(rd, pages) | 0x80000000; }
inline std::uint32_t add_x(unsigned rd, unsigned rn, unsigned imm12) { return 0x91000000 | imm12 << 10 | rn << 5 | rd; }
// Loads and stores with an unsigned offset, given in bytes (a multiple of the access size).
inline std::uint32_t ldr_x(unsigned rt, unsigned rn, unsigned off) { return 0xF9400000 | (off / 8) << 10 | rn << 5 | rt; }
inline std::uint32_t ldr_w(unsigned rt, unsigned rn, unsigned off) { return 0xB9400000 | (off / 4) << 10 | rn << 5 | rt; }
inline std::uint32_t ldrb(unsigned rt, unsigned rn, unsigned off) { return 0x39400000 | off << 10 | rn << 5 | rt; }
inline std::uint32_t str_q(unsigned rt, unsigned rn, unsigned off) { return 0x3D800000 | (off / 16) << 10 | rn << 5 | rt; }
inline std::uint32_t ldr_d(unsigned rt, unsigned rn, unsigned off) { return 0xFD400000 | (off / 8) << 10 | rn << 5 | rt; }
inline constexpr std::uint32_t kNop = 0xD503201F;
inline constexpr std::uint32_t kRet = 0xD65F03C0;

// ---- decoders, written from the rule in docs/formats.md ----

inline std::int64_t sext(std::uint32_t v, unsigned bits) {
  const std::int64_t x = v & ((std::uint64_t{1} << bits) - 1);
  return x >= (std::int64_t{1} << (bits - 1)) ? x - (std::int64_t{1} << bits) : x;
}

enum class Form { kOther, kImm26, kImm19, kImm14, kAdr, kAdrp, kLo12 };

inline Form form_of(std::uint32_t w) {
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
inline std::int64_t decoded_offset(std::uint32_t w) {
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
inline std::optional<unsigned> lo12_scale(std::uint32_t w, unsigned base) {
  if ((w >> 5 & 31) != base) return std::nullopt;
  if ((w & 0xFFC00000) == 0x91000000) return 0u;
  if ((w & 0x3B000000) != 0x39000000) return std::nullopt;
  const unsigned size = w >> 30;
  if ((w & 0x04000000) == 0) return size;
  const unsigned scale = (w >> 23 & 1) * 4 + size;
  if (scale > 4) return std::nullopt;
  return scale;
}

inline std::uint32_t with_offset(std::uint32_t w, std::int64_t off) {
  switch (form_of(w)) {
    case Form::kImm26: return (w & 0xFC000000) | field(off >> 2, 26);
    case Form::kImm19: return (w & 0xFF00001F) | field(off >> 2, 19) << 5;
    case Form::kImm14: return (w & 0xFFF8001F) | field(off >> 2, 14) << 5;
    case Form::kAdr:
    case Form::kAdrp: return (w & 0x9F00001F) | (field(off, 21) & 3) << 29 | (field(off, 21) >> 2) << 5;
    default: return w;
  }
}

inline std::uint32_t get_word(const Bytes& img, std::size_t at) {
  return static_cast<std::uint32_t>(img[at]) | static_cast<std::uint32_t>(img[at + 1]) << 8 |
         static_cast<std::uint32_t>(img[at + 2]) << 16 | static_cast<std::uint32_t>(img[at + 3]) << 24;
}
inline void put_word(Bytes& img, std::size_t at, std::uint32_t w) {
  for (int j = 0; j < 4; ++j) img[at + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(w >> (8 * j));
}

// The rule of docs/formats.md, one word at a time: the reference bytes of
// OLD[q, q + n) at NEW offset q + delta, seeing only OLD bytes inside the window.
inline Bytes reference_arm64(const AddressMap& map, ByteSpan window, std::uint64_t ws, std::uint64_t old_size,
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
inline Bytes predicted(const AddressMap& map, const Bytes& old_image, std::uint64_t q, std::size_t n, std::int64_t delta) {
  Bytes out(n);
  delta::detail::predict(Predictor::kArm64, map, old_image, 0, old_image.size(), q, n, delta, out.data());
  return out;
}
inline std::uint32_t predicted_word(const AddressMap& map, const Bytes& old_image, std::uint64_t s, std::int64_t delta = 0) {
  return get_word(predicted(map, old_image, s, 4, delta), 0);
}

}  // namespace
}  // namespace ota
