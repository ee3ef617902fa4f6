// Internal: unsigned LEB128 and zigzag, strict (canonical, at most 64 bits).
#pragma once

#include <cstdint>

#include "ota/core/io.hpp"

namespace ota::detail {

inline constexpr std::size_t kMaxVarintSize = 10;

inline void put_varint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

enum class VarintStatus { kOk, kNeedMore, kInvalid };

// Decodes one varint from the front of data. kNeedMore: data is a valid prefix;
// kInvalid: overlong (non-canonical) or over 64 bits.
inline VarintStatus get_varint(ByteSpan data, std::uint64_t& value, std::size_t& used) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::uint8_t b = data[i];
    if (i == 9 && b > 1) return VarintStatus::kInvalid;
    v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      if (b == 0 && i > 0) return VarintStatus::kInvalid;  // overlong
      value = v;
      used = i + 1;
      return VarintStatus::kOk;
    }
    if (i + 1 == kMaxVarintSize) return VarintStatus::kInvalid;
  }
  return VarintStatus::kNeedMore;
}

}  // namespace ota::detail
