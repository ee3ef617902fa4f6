// What fuzz_patch and its seed generator agree on: the fixed OLD image and the
// layout of a fuzz input.
//
// Input layout:
//   byte 0        control: bits 0-2 = k, the number of chunk-size bytes;
//                 bit 3 = skip hashing OLD (BaseCheck::kNone);
//                 bits 4-5 = max_window_log choice (27, 20, 12, 10);
//                 bit 6 = write and hash NEW on a second thread (hash_in_background)
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

inline constexpr std::uint8_t kVerifyOldOff = 0x08;
inline constexpr std::uint8_t kBackground = 0x40;
inline constexpr std::uint8_t kWindowLogs[4] = {27, 20, 12, 10};

}  // namespace ota::fuzz
