// Deterministic test data: a seeded generator and the image shapes the delta
// tests are made of (random, firmware-like, and edits of an existing image).
// Never std::random_device, never std::*_distribution: same seed, same bytes,
// on every platform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "ota/core/io.hpp"

namespace ota::test {

// SplitMix64: tiny, fast, and good enough to make test data.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  // Uniform in [0, bound) (bound > 0; the modulo bias is irrelevant here).
  std::uint64_t below(std::uint64_t bound) { return next() % bound; }
  // Uniform in [lo, hi].
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
  std::uint8_t byte() { return static_cast<std::uint8_t>(next()); }

 private:
  std::uint64_t state_;
};

// n pseudo-random bytes (incompressible).
Bytes random_bytes(std::size_t n, std::uint64_t seed);

// n bytes that look like a firmware image: instruction-like words drawn from a
// small vocabulary, zero padding, ASCII strings and repeated tables.
// Compressible, with many repeats, so matches and zstd both have work to do.
Bytes structured_bytes(std::size_t n, std::uint64_t seed);

// A copy of data with `count` single bytes overwritten by random values.
Bytes with_random_edits(const Bytes& data, std::size_t count, std::uint64_t seed);

// data with `insert` spliced in before position pos.
Bytes with_insertion(const Bytes& data, std::size_t pos, const Bytes& insert);

// data with [from, from+len) removed and re-inserted at `to` (an offset in
// the remaining bytes).
Bytes with_moved_block(const Bytes& data, std::size_t from, std::size_t len, std::size_t to);

// Concatenation.
Bytes concat(const Bytes& a, const Bytes& b);
Bytes concat(std::initializer_list<Bytes> parts);

// [pos, pos+len) of data.
Bytes slice(const Bytes& data, std::size_t pos, std::size_t len);

}  // namespace ota::test
