// ota's binary delta: generator (host side) and streaming patcher (device side).
//
// The byte layout is specified in docs/formats.md ("Delta patch"). In short: a
// header with the sizes and BLAKE2b-256 hashes of OLD and NEW, the compression, the decoder
// window and the frame size; then independent frames, each producing at most
// 2^frame_log bytes of NEW from COPY / ADD / INSERT / SEEK records: since
// format version 3 in blocks of at most kMaxBlockSize bytes that keep the
// record tags, the ADD bytes and the INSERT bytes apart (versions 1 and 2:
// one interleaved stream). Frames restart the OLD cursor at 0 and the compressor, so a
// device can checkpoint at a frame boundary and resume, and the generator
// can build frames in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/sink.hpp"

namespace ota::delta {

// Versions 1 and 2 store each frame's records interleaved; version 3 stores
// them in blocks of separate streams (RecordLayout::kBlocks), with any
// predictor. Among the interleaved versions, the version byte is the lowest
// that has every feature the patch uses (format_version_for), so a patcher of
// version 1 still applies every such patch that needs nothing newer.
inline constexpr std::uint8_t kFormatVersion = 1;     // interleaved, no arm64 predictor
inline constexpr std::uint8_t kMaxFormatVersion = 6;  // 2: arm64 (3); 3: blocks; 4: LZMA2; 5: ELF tables; 6: xz

inline constexpr std::uint8_t kBlocksFormatVersion = 3;
inline constexpr std::uint8_t kLzmaFormatVersion = 4;  // version 3 with LZMA2 frames
// Version 4 whose x86 or arm64 predictor also re-points the references in
// OLD's ELF tables (.eh_frame_hdr, .eh_frame, pointers in data sections).
inline constexpr std::uint8_t kElfTablesFormatVersion = 5;
// Compression-aware: a patch of version 3, 4 or 5 between the images with
// their xz streams expanded, wrapped with the real images' sizes and hashes
// and the stream tables; the patcher re-encodes NEW's streams bit-exactly
// (docs/formats.md, "Version 6: xz streams").
inline constexpr std::uint8_t kRecompressFormatVersion = 6;
// Version 6: an xz stream expands to at most this many bytes (squashfs'
// largest block); the patcher holds at most two of OLD's and one of NEW's.
inline constexpr std::uint64_t kMaxXzSegment = std::uint64_t{1} << 20;
// Version 3: the three streams of one block hold at most this many bytes in
// all (the patcher's block buffer).
inline constexpr std::size_t kMaxBlockSize = std::size_t{1} << 16;
inline constexpr std::size_t kMagicSize = 4;        // "OTD" + version byte
inline constexpr std::size_t kMaxInnerHeaderSize = 4 + 3 + 10 + 10 + 32 + 32;
inline constexpr std::size_t kMaxHeaderSize = 4 + 10 + 10 + 32 + 32 + kMaxInnerHeaderSize;
inline constexpr std::uint8_t kMinFrameLog = 12;    // 4 KiB
inline constexpr std::uint8_t kMaxFrameLog = 30;    // 1 GiB
inline constexpr std::uint8_t kDefaultFrameLog = 24;  // 16 MiB of NEW per frame
inline constexpr std::uint8_t kDefaultWindowLog = 17;  // 128 KiB decoder window
inline constexpr std::uint8_t kMaxWindowLog = 27;

// kZstdOld: zstd frames that may also match into OLD, loaded as a prefix
// dictionary (the decoder holds OLD in memory; the window covers it). For
// images small enough that this is cheap (firmware), it finds moved code that
// the cover search leaves to INSERT. kLzma / kLzmaOld (format version 4): the
// same with raw LZMA2 frames (liblzma), whose dictionary of 2^window_log
// bytes is all the decoder keeps: smaller patches and a smaller decoder than
// zstd's, decoded more slowly (only the records are compressed, so the
// difference is small next to reading OLD and hashing NEW).
enum class Compression : std::uint8_t { kNone = 0, kZstd = 1, kZstdOld = 2, kLzma = 3, kLzmaOld = 4 };

constexpr bool is_lzma(Compression c) { return c == Compression::kLzma || c == Compression::kLzmaOld; }
constexpr bool has_old_dictionary(Compression c) { return c == Compression::kZstdOld || c == Compression::kLzmaOld; }

// Reference prediction for executables (docs/formats.md, "Predictor"): COPY and
// ADD work against OLD with its relative references (x86 rel32, Thumb-2 BL and
// B.W, AArch64 BL and ADRP pairs) re-pointed through an address map.
enum class Predictor : std::uint8_t { kNone = 0, kX86 = 1, kThumb = 2, kArm64 = 3 };

// How a frame stores its records (docs/formats.md, "Records" and "Blocks").
enum class RecordLayout : std::uint8_t {
  kBlocks,       // version 3: blocks of tags, ADD bytes and INSERT bytes (default)
  kInterleaved,  // versions 1 and 2: tags with their payload bytes, for older patchers
};

// The format version of a patch: 5 when its predictor re-points ELF tables
// (LZMA2 frames only), 4 with LZMA2 frames (always in the version 3 frame
// layout), 3 with blocks; interleaved, 2 for kArm64, else 1.
constexpr std::uint8_t format_version_for(Predictor p, RecordLayout layout = RecordLayout::kBlocks,
                                          Compression c = Compression::kZstd, bool elf_tables = false) {
  if (is_lzma(c)) return elf_tables ? kElfTablesFormatVersion : kLzmaFormatVersion;
  if (layout == RecordLayout::kBlocks) return kBlocksFormatVersion;
  return p == Predictor::kArm64 ? std::uint8_t{2} : kFormatVersion;
}

// "none", "zstd", "zstd-old", "lzma", "lzma-old": the JSON names of Compression.
const char* compression_name(Compression c);
// "none", "x86", "thumb", "arm64": the JSON names of Predictor.
const char* predictor_name(Predictor p);

// The record layout of a format version (1..kMaxFormatVersion).
constexpr RecordLayout layout_of_version(std::uint8_t version) {
  return version >= kBlocksFormatVersion ? RecordLayout::kBlocks : RecordLayout::kInterleaved;
}

struct PatchHeader {
  // Read by parse_header. encode_header writes format_version_for(predictor,
  // layout_of_version(version), compression): 4 with LZMA2, 3, or the
  // interleaved version the predictor needs.
  std::uint8_t version = kBlocksFormatVersion;
  Compression compression = Compression::kZstd;
  Predictor predictor = Predictor::kNone;
  // Version 5: the predictor (x86 or arm64) also re-points OLD's ELF tables.
  bool elf_tables = false;
  std::uint8_t window_log = kDefaultWindowLog;  // decoder window needed: 2^window_log bytes
  std::uint8_t frame_log = kDefaultFrameLog;    // each frame yields <= 2^frame_log NEW bytes
  std::uint64_t old_size = 0;
  std::uint64_t new_size = 0;
  Digest old_hash{};
  Digest new_hash{};
  // Version 6 (xz streams re-encoded): old_size .. new_hash above are the
  // real images'; version, sizes and hashes of the delta between the
  // expanded images (every other field above is that delta's).
  bool recompress = false;
  std::uint8_t inner_version = 0;
  std::uint64_t expanded_old_size = 0;
  std::uint64_t expanded_new_size = 0;
  Digest expanded_old_hash{};
  Digest expanded_new_hash{};

  // Frames of NEW (of the expanded NEW with version 6).
  std::uint64_t frame_count() const;
};

// Serializes a header (exactly as the generator writes it), with the version
// byte format_version_for(header.predictor, layout_of_version(header.version),
// header.compression).
Bytes encode_header(const PatchHeader& header);

// Parses a header from the front of data. Returns the header and its encoded
// length; kPatchTruncated when data is a valid but incomplete prefix,
// kPatchMalformed / kUnsupported for anything else.
Result<std::pair<PatchHeader, std::size_t>> parse_header(ByteSpan data);

// Reads only the header of a patch file: what `ota inspect` and a device need
// to decide, before any work, whether they can apply it.
Result<PatchHeader> read_header(Reader& patch);

// ---- generator ----

enum class PredictorChoice : std::uint8_t { kAuto, kNone, kX86, kThumb, kArm64 };

struct DiffOptions {
  // kLzma (the default) or kZstd; either becomes its *Old form when OLD is at
  // most old_dictionary_max. kZstd writes format version 3 (or 1/2 with
  // kInterleaved), for patchers that predate version 4.
  Compression compression = Compression::kLzma;
  // kAuto: the predictor of OLD's machine (x86 for an x86 ELF image, arm64 for
  // an AArch64 ELF image, Thumb otherwise), if the differing bytes of the
  // covers that it explains pay for its address map.
  PredictorChoice predictor = PredictorChoice::kAuto;
  // With LZMA2 and the x86 or arm64 predictor on an ELF64 OLD: also re-point
  // OLD's ELF tables (.eh_frame_hdr, .eh_frame, pointers in data sections),
  // format version 5. false: version 4, for patchers that predate version 5.
  bool elf_tables = true;
  // With kZstd / kLzma: use kZstdOld / kLzmaOld when OLD is at most this
  // large (0: never).
  std::uint64_t old_dictionary_max = std::uint64_t{8} << 20;
  // 1..22: the zstd level; with LZMA2 the preset level * 9 / 19 (at most 9),
  // extreme from 19 up.
  int level = 19;
  std::uint8_t window_log = kDefaultWindowLog;
  std::uint8_t frame_log = kDefaultFrameLog;
  unsigned threads = 0;                    // 0: one per core
  // kBlocks writes format version 3 (smaller); kInterleaved writes versions
  // 1/2 exactly as before, for devices whose patcher predates version 3.
  RecordLayout layout = RecordLayout::kBlocks;
  // Version 3: a frame whose records, interleaved as in versions 1 and 2,
  // compress smaller than in blocks keeps them (its mode byte says so; the
  // generator compresses each frame both ways). false: every frame in blocks.
  bool interleaved_frames = true;
  // Images holding xz streams (a squashfs with xz blocks, a kernel's .xz):
  // with true, when the streams of NEW that liblzma re-encodes bit-exactly
  // make up at least kRecompressMin bytes, the delta is made between the
  // images with their streams expanded (format version 6). false: never.
  bool recompress = true;
  // Called with the NEW bytes written so far (from any thread, never concurrently).
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

// DiffOptions::recompress: the least bytes of re-encodable xz streams in NEW.
inline constexpr std::uint64_t kRecompressMin = std::uint64_t{16} << 10;

struct DiffStats {
  std::uint64_t patch_size = 0;
  std::uint64_t frames = 0;
  std::uint64_t records = 0;
  std::uint64_t blocks = 0;        // version 3: blocks of records
  std::uint64_t copy_bytes = 0;    // NEW bytes copied verbatim from OLD
  std::uint64_t add_bytes = 0;     // NEW bytes made as OLD + difference
  std::uint64_t insert_bytes = 0;  // NEW bytes carried literally
  Predictor predictor = Predictor::kNone;
  Compression compression = Compression::kNone;  // as in the header (kZstd may have become kZstdOld)
  std::uint8_t version = 0;        // the header's format version
  std::uint64_t map_entries = 0;   // address map entries (with a predictor)
  std::uint64_t map_bytes = 0;     // stored size of the address map section
  // Version 6: xz streams expanded in OLD and re-encoded in NEW, and the
  // expanded images' sizes (the other counts above are the inner delta's).
  std::uint64_t old_streams = 0;
  std::uint64_t new_streams = 0;
  std::uint64_t expanded_old_size = 0;
  std::uint64_t expanded_new_size = 0;
  Digest old_hash{};
  Digest new_hash{};
};

// Writes a patch that turns old_image into new_image. Deterministic: the same
// inputs and options give the same bytes, whatever the thread count.
Result<DiffStats> diff(ByteSpan old_image, ByteSpan new_image, Writer& patch,
                       const DiffOptions& options = {});

// ---- patcher ----

// How the patcher makes sure OLD is the base the patch was made from.
enum class BaseCheck : std::uint8_t {
  // Hash OLD before writing anything, so a wrong OLD fails fast with
  // kOldMismatch.
  kHashFirst,
  // Hash OLD on a second thread while patching. finish() still fails with
  // kOldMismatch on a wrong OLD, but the Writer may already have received
  // bytes (fine for a bank that is not bootable yet: the agent, when no hash
  // of the active bank is cached).
  kHashWhilePatching,
  // Hash OLD only if the patch fails (NEW's hash differs or a record is
  // refused), to name a wrong OLD as the cause (kOldMismatch). A successful
  // patch reads only the parts of OLD it uses; correctness rests on NEW's
  // hash, which is always checked (ota patch, writing a temporary file).
  kHashOnFailure,
  // The caller knows OLD's hash (known_old_hash; cached by the agent):
  // compared with the header, OLD is not read for it.
  kKnownHash,
  // No check of OLD at all; NEW's hash is still checked.
  kNone,
};

struct PatchOptions : SinkOptions {
  std::uint8_t max_window_log = kMaxWindowLog;  // refuse patches needing a larger window
  std::uint64_t max_map_entries = std::uint64_t{1} << 20;  // address map limit (24 bytes each in memory)
  // Version 6: refuse patches whose xz re-encoding needs more memory than
  // this (liblzma's encoder for the largest dictionary in NEW's table).
  std::uint64_t max_xz_encoder_memory = std::uint64_t{64} << 20;
  // The one choice of how OLD is checked (see BaseCheck).
  BaseCheck base_check = BaseCheck::kHashFirst;
  Digest known_old_hash{};  // with kKnownHash
  // Hash NEW on a second thread, over a ring of four 32 KiB output buffers,
  // so that hashing overlaps decoding (ota patch on a multi-core host). The
  // Writer is then called from either thread, in order, never two calls at
  // once. The caller may use the Writer itself only inside on_frame, after a
  // call failed, or after finish() returned: at those points nothing else
  // touches it.
  bool hash_in_background = false;
  // Called with NEW bytes written so far (each MiB and at the end): the
  // progress of `ota patch`, which feeds the patch through apply().
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
  // Resuming (SinkOptions::resume): the header and address map are parsed
  // as usual, then the bytes up to resume->patch_offset are skipped.
};

// Push-model patcher, a PayloadSink (ota/delta/sink.hpp): feed() the patch in
// chunks of any size as they arrive, then finish(). Reads OLD by random access, writes NEW strictly sequentially
// through the Writer, hashes NEW on the fly. Memory is bounded by the decoder
// window and a few fixed buffers, independent of the image sizes. Success is
// reported only when NEW is complete and its BLAKE2b-256 matches the header.
// new_written() counts what the Writer accepted: the patcher buffers up to
// 32 KiB and hands a frame's last bytes over at the frame's end.
class Patcher : public PayloadSink {
 public:
  static Result<std::unique_ptr<Patcher>> create(const Source& old_image, Writer& out,
                                                 PatchOptions options = {});
  // The header, once enough bytes were fed to parse it.
  virtual const PatchHeader* header() const = 0;
};

// Convenience: applies a whole patch from a Reader.
Status apply(const Source& old_image, Reader& patch, Writer& out, PatchOptions options = {});

}  // namespace ota::delta
