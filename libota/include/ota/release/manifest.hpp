// The release manifest: what a bundle contains and what a device may do with it.
//
// Contract:
// - encode_manifest() gives canonical bytes (fixed key order, no whitespace
//   variation); the same Manifest always encodes to the same bytes. Those
//   exact bytes are what gets signed; a verifier never re-serializes them.
// - parse_manifest() is strict: bounded size and depth, no duplicate keys,
//   no unknown fields, every hash 64 hex digits, every size within 2^63,
//   chunk lists that exactly cover each payload, payload names that are safe
//   file names. It is only called on bytes whose signatures verified (or by
//   `ota inspect`, which says so).
// - Versions follow SemVer 2.0.0; compare_versions() implements its
//   precedence rules (build metadata ignored).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/release/trust.hpp"

namespace ota::manifest {

inline constexpr std::string_view kFormat = "ota-manifest-v1";
inline constexpr std::size_t kMaxManifestBytes = 4u << 20;
inline constexpr std::size_t kMaxPayloads = 64;
inline constexpr std::size_t kMaxHardware = 64;
inline constexpr std::uint64_t kMaxChunksPerPayload = 1u << 16;

// kChunks (docs/formats.md, "Chunks payload"): the chunk index, then the
// image's content-defined chunks, each stored raw or as one zstd frame; a
// device copies the chunks it holds and fetches only the others.
// kSbom: the release's software bill of materials (CycloneDX or SPDX JSON,
// stored, never installed), signed like every payload.
enum class PayloadKind { kFull, kDelta, kChunks, kSbom };
enum class SbomFormat { kNone, kCycloneDx, kSpdx };
std::string_view sbom_format_name(SbomFormat f);  // "cyclonedx", "spdx"
inline constexpr std::uint64_t kMaxSbomBytes = 16u << 20;
enum class Compression { kNone, kZstd, kOtaDelta, kOtaChunks };
std::string_view kind_name(PayloadKind k);
std::string_view compression_name(Compression c);

struct Payload {
  std::string name;  // file name inside the bundle: [A-Za-z0-9._-]{1,64}
  PayloadKind kind = PayloadKind::kFull;
  Compression compression = Compression::kZstd;
  std::uint8_t window_log = 0;  // decoder window the device needs (0 for none)
  // Stored bytes (what the bundle holds, what is fetched).
  std::uint64_t size = 0;
  Digest hash{};                 // chunk_tree_hash(chunks): names the stored bytes
  std::uint32_t chunk_size = 0;  // power of two, >= 4 KiB
  std::vector<Digest> chunks;    // BLAKE2b-256 of each chunk of the stored bytes
  // For a delta: the image it applies to.
  std::uint64_t base_size = 0;
  Digest base_hash{};
  // For chunks: the chunk index is the payload's first index_size bytes, and
  // hashes (BLAKE2b-256) to index_hash, so it is checked before it is parsed.
  std::uint64_t index_size = 0;
  Digest index_hash{};
  // For an SBOM: its format.
  SbomFormat sbom_format = SbomFormat::kNone;
  // In an encrypted bundle (Manifest::encryption): the payload's bytes before
  // encryption (what the decompressor, patcher or reuse reads; index_size and
  // every payload offset a device uses count these), and their BLAKE2b-256.
  // size, hash and chunks above name the ciphertext, checked before a byte
  // of it is decrypted.
  std::uint64_t plain_size = 0;
  Digest plain_hash{};
};

// Encrypted payloads (docs/formats.md, "Encrypted payloads"): each payload is
// cut into blocks of block_size plaintext bytes, each sealed with
// XChaCha20-Poly1305 (IETF) under one random content key, the nonce and the
// associated data naming the payload, the block and whether it is the last.
// The content key is sealed (crypto_box_seal, X25519) to each recipient.
inline constexpr std::uint32_t kMinEncryptionBlock = 4096;
inline constexpr std::uint32_t kMaxEncryptionBlock = 1u << 20;
inline constexpr std::size_t kMaxRecipients = 256;
inline constexpr std::size_t kSealedKeyBytes = 80;  // crypto_box_SEALBYTES + 32
inline constexpr std::size_t kBlockTagBytes = 16;

struct Recipient {
  Digest key_id{};  // BLAKE2b-256 of the recipient's X25519 public key
  std::array<std::uint8_t, kSealedKeyBytes> sealed_key{};
};
struct Encryption {
  std::uint32_t block_size = 64u << 10;  // power of two, 4 KiB to 1 MiB
  std::vector<Recipient> recipients;     // 1 to kMaxRecipients, distinct key ids
};
// The stored size of `plain` bytes encrypted in blocks of `block` bytes (an
// empty payload is one block holding only its tag), and back (nullopt when
// `cipher` is no such size).
std::uint64_t encrypted_size(std::uint64_t plain, std::uint32_t block);
std::optional<std::uint64_t> decrypted_size(std::uint64_t cipher, std::uint32_t block);

// A security update: why it matters, and the advisories' identifiers.
inline constexpr std::size_t kMaxAdvisoryBytes = 4096;
inline constexpr std::size_t kMaxAdvisoryIds = 64;
struct Security {
  std::string advisory;          // 1 to 4096 bytes of UTF-8 text, no control characters but newline and tab
  std::vector<std::string> ids;  // 1 to 64 distinct ids ("CVE-2026-12345", "GHSA-xxxx-xxxx-xxxx", "DSA-5555-1")
};
// A well-formed advisory id: 3 to 64 characters of [A-Za-z0-9._:-] starting
// with a letter; one that starts with "CVE-" must be CVE-YYYY-NNNN[N...].
bool is_valid_advisory_id(std::string_view id);
// The checks validate() applies to a manifest's security field (kMalformed).
Status validate_security(const Security& s);

struct Manifest {
  std::string name;
  std::string version;              // SemVer 2.0.0
  std::uint64_t security_version = 0;
  std::vector<std::string> hardware;  // compatible hardware ids
  trust::Time created = 0;
  std::optional<trust::Time> expires;
  std::uint64_t target_size = 0;    // the image every payload produces
  Digest target_hash{};
  std::vector<Payload> payloads;    // in bundle order
  std::optional<Security> security;      // set: a security update
  std::optional<Encryption> encryption;  // set: every payload is encrypted
};

// The bytes of a payload a device reads (plain_size when encrypted, else size).
inline std::uint64_t readable_size(const Manifest& m, const Payload& p) {
  return m.encryption ? p.plain_size : p.size;
}

Bytes encode_manifest(const Manifest& m);
Result<Manifest> parse_manifest(ByteSpan bytes);
// The checks parse_manifest applies, for a Manifest built in memory.
Status validate(const Manifest& m);

// A payload's hash: BLAKE2b-256 of its chunk hashes, concatenated (a two-level
// hash tree over the stored bytes). validate() requires it; it costs nothing
// to check and binds the whole payload without a second pass over its bytes.
Digest chunk_tree_hash(const std::vector<Digest>& chunks);

// SemVer 2.0.0.
bool is_valid_version(std::string_view v);
// <0, 0, >0 like strcmp; both must be valid.
int compare_versions(std::string_view a, std::string_view b);

// Chunk size for payloads of an image of this many bytes: 256 KiB, doubled
// until that many bytes make at most 4096 chunks (bounds manifest size and
// device RAM). `ota build` uses the image size, known before any payload is
// produced, so chunks are hashed while payloads are written.
std::uint32_t default_chunk_size(std::uint64_t size);

// Device-side policy checks, applied after signature verification.
struct Policy {
  trust::Time now = 0;
  std::optional<std::string> hardware;          // this device's hardware id
  std::optional<std::string> installed_version; // reject versions not newer
  std::optional<std::uint64_t> security_floor;  // reject security_version below
};
// kExpired, kIncompatibleHardware or kDowngrade.
Status check_policy(const Manifest& m, const Policy& p);

}  // namespace ota::manifest
