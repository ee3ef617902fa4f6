#include "support/random.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace ota::test {

std::uint64_t Rng::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  Bytes out(n);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v = rng.next();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = rng.byte();
  return out;
}

Bytes structured_bytes(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::array<std::uint32_t, 64> words{};
  for (auto& w : words) w = static_cast<std::uint32_t>(rng.next());
  static constexpr const char* kStrings[] = {
      "firmware", "bootloader", "partition", "error: ", "version ", "update", "checksum",
      "/dev/mmcblk0p", "kernel", "rootfs", "ota-agent", "signature", "manifest", "%s:%d: "};
  Bytes out;
  out.reserve(n + 256);
  while (out.size() < n) {
    switch (rng.below(8)) {
      case 0:  // zero padding
        out.insert(out.end(), rng.between(8, 200), 0);
        break;
      case 1: {  // a string
        const char* s = kStrings[rng.below(std::size(kStrings))];
        out.insert(out.end(), s, s + std::strlen(s));
        out.push_back(0);
        break;
      }
      case 2: {  // a table of small increasing integers
        std::uint32_t base = static_cast<std::uint32_t>(rng.below(1u << 20));
        for (std::uint64_t k = rng.between(4, 32); k > 0; --k) {
          base += static_cast<std::uint32_t>(rng.below(64));
          for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(base >> (8 * b)));
        }
        break;
      }
      case 3:  // repeat something recent
        if (out.size() > 64) {
          std::size_t len = rng.between(16, 256);
          std::size_t from = out.size() - std::min(out.size(), static_cast<std::size_t>(rng.between(len, 4096)));
          len = std::min(len, out.size() - from);
          for (std::size_t k = 0; k < len; ++k) out.push_back(out[from + k]);
        }
        break;
      case 4:  // a few random bytes
        for (std::uint64_t k = rng.between(1, 16); k > 0; --k) out.push_back(rng.byte());
        break;
      default:  // instruction-like words from a small vocabulary
        for (std::uint64_t k = rng.between(4, 40); k > 0; --k) {
          std::uint32_t w = words[rng.below(words.size())];
          if (rng.below(4) == 0) w ^= static_cast<std::uint32_t>(rng.below(4096));  // an immediate
          for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(w >> (8 * b)));
        }
        break;
    }
  }
  out.resize(n);
  return out;
}

Bytes with_random_edits(const Bytes& data, std::size_t count, std::uint64_t seed) {
  Bytes out = data;
  if (out.empty()) return out;
  Rng rng(seed);
  for (std::size_t i = 0; i < count; ++i) out[rng.below(out.size())] = rng.byte();
  return out;
}

Bytes with_insertion(const Bytes& data, std::size_t pos, const Bytes& insert) {
  if (pos > data.size()) throw std::out_of_range("with_insertion");
  Bytes out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(pos));
  out.insert(out.end(), insert.begin(), insert.end());
  out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos), data.end());
  return out;
}

Bytes with_moved_block(const Bytes& data, std::size_t from, std::size_t len, std::size_t to) {
  if (from + len > data.size() || to > data.size() - len) throw std::out_of_range("with_moved_block");
  Bytes block = slice(data, from, len);
  Bytes rest(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(from));
  rest.insert(rest.end(), data.begin() + static_cast<std::ptrdiff_t>(from + len), data.end());
  return with_insertion(rest, to, block);
}

Bytes concat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes slice(const Bytes& data, std::size_t pos, std::size_t len) {
  if (pos + len > data.size()) throw std::out_of_range("slice");
  return Bytes(data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + len));
}

}  // namespace ota::test
