// The content hash of ota: BLAKE2b-256 (libsodium's crypto_generichash).
//
// Every image, patch and payload hash in ota documents is BLAKE2b with a
// 32-byte digest, which `b2sum -l 256` reproduces. Chosen over SHA-256 because
// a device hashes every byte it writes and libsodium's BLAKE2b is about three
// times faster than its SHA-256 (docs/benchmarks.md, "Content hash").
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ota/core/io.hpp"

namespace ota {

using Digest = std::array<std::uint8_t, 32>;

// Incremental BLAKE2b-256. The state is a plain value: copying it snapshots the hash.
class Hasher {
 public:
  Hasher();
  void update(ByteSpan data);
  // Returns the digest; the hasher must not be updated afterwards.
  Digest finish();

 private:
  alignas(64) std::uint8_t state_[384];  // crypto_generichash_state, kept opaque here
};

// The digest of a byte span.
Digest content_hash(ByteSpan data);

// Feeds source[offset, offset + size) to `into`, read front to back in
// chunks of 64 KiB (the one way libota hashes a Source: OLD before a patch,
// the NEW prefix a resumed install wrote, a bank's image). A range past the
// source's end is kIo; when `cancel` becomes true the read stops with
// kCancelled.
Status hash_range(const Source& source, std::uint64_t offset, std::uint64_t size, Hasher& into,
                  const std::atomic<bool>* cancel = nullptr);

// The digest of a whole Source (hash_range over all of it).
Result<Digest> content_hash(const Source& source);

// Lowercase hex of any bytes, and back (nullopt unless exactly 64 hex digits).
// Forwards writes to another Writer and hashes everything written through it.
class HashingWriter final : public Writer {
 public:
  explicit HashingWriter(Writer& next) : next_(next) {}
  Status write(ByteSpan data) override {
    hash_.update(data);
    return next_.write(data);
  }
  Status sync() override { return next_.sync(); }
  Status commit() override { return next_.commit(); }
  std::uint64_t position() const override { return next_.position(); }
  // The digest of all bytes written; call once, after the last write.
  Digest digest() { return hash_.finish(); }

 private:
  Writer& next_;
  Hasher hash_;
};

std::string to_hex(ByteSpan bytes);
std::optional<Digest> digest_from_hex(std::string_view hex);

}  // namespace ota
