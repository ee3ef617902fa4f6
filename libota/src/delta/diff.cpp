#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "delta/codec/lzma.hpp"
#include "delta/codec/zstd.hpp"
#include "core/varint.hpp"
#include "delta/format.hpp"
#include "delta/matcher.hpp"
#include "delta/elf_tables.hpp"
#include "delta/predict.hpp"
#include "delta/recompress.hpp"
#include "delta/xz_tables.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta {

namespace {

using detail::Block;
using detail::put_varint;

// Zero-difference runs of at least this many bytes inside an approximate match
// become COPY records (measured on the esbuild pair: 3 gives the smallest patches).
constexpr std::uint64_t kMinCopyRun = 3;

struct FrameOut {
  Bytes bytes;  // mode byte + payload
  DiffStats stats;
};

// Turns the blocks of one frame into its records: one interleaved stream
// (versions 1 and 2), or record blocks of three streams (version 3).
class RecordEncoder {
 public:
  RecordEncoder(ByteSpan old_image, ByteSpan new_image, std::uint64_t frame_end, Predictor predictor,
                const detail::AddressMap* map, const detail::ElfTables* elf, RecordLayout layout, DiffStats& stats)
      : old_(old_image),
        new_(new_image),
        frame_end_(frame_end),
        predictor_(predictor),
        map_(map),
        elf_(elf),
        blocks_(layout == RecordLayout::kBlocks),
        stats_(stats) {}

  void block(const Block& b) {
    if (b.add_len) {
      if (b.old_pos != cursor_) {
        flush();
        tag(detail::kOpSeek,
            detail::zigzag(static_cast<std::int64_t>(b.old_pos) - static_cast<std::int64_t>(cursor_)));
        cursor_ = b.old_pos;
      }
      add_stretch(b.new_pos, b.add_len);
    }
    if (b.insert_len) extend(detail::kOpInsert, b.new_pos + b.add_len, b.insert_len);
  }

  // Version 3, after finish(): the offsets in its result where a stream of a block ends.
  const std::vector<std::size_t>& stream_ends() const { return stream_ends_; }

  Bytes finish() {
    if (pending_len_ && pending_op_ == detail::kOpCopy && pending_new_ + pending_len_ == frame_end_) {
      tag(detail::kOpCopy, 0);  // "to the end of the frame"
      stats_.copy_bytes += pending_len_;
      pending_len_ = 0;
    }
    flush();
    close_block();
    return std::move(out_);
  }

 private:
  // NEW[new_pos, +len) against OLD at the cursor: zero-difference runs long enough
  // to pay for a record become COPY, the rest ADD.
  // The bytes COPY and ADD work against: OLD, or OLD with predicted references.
  const std::uint8_t* reference(std::uint64_t old_pos, std::uint64_t new_pos, std::uint64_t len, Bytes& buf) const {
    if (predictor_ == Predictor::kNone) return old_.data() + old_pos;
    buf.resize(static_cast<std::size_t>(len));
    detail::predict(predictor_, *map_, old_, 0, old_.size(), old_pos, static_cast<std::size_t>(len),
                    static_cast<std::int64_t>(new_pos) - static_cast<std::int64_t>(old_pos), buf.data(), elf_);
    return buf.data();
  }

  void add_stretch(std::uint64_t new_pos, std::uint64_t len) {
    const std::uint8_t* o = reference(cursor_, new_pos, len, stretch_ref_);
    const std::uint8_t* n = new_.data() + new_pos;
    std::uint64_t i = 0, add_start = 0;
    while (i < len) {
      if (o[i] != n[i]) {
        ++i;
        continue;
      }
      std::uint64_t z = i;
      while (z < len && o[z] == n[z]) ++z;
      if (z - i >= kMinCopyRun) {
        if (i > add_start) extend(detail::kOpAdd, new_pos + add_start, i - add_start);
        extend(detail::kOpCopy, new_pos + i, z - i);
        add_start = z;
      }
      i = z;
    }
    if (add_start < len) extend(detail::kOpAdd, new_pos + add_start, len - add_start);
  }

  // Appends to the pending record when it continues it, else starts a new one.
  void extend(detail::Op op, std::uint64_t new_pos, std::uint64_t len) {
    if (!(pending_len_ && pending_op_ == op && pending_new_ + pending_len_ == new_pos)) {
      flush();
      pending_op_ = op;
      pending_new_ = new_pos;
      pending_old_ = cursor_;
      pending_len_ = 0;
    }
    pending_len_ += len;
    if (op != detail::kOpInsert) cursor_ += len;
  }

  void flush() {
    if (!pending_len_) return;
    switch (pending_op_) {
      case detail::kOpCopy:
        put(detail::kOpCopy, pending_len_, nullptr);
        stats_.copy_bytes += pending_len_;
        break;
      case detail::kOpAdd: {
        const std::uint8_t* ref = reference(pending_old_, pending_new_, pending_len_, flush_ref_);
        payload_.resize(static_cast<std::size_t>(pending_len_));
        for (std::uint64_t i = 0; i < pending_len_; ++i)
          payload_[i] = static_cast<std::uint8_t>(new_[pending_new_ + i] - ref[i]);
        put(detail::kOpAdd, pending_len_, payload_.data());
        stats_.add_bytes += pending_len_;
        break;
      }
      case detail::kOpInsert:
        put(detail::kOpInsert, pending_len_, new_.data() + pending_new_);
        stats_.insert_bytes += pending_len_;
        break;
      default: break;
    }
    pending_len_ = 0;
  }

  // COPY and SEEK (no payload).
  void tag(std::uint8_t op, std::uint64_t n) { put(op, n, nullptr); }

  // One record: its tag and, for ADD and INSERT, its n payload bytes. In
  // blocks, a record that does not fit the current block starts the next
  // one, and an ADD or INSERT that does not fit is split across blocks (the
  // same NEW bytes as one record).
  void put(std::uint8_t op, std::uint64_t n, const std::uint8_t* payload) {
    const bool has_payload = op == detail::kOpAdd || op == detail::kOpInsert;
    if (!blocks_) {
      put_varint(out_, n << 2 | op);
      ++stats_.records;
      if (has_payload) out_.insert(out_.end(), payload, payload + n);
      return;
    }
    if (!has_payload) {
      if (block_used() + varint_size(n << 2 | op) > kMaxBlockSize) close_block();
      put_varint(tags_, n << 2 | op);
      ++stats_.records;
      return;
    }
    Bytes& stream = op == detail::kOpAdd ? adds_ : inserts_;
    while (n) {
      const std::size_t room = kMaxBlockSize - block_used();
      if (room <= detail::kMaxVarintSize) {
        close_block();
        continue;
      }
      const std::uint64_t k = std::min<std::uint64_t>(n, room - detail::kMaxVarintSize);
      put_varint(tags_, k << 2 | op);
      ++stats_.records;
      stream.insert(stream.end(), payload, payload + k);
      payload += k;
      n -= k;
    }
  }

  std::size_t block_used() const { return tags_.size() + adds_.size() + inserts_.size(); }

  static std::size_t varint_size(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }

  // Version 3: ULEB128 tags_len, add_len, insert_len, then the three streams.
  void close_block() {
    if (!blocks_ || tags_.empty()) return;
    put_varint(out_, tags_.size());
    put_varint(out_, adds_.size());
    put_varint(out_, inserts_.size());
    for (Bytes* stream : {&tags_, &adds_, &inserts_}) {
      out_.insert(out_.end(), stream->begin(), stream->end());
      stream->clear();
      stream_ends_.push_back(out_.size());
    }
    ++stats_.blocks;
  }

  ByteSpan old_, new_;
  std::uint64_t frame_end_;
  Predictor predictor_;
  const detail::AddressMap* map_;
  const detail::ElfTables* elf_;
  bool blocks_;
  DiffStats& stats_;
  Bytes stretch_ref_, flush_ref_, payload_;
  Bytes out_;
  Bytes tags_, adds_, inserts_;  // the current block's streams (version 3)
  std::vector<std::size_t> stream_ends_;  // where each stream of each block ends in out_
  std::uint64_t cursor_ = 0;  // OLD cursor after the pending record
  detail::Op pending_op_ = detail::kOpCopy;
  std::uint64_t pending_new_ = 0, pending_old_ = 0, pending_len_ = 0;
};

// LZMA2's settings for a zstd-style level (DiffOptions::level).
codec::LzmaParams lzma_params(const DiffOptions& opt) {
  codec::LzmaParams p;
  p.preset = std::min(9, opt.level * 9 / 19);
  p.extreme = opt.level >= 19;
  p.dict_log = opt.window_log;
  return p;
}

// One frame in one record layout: its mode byte and bytes, raw or compressed,
// whichever is smaller.
Result<FrameOut> encode_frame_as(const std::vector<Block>& blocks, ByteSpan old_image, ByteSpan new_image,
                                 std::uint64_t end, Predictor predictor, const detail::AddressMap& map,
                                 const detail::ElfTables* elf, const DiffOptions& opt, RecordLayout layout,
                                 std::uint8_t mode_offset) {
  FrameOut f;
  RecordEncoder enc(old_image, new_image, end, predictor, &map, elf, layout, f.stats);
  for (const Block& b : blocks) enc.block(b);
  Bytes records = enc.finish();
  f.stats.frames = 1;
  if (opt.compression != Compression::kNone) {
    const ByteSpan dictionary = has_old_dictionary(opt.compression) ? old_image : ByteSpan{};
    // zstd, record blocks: each stream of each block ends a zstd block, so
    // that tags, ADD bytes and INSERT bytes get their own entropy tables (ext4
    // r2 -> r3: 2.9 % smaller than interleaved with it, 2.1 % without).
    // Interleaved records compress as versions 1 and 2 always did. LZMA2's
    // adaptive model needs no such help: one stream per frame.
    OTA_TRY_ASSIGN(auto z, is_lzma(opt.compression)
                               ? codec::lzma_compress(records, lzma_params(opt), dictionary)
                           : layout == RecordLayout::kBlocks
                               ? codec::zstd_compress_parts(records, enc.stream_ends(), {opt.level, opt.window_log},
                                                            dictionary)
                               : codec::zstd_compress(records, {opt.level, opt.window_log}, dictionary));
    if (z.size() < records.size()) {
      f.bytes.reserve(z.size() + 1);
      f.bytes.push_back(static_cast<std::uint8_t>(detail::kFrameZstd + mode_offset));
      f.bytes.insert(f.bytes.end(), z.begin(), z.end());
      return f;
    }
  }
  f.bytes.reserve(records.size() + 1);
  f.bytes.push_back(static_cast<std::uint8_t>(detail::kFrameRaw + mode_offset));
  f.bytes.insert(f.bytes.end(), records.begin(), records.end());
  return f;
}

// One frame. Versions 1 and 2: interleaved records. Version 3: record blocks,
// or interleaved records when they come out smaller (on node 26.8.1 -> 26.8.2,
// whose records repeat as whole groups of tags and ADD bytes, interleaved
// frames were 5 % smaller; on the ext4 images blocks are 3 % smaller); the
// frame's mode byte says which.
//
// With LZMA2, `longer` (when not empty) is the frame's other cover search, with
// kCoverThresholdLong: each of the two is tried in both layouts, the smallest
// is kept.
Result<FrameOut> encode_frame(const std::vector<Block>& blocks, const std::vector<Block>& longer, ByteSpan old_image,
                              ByteSpan new_image, std::uint64_t end, Predictor predictor,
                              const detail::AddressMap& map, const detail::ElfTables* elf, const DiffOptions& opt) {
  if (opt.layout == RecordLayout::kInterleaved)
    return encode_frame_as(blocks, old_image, new_image, end, predictor, map, elf, opt, RecordLayout::kInterleaved, 0);
  if (!opt.interleaved_frames)
    return encode_frame_as(blocks, old_image, new_image, end, predictor, map, elf, opt, RecordLayout::kBlocks, 0);
  if (is_lzma(opt.compression)) {
    // LZMA2 at preset 9e is slow (about 1 MB/s): the two layouts are judged
    // at preset 2, then only the better one is compressed properly. With
    // LZMA2 interleaving wins more often (node 26.8.1 -> 26.8.2: 6 % smaller
    // than blocks alone), as its repeated matches keep groups of records.
    DiffOptions trial = opt;
    trial.level = 5;  // preset 2, not extreme
    const std::vector<Block>* best_blocks = &blocks;
    RecordLayout best_layout = RecordLayout::kBlocks;
    std::size_t best = SIZE_MAX;
    for (const std::vector<Block>* b : {&blocks, &longer}) {
      if (b->empty() && b != &blocks) continue;
      for (RecordLayout layout : {RecordLayout::kBlocks, RecordLayout::kInterleaved}) {
        OTA_TRY_ASSIGN(auto t, encode_frame_as(*b, old_image, new_image, end, predictor, map, elf, trial, layout,
                                               layout == RecordLayout::kInterleaved ? detail::kFrameInterleaved : 0));
        if (t.bytes.size() < best) {
          best = t.bytes.size();
          best_blocks = b;
          best_layout = layout;
        }
      }
    }
    return encode_frame_as(*best_blocks, old_image, new_image, end, predictor, map, elf, opt, best_layout,
                           best_layout == RecordLayout::kInterleaved ? detail::kFrameInterleaved : 0);
  }
  OTA_TRY_ASSIGN(auto b, encode_frame_as(blocks, old_image, new_image, end, predictor, map, elf, opt,
                                         RecordLayout::kBlocks, 0));
  OTA_TRY_ASSIGN(auto i, encode_frame_as(blocks, old_image, new_image, end, predictor, map, elf, opt,
                                         RecordLayout::kInterleaved, detail::kFrameInterleaved));
  return i.bytes.size() < b.bytes.size() ? std::move(i) : std::move(b);
}

// Runs job(i) for i in [0, count) on up to `threads` threads; the first error wins.
template <typename Job>
Status parallel_for(std::uint64_t count, unsigned threads, Job job) {
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<Status> errors(std::max(1u, threads), ok());
  auto worker = [&](unsigned w) {
    for (;;) {
      const std::uint64_t i = next.fetch_add(1);
      if (i >= count || failed) return;
      Status st = ok();
      try {
        st = job(i);
      } catch (const std::bad_alloc&) {
        st = fail(ErrorCode::kOutOfMemory, "out of memory while making a patch");
      }
      if (!st) {
        errors[w] = std::move(st);
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  const unsigned n = static_cast<unsigned>(std::min<std::uint64_t>(threads, count));
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (!e) return e;
  return ok();
}

// Map entries farther apart than this are not merged even with equal shifts.
constexpr std::uint64_t kMapMergeGap = 4096;
// The predictor pays for its address map only when covers differ from OLD in
// enough bytes (moved references); a patch of a few changed bytes stays tiny.
constexpr std::uint64_t kPredictorMinMismatches = 1024;
// The second cover search (kCoverThresholdLong) costs as much CPU again as
// the first (node 26.8.1 -> 26.8.2: +7 s of 20). Every frame gets it when NEW
// is at most this large; in a larger image only a frame whose first search
// found at least one block per kLongerCoversDensity bytes, where much changed
// and a longer threshold pays most (docs/design.md).
constexpr std::uint64_t kLongerCoversAlways = std::uint64_t{64} << 20;
constexpr std::uint64_t kLongerCoversDensity = 1024;
// An image that is not an ELF file is diffed with an executable predictor when
// ELF images of one machine make up at least this much of it.
constexpr std::uint64_t kEmbeddedElfMinBytes = std::uint64_t{1} << 20;

// The delta between the images as they are (format versions 1 to 5).
// With old_xz (version 6): the pieces of the expanded OLD, whose streams the
// patcher decodes on demand; each frame's covers are kept within its cache.
Result<DiffStats> diff_plain(ByteSpan old_image, ByteSpan new_image, Writer& patch, const DiffOptions& opt,
                             const std::vector<detail::XzPiece>* old_xz = nullptr) {
  if (opt.frame_log < kMinFrameLog || opt.frame_log > kMaxFrameLog)
    return fail(ErrorCode::kUsage, "frame size must be between 2^" + std::to_string(kMinFrameLog) +
                                       " and 2^" + std::to_string(kMaxFrameLog) + " bytes");
  const bool lzma = is_lzma(opt.compression) && opt.layout == RecordLayout::kBlocks;
  if (opt.compression != Compression::kNone &&
      (opt.window_log < (lzma ? codec::kLzmaMinDictLog : 10) || opt.window_log > kMaxWindowLog))
    return fail(ErrorCode::kUsage, std::string("window must be between 2^") + (lzma ? "12" : "10") + " and 2^" +
                                       std::to_string(kMaxWindowLog));
  if (opt.level < 1 || opt.level > 22) return fail(ErrorCode::kUsage, "compression level must be 1..22");

  unsigned threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());

  // Hash both images while the suffix array is built.
  auto hashes = std::async(std::launch::async, [&] {
    return std::make_pair(content_hash(old_image), content_hash(new_image));
  });
  std::unique_ptr<detail::SuffixIndex> index;
  try {
    index = detail::build_suffix_index(old_image, threads);
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kOutOfMemory, "not enough memory for the suffix array of OLD");
  }
  auto [old_hash, new_hash] = hashes.get();

  // OLD as a dictionary: the window must reach from the end of the largest
  // frame's records (at most twice its NEW range) back to the start of OLD.
  // The interleaved layout is for patchers of versions 1 and 2: zstd.
  DiffOptions eff = opt;
  if (opt.layout == RecordLayout::kInterleaved && is_lzma(opt.compression))
    eff.compression = opt.compression == Compression::kLzma ? Compression::kZstd : Compression::kZstdOld;
  if (has_old_dictionary(eff.compression) ||
      ((eff.compression == Compression::kZstd || eff.compression == Compression::kLzma) && !old_image.empty() &&
       old_image.size() <= opt.old_dictionary_max)) {
    const std::uint64_t reach = old_image.size() + 2 * std::min<std::uint64_t>(new_image.size(), std::uint64_t{1} << opt.frame_log) + 1024;
    std::uint8_t wlog = 10;
    while ((std::uint64_t{1} << wlog) < reach && wlog < 31) ++wlog;
    eff.compression = is_lzma(eff.compression) ? Compression::kLzmaOld : Compression::kZstdOld;
    eff.window_log = std::max(opt.window_log, wlog);
  }

  PatchHeader h;
  h.version = format_version_for(Predictor::kNone, opt.layout);  // the predictor's version is set by encode_header
  h.compression = eff.compression;
  h.window_log = eff.compression == Compression::kNone ? 0 : eff.window_log;
  h.frame_log = opt.frame_log;
  h.old_size = old_image.size();
  h.new_size = new_image.size();
  h.old_hash = old_hash;
  h.new_hash = new_hash;
  const std::uint64_t frame_size = std::uint64_t{1} << opt.frame_log;
  const std::uint64_t frames = h.frame_count();

  // 1. Cover search, frame by frame in parallel (frames are independent). With
  // LZMA2 frames in blocks, where much of a frame changed, a second search
  // with the longer threshold, for encode_frame to choose from.
  std::vector<std::vector<Block>> blocks(frames), longer(frames);
  const bool longer_covers = is_lzma(eff.compression) && opt.layout == RecordLayout::kBlocks && opt.interleaved_frames;
  std::atomic<std::uint64_t> mismatches{0};  // bytes of covers that differ from OLD
  const std::size_t xz_slots = old_xz ? detail::xz_cache_slots(*old_xz) : 0;
  OTA_TRY(parallel_for(frames, threads, [&](std::uint64_t i) -> Status {
    const std::uint64_t b = i * frame_size, e = std::min<std::uint64_t>(new_image.size(), b + frame_size);
    detail::match_range(*index, old_image, new_image, b, e, blocks[i]);
    if (old_xz) detail::keep_covers_local(*old_xz, xz_slots, blocks[i]);
    std::uint64_t differ = 0;
    for (const Block& blk : blocks[i])
      for (std::uint64_t k = 0; k < blk.add_len; ++k)
        differ += old_image[blk.old_pos + k] != new_image[blk.new_pos + k];
    mismatches += differ;
    if (longer_covers &&
        (new_image.size() <= kLongerCoversAlways || blocks[i].size() * kLongerCoversDensity >= e - b))
      detail::match_range(*index, old_image, new_image, b, e, longer[i], detail::kCoverThresholdLong);
    if (old_xz && !longer[i].empty()) detail::keep_covers_local(*old_xz, xz_slots, longer[i]);
    return ok();
  }));
  index.reset();

  // 2. The predictor and its address map, from all covers.
  std::vector<detail::MapEntry> covers;
  for (const auto& fb : blocks)
    for (const Block& b : fb)
      if (b.add_len) {
        covers.push_back({b.old_pos, b.add_len,
                          static_cast<std::int64_t>(b.new_pos) - static_cast<std::int64_t>(b.old_pos)});
      }
  detail::AddressMap map;
  Bytes map_section;
  Predictor predictor = Predictor::kNone;
  // Format version 5 (LZMA2 only, so that --compression zstd keeps version 3):
  // the x86 and arm64 predictors also re-point OLD's ELF tables.
  std::optional<detail::ElfTables> tables;
  if (opt.predictor != PredictorChoice::kNone && (mismatches >= kPredictorMinMismatches ||
                                                  opt.predictor != PredictorChoice::kAuto)) {
    // The forced predictor, or in auto mode the one of OLD's machine. An OLD
    // that is not itself an ELF image but holds some (a root filesystem) gets
    // the predictor of the machine with the most ELF bytes, and a map of only
    // the covers inside them.
    const bool old_is_elf = detail::looks_like_x86(old_image) || detail::looks_like_arm64(old_image);
    std::vector<detail::EmbeddedElf> elves;
    Predictor embedded = Predictor::kNone;
    if (!old_is_elf) {
      elves = detail::find_embedded_elf(old_image);
      std::uint64_t x86_bytes = 0, arm64_bytes = 0;
      for (const auto& e : elves) (e.predictor == Predictor::kX86 ? x86_bytes : arm64_bytes) += e.size;
      if (std::max(x86_bytes, arm64_bytes) >= kEmbeddedElfMinBytes)
        embedded = x86_bytes >= arm64_bytes ? Predictor::kX86 : Predictor::kArm64;
    }
    const Predictor candidate = opt.predictor == PredictorChoice::kX86     ? Predictor::kX86
                                : opt.predictor == PredictorChoice::kThumb ? Predictor::kThumb
                                : opt.predictor == PredictorChoice::kArm64 ? Predictor::kArm64
                                : detail::looks_like_x86(old_image)        ? Predictor::kX86
                                : detail::looks_like_arm64(old_image)      ? Predictor::kArm64
                                : embedded != Predictor::kNone             ? embedded
                                                                           : Predictor::kThumb;
    if (!old_is_elf && candidate != Predictor::kThumb) {
      std::erase_if(elves, [&](const detail::EmbeddedElf& e) { return e.predictor != candidate; });
      if (!elves.empty()) detail::keep_covers_inside(elves, covers);
    }
    if (candidate == Predictor::kArm64) detail::map_zero_filled(old_image, new_image, covers);
    if (opt.elf_tables && old_is_elf && (candidate == Predictor::kX86 || candidate == Predictor::kArm64) &&
        is_lzma(opt.compression) && opt.layout == RecordLayout::kBlocks) {
      OTA_TRY_ASSIGN(auto t, detail::read_elf_tables(MemorySource(old_image)));
      if (!t.empty()) tables = std::move(t);
    }
    const detail::ElfTables* candidate_elf = tables ? &*tables : nullptr;
    map = detail::AddressMap::from_covers(std::move(covers), kMapMergeGap);
    Bytes encoded = map.encode();
    map_section.push_back(detail::kFrameRaw);
    Bytes stored = encoded;
    if (opt.compression != Compression::kNone) {
      OTA_TRY_ASSIGN(auto z, codec::zstd_compress(encoded, {opt.level, std::min<int>(opt.window_log, 24)}));
      if (z.size() < encoded.size()) {
        map_section[0] = detail::kFrameZstd;
        stored = std::move(z);
      }
    }
    detail::put_varint(map_section, stored.size());
    map_section.insert(map_section.end(), stored.begin(), stored.end());

    // Bytes of the covers that still differ from NEW with the candidate's
    // prediction, without and with the ELF tables: the tables are kept only
    // when they leave fewer (a PIE image's small integers, say, look like
    // addresses), and in auto mode the predictor only when the bytes it
    // explains outweigh its map.
    const bool judge_predictor = opt.predictor == PredictorChoice::kAuto;
    std::uint64_t remaining = mismatches;
    if (judge_predictor || candidate_elf) {
      std::atomic<std::uint64_t> plain{0}, with_tables{0};
      OTA_TRY(parallel_for(frames, threads, [&](std::uint64_t i) -> Status {
        std::uint64_t differ = 0, differ_tables = 0;
        Bytes ref;
        for (const Block& blk : blocks[i]) {
          if (!blk.add_len) continue;
          ref.resize(static_cast<std::size_t>(blk.add_len));
          const auto delta = static_cast<std::int64_t>(blk.new_pos) - static_cast<std::int64_t>(blk.old_pos);
          const std::uint8_t* want = new_image.data() + blk.new_pos;
          detail::predict(candidate, map, old_image, 0, old_image.size(), blk.old_pos,
                          static_cast<std::size_t>(blk.add_len), delta, ref.data());
          for (std::uint64_t k = 0; k < blk.add_len; ++k) differ += ref[k] != want[k];
          if (!candidate_elf) continue;
          detail::predict(candidate, map, old_image, 0, old_image.size(), blk.old_pos,
                          static_cast<std::size_t>(blk.add_len), delta, ref.data(), candidate_elf);
          for (std::uint64_t k = 0; k < blk.add_len; ++k) differ_tables += ref[k] != want[k];
        }
        plain += differ;
        with_tables += differ_tables;
        return ok();
      }));
      remaining = plain;
      if (tables && with_tables < plain) {
        remaining = with_tables;
      } else {
        tables.reset();
      }
    }
    if (!judge_predictor) {
      predictor = candidate;
    } else {
      const std::uint64_t explained = mismatches > remaining ? mismatches - remaining : 0;
      if (explained >= std::max<std::uint64_t>(kPredictorMinMismatches, map_section.size())) predictor = candidate;
    }
    if (predictor == Predictor::kNone) {
      map_section.clear();
      tables.reset();
    }
    h.predictor = predictor;
    h.elf_tables = tables.has_value();
  }
  const detail::ElfTables* elf = tables ? &*tables : nullptr;
  if (elf && elf->table_end > elf->table_begin) {
    OTA_TRY_ASSIGN(auto new_tables, detail::read_elf_tables(MemorySource(new_image)));
    const auto aligned = detail::align_eh_frame_hdr(*elf, new_tables, map, old_image, new_image);
    if (!aligned.empty()) {
      const std::uint64_t first = aligned.front().new_pos / frame_size, last = (new_tables.table_end - 1) / frame_size;
      for (std::uint64_t i = first; i <= last && i < frames; ++i) {
        detail::splice_blocks(blocks[i], aligned);
        if (!longer[i].empty()) detail::splice_blocks(longer[i], aligned);
      }
    }
  }
  const bool predict = predictor != Predictor::kNone;
  covers.clear();
  covers.shrink_to_fit();

  Bytes header = encode_header(h);
  OTA_TRY(patch.write(header));
  OTA_TRY(patch.write(map_section));

  DiffStats total;
  total.patch_size = header.size() + map_section.size();
  total.old_hash = old_hash;
  total.new_hash = new_hash;
  total.predictor = h.predictor;
  total.compression = h.compression;
  total.version = header[3];
  total.map_entries = predict ? map.size() : 0;
  total.map_bytes = map_section.size();

  // 3. Records and compression, frame by frame in parallel; written in order.
  std::vector<std::optional<FrameOut>> done(frames);
  std::mutex mu;
  std::uint64_t next_to_write = 0;
  Status write_status = ok();
  auto flush_ready = [&]() -> Status {  // called with mu held
    while (next_to_write < frames && done[next_to_write]) {
      FrameOut& f = *done[next_to_write];
      if (auto w = patch.write(f.bytes); !w) return w;
      total.patch_size += f.bytes.size();
      total.frames += 1;
      total.records += f.stats.records;
      total.blocks += f.stats.blocks;
      total.copy_bytes += f.stats.copy_bytes;
      total.add_bytes += f.stats.add_bytes;
      total.insert_bytes += f.stats.insert_bytes;
      done[next_to_write].reset();
      blocks[next_to_write].clear();
      blocks[next_to_write].shrink_to_fit();
      longer[next_to_write].clear();
      longer[next_to_write].shrink_to_fit();
      ++next_to_write;
      if (opt.progress)
        opt.progress(std::min<std::uint64_t>(new_image.size(), next_to_write * frame_size), new_image.size());
    }
    return ok();
  };
  Status status = parallel_for(frames, threads, [&](std::uint64_t i) -> Status {
    const std::uint64_t e = std::min<std::uint64_t>(new_image.size(), (i + 1) * frame_size);
    auto f = encode_frame(blocks[i], longer[i], old_image, new_image, e, predictor, map, elf, eff);
    if (!f) return fail(f.error().with_context("frame " + std::to_string(i)));
    std::lock_guard<std::mutex> lock(mu);
    done[i] = std::move(*f);
    if (write_status) write_status = flush_ready();
    return write_status;
  });
  if (!status) return fail(status.error());
  if (!write_status) return fail(write_status.error());
  if (next_to_write != frames) return fail(ErrorCode::kInternal, "not every frame was written");
  return total;
}

// Format version 6: the delta between the images with their xz streams
// expanded, wrapped with the real images' header and the stream tables
// (delta/xz_tables.hpp). nullopt when NEW has too few re-encodable streams.
Result<std::optional<DiffStats>> diff_expanded(ByteSpan old_image, ByteSpan new_image, Writer& patch,
                                               const DiffOptions& opt) {
  auto new_streams = codec::find_xz_streams(new_image, kMaxXzSegment, true);
  // A stream of NEW that no preset makes again stays as it is; where OLD has
  // the same bytes (an unchanged file), OLD keeps them too, to copy them from.
  std::vector<Digest> kept;
  for (const auto& s : new_streams)
    if (!s.params) kept.push_back(content_hash(new_image.subspan(s.offset, s.comp_size)));
  std::sort(kept.begin(), kept.end());
  std::erase_if(new_streams, [](const codec::XzStream& s) { return !s.params; });
  std::uint64_t reencoded = 0;
  for (const auto& s : new_streams) reencoded += s.comp_size;
  if (reencoded < kRecompressMin) return std::optional<DiffStats>{};
  auto old_streams = codec::find_xz_streams(old_image, kMaxXzSegment, false);
  std::erase_if(old_streams, [&](const codec::XzStream& s) {
    return !kept.empty() &&
           std::binary_search(kept.begin(), kept.end(), content_hash(old_image.subspan(s.offset, s.comp_size)));
  });
  detail::XzTables t;
  t.old_pieces = detail::pieces_of(old_image.size(), old_streams, false, opt.frame_log);
  t.new_pieces = detail::pieces_of(new_image.size(), new_streams, true, opt.frame_log);
  t.old_streams = old_streams.size();
  t.new_streams = new_streams.size();
  OTA_TRY_ASSIGN(auto old_x, detail::expand(old_image, t.old_pieces));
  OTA_TRY_ASSIGN(auto new_x, detail::expand(new_image, t.new_pieces));

  DiffOptions inner_opt = opt;
  inner_opt.recompress = false;
  VectorWriter inner;
  OTA_TRY_ASSIGN(auto stats, diff_plain(old_x, new_x, inner, inner_opt, &t.old_pieces));
  const Bytes& body = inner.data();
  OTA_TRY_ASSIGN(auto parsed, parse_header(body));
  const PatchHeader h = detail::recompress_header(parsed.first, old_image.size(), new_image.size(),
                                                  content_hash(old_image), content_hash(new_image));
  const Bytes header = encode_header(h);
  const Bytes tables = detail::encode_tables(t);
  Bytes length;
  detail::put_varint(length, tables.size());
  OTA_TRY(patch.write(header));
  OTA_TRY(patch.write(length));
  OTA_TRY(patch.write(tables));
  OTA_TRY(patch.write(ByteSpan(body).subspan(parsed.second)));

  stats.patch_size = header.size() + length.size() + tables.size() + body.size() - parsed.second;
  stats.version = kRecompressFormatVersion;
  stats.old_hash = h.old_hash;
  stats.new_hash = h.new_hash;
  stats.old_streams = t.old_streams;
  stats.new_streams = t.new_streams;
  stats.expanded_old_size = h.expanded_old_size;
  stats.expanded_new_size = h.expanded_new_size;
  return std::optional<DiffStats>(stats);
}

}  // namespace

Result<DiffStats> diff(ByteSpan old_image, ByteSpan new_image, Writer& patch, const DiffOptions& opt) {
  if (opt.recompress && opt.layout == RecordLayout::kBlocks) {
    OTA_TRY_ASSIGN(auto expanded, diff_expanded(old_image, new_image, patch, opt));
    if (expanded) return *expanded;
  }
  return diff_plain(old_image, new_image, patch, opt);
}

}  // namespace ota::delta
