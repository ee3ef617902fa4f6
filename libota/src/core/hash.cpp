#include "ota/hash.hpp"

#include <sodium.h>

#include <cstring>

namespace ota {

static_assert(sizeof(crypto_hash_sha256_state) <= 112, "Sha256 state buffer too small");

namespace {
crypto_hash_sha256_state* state_of(std::uint8_t* raw) {
  return reinterpret_cast<crypto_hash_sha256_state*>(raw);
}
}  // namespace

Sha256::Sha256() {
  std::memset(state_, 0, sizeof state_);
  crypto_hash_sha256_init(state_of(state_));
}

void Sha256::update(ByteSpan data) {
  crypto_hash_sha256_update(state_of(state_), data.data(), data.size());
}

Digest Sha256::finish() {
  Digest out{};
  crypto_hash_sha256_final(state_of(state_), out.data());
  return out;
}

Digest sha256(ByteSpan data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

Result<Digest> sha256(const Source& source) {
  Sha256 h;
  Bytes buf(64 * 1024);
  for (std::uint64_t off = 0; off < source.size();) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), source.size() - off));
    OTA_TRY(source.read_at(off, MutableByteSpan(buf.data(), n)));
    h.update(ByteSpan(buf.data(), n));
    off += n;
  }
  return h.finish();
}

std::string to_hex(ByteSpan bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::optional<Digest> digest_from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Digest d{};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return d;
}

}  // namespace ota
