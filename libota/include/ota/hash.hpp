// SHA-256, the one content hash of ota (image hashes in patch headers, and
// later manifests and bundle chunks). Chosen over BLAKE2b so that a hash in
// any ota document can be checked with plain `sha256sum`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ota/io.hpp"

namespace ota {

using Digest = std::array<std::uint8_t, 32>;

// Incremental SHA-256. The state is a plain value: copying it snapshots the hash.
class Sha256 {
 public:
  Sha256();
  void update(ByteSpan data);
  Digest finish();

 private:
  alignas(16) std::uint8_t state_[112];  // crypto_hash_sha256_state, kept opaque here
};

Digest sha256(ByteSpan data);

// Hashes a whole Source (reads it front to back in bounded chunks).
Result<Digest> sha256(const Source& source);

// Lowercase hex of any bytes, and back (nullopt when not exactly 64 hex chars).
std::string to_hex(ByteSpan bytes);
std::optional<Digest> digest_from_hex(std::string_view hex);

}  // namespace ota
