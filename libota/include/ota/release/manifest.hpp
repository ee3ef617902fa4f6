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
enum class PayloadKind { kFull, kDelta, kChunks };
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
};

struct Manifest {
  std::string name;
  std::string version;              // SemVer 2.0.0
  std::uint64_t security_version = 0;
  std::vector<std::string> hardware;  // compatible hardware ids
  trust::Time created = 0;
  std::optional<trust::Time> expires;
  std::uint64_t target_size = 0;    // the image every payload produces
  Digest target_hash{};
  std::vector<Payload> payloads;    // in bundle order; the first is the full image
};

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
