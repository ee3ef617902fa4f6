// Ed25519 signing keys (libsodium) and their files.
//
// Contract:
// - A key id is the BLAKE2b-256 of the 32-byte public key, in lowercase hex
//   (64 characters). It names the key everywhere: roots, signatures, CLI.
// - A public key file (NAME.pub) and a secret key file (NAME.key) are small
//   JSON documents (docs/formats.md, "Key files"). The secret file holds the
//   32-byte Ed25519 seed, either in clear or sealed with a passphrase
//   (Argon2id key derivation, XChaCha20-Poly1305).
// - Secret material lives in sodium_malloc'd memory that is locked, guarded
//   and wiped on destruction. Error messages never contain key material or
//   passphrases: a malformed secret file is reported without quoting it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"

namespace ota::keys {

using KeyId = Digest;
using Signature = std::array<std::uint8_t, 64>;

struct PublicKey {
  std::array<std::uint8_t, 32> bytes{};
  KeyId id() const;
  std::string id_hex() const;
  // True when sig is a valid Ed25519 signature of message by this key.
  bool verify(ByteSpan message, const Signature& sig) const;
  bool operator==(const PublicKey&) const = default;
};

// Parses a key id in hex (exactly 64 lowercase or uppercase hex digits).
std::optional<KeyId> key_id_from_hex(std::string_view hex);

class SecretKey {
 public:
  // A fresh random key pair.
  static Result<SecretKey> generate();
  // A key pair from a 32-byte seed (tests and imports).
  static Result<SecretKey> from_seed(ByteSpan seed);

  SecretKey(SecretKey&&) noexcept;
  SecretKey& operator=(SecretKey&&) noexcept;
  ~SecretKey();

  const PublicKey& public_key() const { return public_; }
  Signature sign(ByteSpan message) const;

 private:
  SecretKey() = default;
  std::uint8_t* sk_ = nullptr;  // 64 bytes (seed || public key), sodium_malloc'd
  PublicKey public_;
  friend struct SecretKeyAccess;
};

// Passphrase-sealing cost. Interactive limits keep `ota sign` fast;
// tests use the minimum.
struct SealParams {
  std::uint64_t opslimit = 3;               // crypto_pwhash_OPSLIMIT_MODERATE
  std::uint64_t memlimit = 256ull << 20;    // crypto_pwhash_MEMLIMIT_MODERATE
};

// The text of NAME.pub.
std::string encode_public(const PublicKey& key);
// Parses NAME.pub (also accepts the secret file: its public part).
Result<PublicKey> parse_public(std::string_view text);

// The text of NAME.key; sealed when passphrase is given (non-empty).
Result<std::string> encode_secret(const SecretKey& key, std::optional<std::string_view> passphrase,
                                  const SealParams& params = {});
// Opens NAME.key. A sealed key needs the passphrase (kBadPassphrase if it is
// missing or wrong). The key id in the file must match the key.
Result<SecretKey> parse_secret(std::string_view text, std::optional<std::string_view> passphrase);
// True when the secret key text is sealed with a passphrase.
bool is_sealed(std::string_view text);

// Loads a public key file / secret key file from disk.
Result<PublicKey> load_public(const std::string& path);
Result<SecretKey> load_secret(const std::string& path, std::optional<std::string_view> passphrase);

// Overwrites memory in a way the compiler cannot elide (sodium_memzero).
void wipe(void* data, std::size_t size);

// Writes NAME.key (mode 0600, atomically) and NAME.pub (0644).
Status write_key_pair(const std::string& base, const SecretKey& key,
                      std::optional<std::string_view> passphrase, const SealParams& params = {});

}  // namespace ota::keys
