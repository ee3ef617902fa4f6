// Encrypted bundles: payloads kept confidential in transit and on CDNs.
//
// Construction (docs/formats.md, "Encrypted payloads"; docs/security.md):
// - One random 32-byte content key per bundle. Each payload is cut into
//   blocks of Encryption::block_size plaintext bytes; block i of payload p is
//   sealed with XChaCha20-Poly1305 (IETF, libsodium's crypto_aead_*), nonce
//   LE64(p) || LE64(i) || 8 zero bytes, associated data "ota-block-v1" and a
//   byte that is 1 for the payload's last block, else 0. Every (key, nonce)
//   pair is used once; a block moved, dropped, duplicated or cut short fails
//   its tag. Unlike libsodium's secretstream (whose state chains every message
//   to the previous one), any block decrypts alone: a device resumes at a
//   frame boundary and skips by HTTP Range without reading what precedes.
// - The content key is sealed to each recipient's X25519 public key
//   (crypto_box_seal: an ephemeral key pair per recipient) and the sealed keys
//   sit in the signed manifest. The manifest also signs the ciphertext (the
//   payload's chunk hashes, as for any payload: a device rejects tampered
//   ciphertext before decrypting it, even from a holder of the content key)
//   and the plaintext (plain size and hash; the image's target hash).
//
// Contract:
// - Secret material (the X25519 secret key, the content key) lives in
//   sodium_malloc'd memory, wiped on destruction; errors never contain it.
// - decrypting() wraps a *verified* BundleReader: it hands out plaintext,
//   in plaintext payload offsets (skip_to, read_checked, payload_position),
//   each block only after its ciphertext passed the signed chunk hashes and
//   its tag verified; a payload read whole from its start is also checked
//   against its signed plain hash. kPayloadMismatch on any failure.
// - Key errors are kDecryptionKey (exit 31): no key, not a recipient, a key
//   command that failed.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/manifest.hpp"

namespace ota::encryption {

// A recipient's X25519 public key (NAME.pub with "type": "x25519").
struct PublicKey {
  std::array<std::uint8_t, 32> bytes{};
  Digest id() const;  // BLAKE2b-256 of the 32 bytes
  std::string id_hex() const;
  bool operator==(const PublicKey&) const = default;
};

// A device's X25519 secret key.
class SecretKey {
 public:
  static Result<SecretKey> generate();
  // From the 32 secret bytes.
  static Result<SecretKey> from_bytes(ByteSpan secret);
  SecretKey(SecretKey&&) noexcept;
  SecretKey& operator=(SecretKey&&) noexcept;
  ~SecretKey();
  const PublicKey& public_key() const { return public_; }

 private:
  SecretKey() = default;
  std::uint8_t* sk_ = nullptr;  // 32 bytes, sodium_malloc'd
  PublicKey public_;
  friend struct SecretAccess;
};

// The bundle's content key.
class ContentKey {
 public:
  static Result<ContentKey> generate();
  ContentKey(ContentKey&&) noexcept;
  ContentKey& operator=(ContentKey&&) noexcept;
  ~ContentKey();

 private:
  ContentKey() = default;
  std::uint8_t* k_ = nullptr;  // 32 bytes, sodium_malloc'd
  friend struct SecretAccess;
};

// Key files (docs/formats.md, "Keys"): NAME.pub {"format": "ota-public-key-v1",
// "type": "x25519", "keyid", "public"} and NAME.key (0600) with the same
// fields plus "secret" (64 hex digits).
std::string encode_public(const PublicKey& key);
Result<PublicKey> parse_public(std::string_view text);  // also takes the secret file (its public part)
Result<std::string> encode_secret(const SecretKey& key);
// The secret key file, or the 32 secret bytes as 64 hex digits (what a key
// command may print), or as 32 raw bytes.
Result<SecretKey> parse_secret(std::string_view text);
Result<PublicKey> load_public(const std::string& path);
Result<SecretKey> load_secret(const std::string& path);
Status write_key_pair(const std::string& base, const SecretKey& key);
// True when the file text is an X25519 key file (public or secret).
bool is_x25519_key(std::string_view text);

// Seals the content key to a recipient.
Result<manifest::Recipient> seal(const ContentKey& key, const PublicKey& to);
// Opens the content key with this device's key: kDecryptionKey when the key
// is not a recipient, or its sealed key does not open.
Result<ContentKey> open(const manifest::Encryption& e, const SecretKey& key);

// Encrypts one payload as it is written: plaintext in, ciphertext out to
// `next`; finish() seals the last block and gives the plaintext's size and
// hash.
class EncryptingWriter final : public Writer {
 public:
  EncryptingWriter(Writer& next, const ContentKey& key, std::uint64_t payload_index, std::uint32_t block_size);
  Status write(ByteSpan data) override;
  std::uint64_t position() const override { return plain_; }
  Status finish(std::uint64_t& plain_size, Digest& plain_hash);

 private:
  Status seal_block(bool last);
  Writer& next_;
  const ContentKey& key_;
  std::uint64_t payload_, block_ = 0, plain_ = 0;
  std::uint32_t block_size_;
  Bytes buf_, out_;
  Hasher hash_;
};

// Plaintext over a verified, encrypted bundle (see the contract above). The
// manifest is the verified one; `inner` is positioned before its first payload.
std::unique_ptr<bundle::BundleReader> decrypting(std::unique_ptr<bundle::BundleReader> inner,
                                                 const manifest::Manifest& m, ContentKey key);

// Reads every payload of a verified, encrypted bundle whole through the
// decrypting reader: each block's ciphertext checked against the signed
// chunk hashes, its tag, and each payload's signed plain hash. Returns the
// plaintext bytes read. For `ota verify --decryption-key`.
Result<std::uint64_t> check_plaintext(std::unique_ptr<bundle::BundleReader> verified, const manifest::Manifest& m,
                                      const SecretKey& key,
                                      const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

}  // namespace ota::encryption
