// Internal: record and frame constants of the ota delta format (docs/formats.md).
#pragma once

#include <cstdint>

#include "core/varint.hpp"

namespace ota::delta::detail {

using ::ota::detail::get_varint;
using ::ota::detail::kMaxVarintSize;
using ::ota::detail::put_varint;
using ::ota::detail::unzigzag;
using ::ota::detail::VarintStatus;
using ::ota::detail::zigzag;

inline constexpr std::uint8_t kMagic[3] = {'O', 'T', 'D'};

// Record tag = varint(n << 2 | op).
enum Op : std::uint8_t {
  kOpCopy = 0,    // n > 0: copy n OLD bytes at the cursor; n == 0: copy to the end of the frame
  kOpAdd = 1,     // n bytes follow; NEW = OLD[cursor + i] + byte (mod 256)
  kOpInsert = 2,  // n literal bytes follow
  kOpSeek = 3,    // n = zigzag(delta): cursor += delta
};

// First byte of every frame.
// Version 3: kFrameRaw and kFrameZstd hold record blocks, and a frame whose
// records are interleaved (as in versions 1 and 2) adds kFrameInterleaved.
enum FrameMode : std::uint8_t {
  kFrameRaw = 0,   // records follow as they are
  kFrameZstd = 1,  // one zstd frame follows holding the records
  kFrameInterleaved = 2,  // version 3 only, added to the above: interleaved records
};

}  // namespace ota::delta::detail
