// The bundle: one file holding a signed manifest, its signatures and the
// payloads, streamable front to back.
//
// Container: a POSIX tar (pax where a member reaches 8 GiB) that `tar tvf`
// lists, with members in this order and nothing else:
//   manifest.json    the exact signed manifest bytes
//   signatures.json  the signature block (signatures and optional root updates)
//   payloads/NAME    one member per payload, in manifest order
// followed by the two zero blocks that end a tar, and then end of file.
// Every tar header is the canonical one libarchive writes for that member
// (name, size, mode 0644, owner 0:0, mtime = manifest creation time), and all
// padding is zero, so the whole container is a function of the manifest and
// the signature block: the reader compares every header byte to the expected
// one and rejects any other byte, trailing or padding bytes included.
//
// Reading order on a device: manifest and signature block (bounded), verify
// signatures against the trust store, only then parse the manifest; then each
// payload arrives in chunks, each checked against its signed hash before a
// byte of it is handed to the caller.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/delta.hpp"
#include "ota/release/chunks.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"

namespace ota::bundle {

inline constexpr std::size_t kMaxSignatureBlockBytes = 1u << 20;

// signatures.json: the part of the bundle no signature covers.
struct SignatureBlock {
  std::vector<trust::SignatureEntry> signatures;
  std::vector<trust::Envelope> roots;  // root updates a device may walk
};
Bytes encode_signature_block(const SignatureBlock& block);
Result<SignatureBlock> parse_signature_block(ByteSpan bytes);

// Where each member lives in the file (for inspect, tests and HTTP Range).
struct MemberLayout {
  std::string path;
  std::uint64_t header_offset = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t size = 0;
};
struct Layout {
  std::vector<MemberLayout> members;  // manifest, signatures, payloads
  std::uint64_t end_offset = 0;       // start of the two zero blocks
  std::uint64_t total_size = 0;
};
Layout layout(std::uint64_t manifest_size, std::uint64_t signature_block_size,
              const manifest::Manifest& m);

// The canonical tar header(s) of one member (512 bytes, or 1536 with a pax
// extended header for sizes of 8 GiB and more). Rendered by libarchive.
Result<Bytes> member_header(const std::string& path, std::uint64_t size, trust::Time mtime);

// Writes a bundle: manifest bytes, the signature block, then each payload
// from its Reader (which must produce exactly the manifest's stored size).
Status write_bundle(Writer& out, ByteSpan manifest_bytes, const SignatureBlock& block,
                    const manifest::Manifest& m, const std::vector<ota::Reader*>& payloads,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

// What a bundle must satisfy beyond its signatures.
struct VerifyOptions {
  manifest::Policy policy;
  bool check_expiry = true;
};

// The checks of a bundle, in the order they are made and reported
// (ota/release/verify.hpp builds a report of all of them).
enum class Check {
  kContainer,   // the tar layout of manifest.json and signatures.json, the signature block
  kTrustRoot,   // the trust root: loaded, root updates walked, not expired
  kSignatures,  // a threshold of trusted keys signed the manifest bytes
  kManifest,    // the manifest parses; the tar header times match its creation time
  kExpiry,      // the manifest has not expired (unless check_expiry is false)
  kHardware,    // the manifest lists policy.hardware (when given)
  kVersion,     // security version at least the floor, version newer than the installed one (when given)
  kPayloads,    // every payload chunk matches its signed hash; the archive ends where it must
};
inline constexpr std::size_t kCheckCount = 8;
// "container", "trust_root", "signatures", "manifest", "expiry", "hardware",
// "version", "payloads" (the names `ota verify --json` prints).
std::string_view check_name(Check c);

// A streaming reader over an untrusted bundle.
class BundleReader {
 public:
  // Reads the manifest and signature block members (bounded); parses nothing
  // else. kMalformed on any structural problem.
  static Result<std::unique_ptr<BundleReader>> open(ota::Reader& in);
  virtual ~BundleReader() = default;

  virtual ByteSpan manifest_bytes() const = 0;
  virtual const SignatureBlock& signature_block() const = 0;

  // Walks the block's root updates into trust, checks the threshold over the
  // manifest bytes, then parses the manifest, checks the first two headers
  // and applies opts.policy. Must succeed before payloads are read.
  // On failure, *failed (when given) names the check that failed: kTrustRoot
  // (kExpired), kSignatures (kBadSignature, kTooFewSignatures, kUnknownKey,
  // kKeyRevoked), kManifest (kMalformed), kExpiry, kHardware or kVersion.
  virtual Result<manifest::Manifest> verify(trust::TrustStore& trust, const VerifyOptions& opts,
                                            trust::ThresholdReport* report = nullptr, Check* failed = nullptr) = 0;
  // For tools, never for a device: parses the manifest without checking any
  // signature (`ota inspect` shows it as unverified; `ota sign` checks the
  // payloads against it before vouching for it). Payloads may then be read,
  // each chunk checked against this unverified manifest.
  virtual Result<manifest::Manifest> parse_unverified() = 0;

  // Moves to the next payload (checking its header); nullopt after the last
  // one, once the end of the archive and end of file are checked.
  virtual Result<std::optional<std::size_t>> next_payload() = 0;
  // Reads verified bytes of the current payload; 0 at its end. A chunk is
  // released only after its hash matched (kPayloadMismatch otherwise).
  virtual Result<std::size_t> read(MutableByteSpan out) = 0;
  // The same without a copy: the next verified bytes of the current payload
  // (at most the rest of the current chunk), valid until the next call on
  // the reader; empty at the payload's end.
  virtual Result<ByteSpan> read_view() = 0;
  // Moves forward in the current payload so that the next read() returns its
  // byte `at`. Whole chunks before at's chunk are skipped in the stream (a
  // file seeks, HTTP starts a Range request), never checked nor handed out;
  // at's chunk is read and checked as usual. next_payload() skips the rest
  // of a payload the same way.
  virtual Status skip_to(std::uint64_t at) = 0;
  // Ranged reading, for a chunks payload whose index names finer hashes than
  // the transport chunks: moves forward to payload offset `at` (jumping over
  // the bytes before it like skip_to), reads out.size() bytes, and hands them
  // out only when their BLAKE2b-256 equals `expect`, a hash the caller took
  // from signed data (kPayloadMismatch otherwise, and out is zeroed).
  // `upcoming` (>= out.size()) is how many bytes from `at` the caller will
  // read in a row: over HTTP one Range request covers them. Once a payload
  // is read by ranges, read(), read_view() and skip_to() refuse it (kUsage);
  // next_payload() still moves on.
  virtual Status read_checked(std::uint64_t at, MutableByteSpan out, const Digest& expect,
                              std::uint64_t upcoming = 0) = 0;
  // The payload offset of the next byte read() returns.
  virtual std::uint64_t payload_position() const = 0;
  // Bytes of the bundle consumed so far.
  virtual std::uint64_t offset() const = 0;
};

// Verifies a whole bundle from a file: signatures, policy, and (unless
// metadata_only) every payload chunk and the end of the archive. The first
// failure is the error (verify_bundle() in ota/release/verify.hpp reports
// every check).
struct FileVerifyResult {
  manifest::Manifest manifest;
  trust::ThresholdReport signatures;
  std::uint64_t bytes_checked = 0;
};
Result<FileVerifyResult> verify_file(const std::string& path, trust::TrustStore& trust,
                                     const VerifyOptions& opts, bool metadata_only,
                                     const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

// Building: payloads are produced first (to temporary files that vanish on
// close), so the manifest with every size and chunk hash exists before the
// first byte of the bundle is written.
struct BuildOptions {
  std::string image_path;
  std::vector<std::string> base_paths;  // one delta per base image
  std::string name;
  std::string version;
  std::uint64_t security_version = 0;
  std::vector<std::string> hardware;
  trust::Time created = 0;  // SOURCE_DATE_EPOCH or now, chosen by the caller
  std::optional<trust::Time> expires;
  bool include_full = true; // false: deltas only (devices on another base cannot install it)
  bool compress = true;     // zstd for the full image (else stored)
  int level = 2;            // zstd level of the full image (see docs/design.md, Decisions)
  int window_log = 21;      // zstd window of the full image (device RAM)
  std::uint8_t full_frame_log = 24;  // image bytes per zstd frame of the full image: 2^N (a device's resume step)
  unsigned threads = 0;     // 0: all cores; never changes the output
  int delta_level = 19;     // zstd level inside delta patches
  std::uint8_t delta_frame_log = 24;  // NEW bytes per delta frame: 2^N (a device's resume step)
  // kInterleaved: deltas in format version 1/2, for devices whose patcher predates version 3.
  delta::RecordLayout delta_layout = delta::RecordLayout::kBlocks;
  delta::Compression delta_compression = delta::Compression::kLzma;  // or kZstd (format version 3)
  bool delta_elf_tables = true;  // false: LZMA2 deltas stay format version 4 (DiffOptions::elf_tables)
  bool delta_recompress = true;  // false: no format version 6 (DiffOptions::recompress)
  std::uint32_t chunk_size = 0;  // 0: manifest::default_chunk_size(image size)
  // A `chunks` payload (the image in content-defined chunks behind a signed
  // index), so a device on no delta's base fetches only what it lacks.
  bool reuse = false;
  chunks::Params reuse_params;  // how the image is cut
  int reuse_level = 19;         // zstd level of each chunk
  // An SBOM (CycloneDX or SPDX JSON, checked by sbom::check_sbom) carried as
  // the last payload, `sbom.cdx.json` or `sbom.spdx.json`. Empty: none.
  std::string sbom_path;
  // Set: the release is a security update (advisory text and ids).
  std::optional<manifest::Security> security;
  // Non-empty: every payload encrypted (ota/release/encryption.hpp) under a
  // random content key sealed to each of these X25519 public keys.
  std::vector<std::array<std::uint8_t, 32>> recipients;
  std::uint32_t encryption_block = 64u << 10;  // plaintext bytes per encrypted block
  std::string temp_dir;     // where payloads of images over 256 MiB are staged (default: /tmp)
  std::function<void(const std::string& stage, std::uint64_t done, std::uint64_t total)> progress;
};

class Staged {
 public:
  virtual ~Staged() = default;
  virtual const manifest::Manifest& manifest() const = 0;
  // The canonical manifest bytes, the exact bytes that get signed.
  virtual const Bytes& manifest_bytes() const = 0;
  // Writes the bundle with this signature block.
  virtual Status write(Writer& out, const SignatureBlock& block,
                       const std::function<void(std::uint64_t, std::uint64_t)>& progress = {}) = 0;
};
Result<std::unique_ptr<Staged>> stage(const BuildOptions& opts);

}  // namespace ota::bundle
