// What fuzz_patch and its seed generator agree on: the fixed OLD image and the
// layout of a fuzz input.
//
// Input layout:
//   byte 0        control: bits 0-2 = k, the number of chunk-size bytes;
//                 bit 3 = skip hashing OLD (BaseCheck::kNone);
//                 bits 4-5 = max_window_log choice (27, 20, 12, 10);
//                 bit 6 = write and hash NEW on a second thread (hash_in_background);
//                 bit 7 = OLD is fixed_code_old() instead of fixed_old()
//   bytes 1..k    chunk sizes for feed(): byte + 1, used in turn, cycled
//                 (k = 0: the whole patch in one feed)
//   the rest      the patch (ota delta or BSDIFF40)
#pragma once

#include <cstdint>
#include <cstring>

#include "ota/core/io.hpp"

namespace ota::fuzz {

inline constexpr std::size_t kOldSize = 4096;

// 4 KiB of deterministic pseudo-random bytes (SplitMix64, seed 0x07a).
inline Bytes fixed_old() {
  Bytes out(kOldSize);
  std::uint64_t state = 0x07a;
  for (std::size_t i = 0; i < out.size(); i += 8) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, 8);
  }
  return out;
}

// 4 KiB of machine-code-like words whose references all land inside it, so
// every predictor finds sites and maps their targets: AArch64 BL and ADRP +
// ADD (the page of offset 0), Thumb-2 BL, x86 E8 rel32 (SplitMix64, seed 0xa64).
inline Bytes fixed_code_old() {
  Bytes out(kOldSize);
  std::uint64_t state = 0xa64;
  auto next = [&state] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  auto put32 = [&out](std::size_t at, std::uint32_t v) {
    for (std::size_t j = 0; j < 4; ++j) out[at + j] = static_cast<std::uint8_t>(v >> (8 * j));
  };
  for (std::size_t s = 0; s + 8 <= kOldSize; s += 8) {
    const std::uint64_t r = next();
    const auto target = static_cast<std::int64_t>((r >> 8) % kOldSize);
    const std::int64_t from = static_cast<std::int64_t>(s);
    const std::uint32_t reg = static_cast<std::uint32_t>(r >> 40) % 31;
    switch (r % 4) {
      case 0:  // BL, then BL
        put32(s, 0x94000000 | (static_cast<std::uint32_t>((target & ~3) - from) >> 2 & 0x3FFFFFF));
        put32(s + 4, 0x94000000 | (static_cast<std::uint32_t>((target & ~3) - from - 4) >> 2 & 0x3FFFFFF));
        break;
      case 1: {  // ADRP reg, page 0; ADD reg, reg, #target
        const auto pages = static_cast<std::uint32_t>(-(from >> 12)) & 0x1FFFFF;
        put32(s, 0x90000000 | (pages & 3) << 29 | (pages >> 2) << 5 | reg);
        put32(s + 4, 0x91000000 | static_cast<std::uint32_t>(target & 0xFFF) << 10 | reg << 5 | reg);
        break;
      }
      case 2: {  // Thumb-2 BL: S:I1:I2:imm10:imm11:0, J = NOT(I) XOR S
        const auto u = static_cast<std::uint32_t>((target & ~1) - from - 4) & 0x1FFFFFF;
        const std::uint32_t S = u >> 24 & 1, J1 = (1 ^ (u >> 23 & 1)) ^ S, J2 = (1 ^ (u >> 22 & 1)) ^ S;
        put32(s, (0xF000 | S << 10 | (u >> 12 & 0x3FF)) | (0xD000 | J1 << 13 | J2 << 11 | (u >> 1 & 0x7FF)) << 16);
        put32(s + 4, static_cast<std::uint32_t>(r >> 32));
        break;
      }
      default:  // E8 rel32, three more bytes
        out[s] = 0xE8;
        put32(s + 1, static_cast<std::uint32_t>(target - from - 5));
        out[s + 5] = 0x90;
        out[s + 6] = 0x90;
        out[s + 7] = 0xC3;
        break;
    }
  }
  return out;
}

inline constexpr std::uint8_t kVerifyOldOff = 0x08;
inline constexpr std::uint8_t kBackground = 0x40;
inline constexpr std::uint8_t kCodeOld = 0x80;
inline constexpr std::uint8_t kWindowLogs[4] = {27, 20, 12, 10};

}  // namespace ota::fuzz
