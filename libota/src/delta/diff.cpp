#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "codec/zstd.hpp"
#include "core/varint.hpp"
#include "delta/format.hpp"
#include "delta/matcher.hpp"
#include "ota/delta.hpp"

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

// Turns the blocks of one frame into its record stream.
class RecordEncoder {
 public:
  RecordEncoder(ByteSpan old_image, ByteSpan new_image, std::uint64_t frame_end, DiffStats& stats)
      : old_(old_image), new_(new_image), frame_end_(frame_end), stats_(stats) {}

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

  Bytes finish() {
    if (pending_len_ && pending_op_ == detail::kOpCopy && pending_new_ + pending_len_ == frame_end_) {
      tag(detail::kOpCopy, 0);  // "to the end of the frame"
      stats_.copy_bytes += pending_len_;
      pending_len_ = 0;
    }
    flush();
    return std::move(out_);
  }

 private:
  // NEW[new_pos, +len) against OLD at the cursor: zero-difference runs long enough
  // to pay for a record become COPY, the rest ADD.
  void add_stretch(std::uint64_t new_pos, std::uint64_t len) {
    const std::uint8_t* o = old_.data() + cursor_;
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
    tag(pending_op_, pending_len_);
    switch (pending_op_) {
      case detail::kOpCopy:
        stats_.copy_bytes += pending_len_;
        break;
      case detail::kOpAdd:
        for (std::uint64_t i = 0; i < pending_len_; ++i)
          out_.push_back(static_cast<std::uint8_t>(new_[pending_new_ + i] - old_[pending_old_ + i]));
        stats_.add_bytes += pending_len_;
        break;
      case detail::kOpInsert:
        out_.insert(out_.end(), new_.begin() + static_cast<std::ptrdiff_t>(pending_new_),
                    new_.begin() + static_cast<std::ptrdiff_t>(pending_new_ + pending_len_));
        stats_.insert_bytes += pending_len_;
        break;
      default: break;
    }
    pending_len_ = 0;
  }

  void tag(std::uint8_t op, std::uint64_t n) {
    put_varint(out_, n << 2 | op);
    ++stats_.records;
  }

  ByteSpan old_, new_;
  std::uint64_t frame_end_;
  DiffStats& stats_;
  Bytes out_;
  std::uint64_t cursor_ = 0;  // OLD cursor after the pending record
  detail::Op pending_op_ = detail::kOpCopy;
  std::uint64_t pending_new_ = 0, pending_old_ = 0, pending_len_ = 0;
};

Result<FrameOut> make_frame(const detail::SuffixIndex& index, ByteSpan old_image, ByteSpan new_image,
                            std::uint64_t begin, std::uint64_t end, const DiffOptions& opt) {
  std::vector<Block> blocks;
  detail::match_range(index, old_image, new_image, begin, end, blocks);
  FrameOut f;
  RecordEncoder enc(old_image, new_image, end, f.stats);
  for (const Block& b : blocks) enc.block(b);
  Bytes records = enc.finish();
  f.stats.frames = 1;
  if (opt.compression == Compression::kZstd) {
    auto z = codec::zstd_compress(records, {opt.level, opt.window_log});
    if (!z) return fail(z.error());
    if (z->size() < records.size()) {
      f.bytes.reserve(z->size() + 1);
      f.bytes.push_back(detail::kFrameZstd);
      f.bytes.insert(f.bytes.end(), z->begin(), z->end());
      return f;
    }
  }
  f.bytes.reserve(records.size() + 1);
  f.bytes.push_back(detail::kFrameRaw);
  f.bytes.insert(f.bytes.end(), records.begin(), records.end());
  return f;
}

}  // namespace

Result<DiffStats> diff(ByteSpan old_image, ByteSpan new_image, Writer& patch, const DiffOptions& opt) {
  if (opt.frame_log < kMinFrameLog || opt.frame_log > kMaxFrameLog)
    return fail(ErrorCode::kUsage, "frame size must be between 2^" + std::to_string(kMinFrameLog) +
                                       " and 2^" + std::to_string(kMaxFrameLog) + " bytes");
  if (opt.compression == Compression::kZstd && (opt.window_log < 10 || opt.window_log > kMaxWindowLog))
    return fail(ErrorCode::kUsage, "window must be between 2^10 and 2^" + std::to_string(kMaxWindowLog));
  if (opt.level < 1 || opt.level > 22) return fail(ErrorCode::kUsage, "zstd level must be 1..22");

  unsigned threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());

  // Hash both images while the suffix array is built.
  auto hashes = std::async(std::launch::async, [&] {
    return std::make_pair(content_hash(old_image), content_hash(new_image));
  });
  std::unique_ptr<detail::SuffixIndex> index;
  try {
    index = detail::build_suffix_index(old_image);
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kOutOfMemory, "not enough memory for the suffix array of OLD");
  }
  auto [old_hash, new_hash] = hashes.get();

  PatchHeader h;
  h.compression = opt.compression;
  h.window_log = opt.compression == Compression::kNone ? 0 : opt.window_log;
  h.frame_log = opt.frame_log;
  h.old_size = old_image.size();
  h.new_size = new_image.size();
  h.old_hash = old_hash;
  h.new_hash = new_hash;
  Bytes header = encode_header(h);
  OTA_TRY(patch.write(header));

  DiffStats total;
  total.patch_size = header.size();
  total.old_hash = old_hash;
  total.new_hash = new_hash;

  const std::uint64_t frame_size = std::uint64_t{1} << opt.frame_log;
  const std::uint64_t frames = h.frame_count();
  // Frames are independent: a pool of workers makes them, they are written in order.
  std::atomic<std::uint64_t> next{0};
  std::vector<std::future<Result<FrameOut>>> slots(frames);
  std::vector<std::promise<Result<FrameOut>>> promises(frames);
  for (std::uint64_t i = 0; i < frames; ++i) slots[i] = promises[i].get_future();
  std::atomic<bool> abort{false};
  auto worker = [&] {
    for (;;) {
      std::uint64_t i = next.fetch_add(1);
      if (i >= frames) return;
      if (abort) {
        promises[i].set_value(fail(ErrorCode::kCancelled, "cancelled"));
        continue;
      }
      std::uint64_t b = i * frame_size, e = std::min(new_image.size(), b + frame_size);
      try {
        promises[i].set_value(make_frame(*index, old_image, new_image, b, e, opt));
      } catch (const std::bad_alloc&) {
        promises[i].set_value(fail(ErrorCode::kOutOfMemory, "out of memory while making a frame"));
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::min<std::uint64_t>(threads, frames); ++t) pool.emplace_back(worker);

  Status status = ok();
  for (std::uint64_t i = 0; i < frames; ++i) {
    Result<FrameOut> f = slots[i].get();
    if (!status) continue;
    if (!f) {
      status = fail(f.error().with_context("frame " + std::to_string(i)));
      abort = true;
      continue;
    }
    if (auto w = patch.write(f->bytes); !w) {
      status = fail(w.error());
      abort = true;
      continue;
    }
    total.patch_size += f->bytes.size();
    total.frames += 1;
    total.records += f->stats.records;
    total.copy_bytes += f->stats.copy_bytes;
    total.add_bytes += f->stats.add_bytes;
    total.insert_bytes += f->stats.insert_bytes;
    if (opt.progress) opt.progress(std::min(new_image.size(), (i + 1) * frame_size), new_image.size());
  }
  for (auto& t : pool) t.join();
  if (!status) return fail(status.error());
  return total;
}

}  // namespace ota::delta
