#include <algorithm>
#include <cstring>
#include <optional>

#include "delta/codec/lzma.hpp"
#include "delta/codec/zstd.hpp"
#include "core/varint.hpp"
#include "delta/base_check.hpp"
#include "delta/format.hpp"
#include "delta/map_section.hpp"
#include "delta/new_output.hpp"
#include "delta/elf_tables.hpp"
#include "delta/predict.hpp"
#include "delta/recompress.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta {

namespace {

// Buffer sizes are part of the memory budget of a device (docs/design.md).
constexpr std::size_t kWorkBuffer = 16 * 1024;   // most OLD bytes predicted per step
constexpr std::size_t kPredictFirst = 512;       // first prediction ahead after an alignment change
constexpr std::size_t kOldCache = 32 * 1024;     // OLD read-ahead
constexpr std::size_t kDecodeBuffer = 32 * 1024; // decompressed records (versions 1 and 2)
// Version 3 decodes into one block buffer of at most kMaxBlockSize bytes instead.
constexpr std::size_t kFeedBuffer = 16 * 1024;   // apply(): patch reads

Error malformed(std::string what) { return Error{ErrorCode::kPatchMalformed, std::move(what)}; }

class PatcherImpl final : public detail::StickyPatcher {
 public:
  PatcherImpl(const Source& old_image, Writer& out, PatchOptions opt)
      : old_(old_image),
        opt_(std::move(opt)),
        output_(out, opt_.hash_in_background),
        base_(old_, opt_.base_check, opt_.known_old_hash) {}
  PatcherImpl(const PatcherImpl&) = delete;
  PatcherImpl& operator=(const PatcherImpl&) = delete;

  const PatchHeader* header() const override { return state_ == State::kHeader ? nullptr : &h_; }
  std::uint64_t new_written() const override { return output_.written(); }
  std::uint64_t next_offset() const override {
    return state_ == State::kSkip ? opt_.resume->patch_offset : consumed_;
  }
  Status skip(std::uint64_t n) override {
    if (!status_) return status_;
    if (state_ != State::kSkip || consumed_ > opt_.resume->patch_offset || n > opt_.resume->patch_offset - consumed_)
      return status_ = fail(ErrorCode::kUsage, "skip() only moves up to the resume offset");
    consumed_ += n;
    if (consumed_ == opt_.resume->patch_offset) begin_frame();
    return ok();
  }

 private:
  enum class State { kHeader, kMap, kSkip, kFrameStart, kRaw, kZstd, kDone };
  enum class Rec { kTag, kAdd, kInsert };
  enum class BlockPart { kLengths, kBody };

  Status with_frame(Error e) const {
    if (state_ == State::kHeader) return fail(std::move(e));
    return fail(std::move(e).with_context("frame " + std::to_string(frame_)));
  }

  Status feed_impl(ByteSpan in) override {
    while (!in.empty()) {
      switch (state_) {
        case State::kHeader: {
          OTA_TRY_ASSIGN(auto got, detail::gather_header(hdr_, in, consumed_));
          if (!got) return ok();
          h_ = *got;
          hdr_.clear();
          hdr_.shrink_to_fit();
          OTA_TRY(start());
          break;
        }
        case State::kMap: {
          auto used = map_reader_->feed(in);
          if (!used) return fail(used.error().with_context("address map"));
          in = in.subspan(*used);
          consumed_ += *used;
          if (map_reader_->done()) {
            map_ = map_reader_->take();
            map_reader_.reset();
            frames_begin();
          }
          break;
        }
        case State::kSkip: {
          if (consumed_ > opt_.resume->patch_offset)
            return fail(ErrorCode::kUsage, "resume offset lies inside the patch header or address map");
          const std::uint64_t n = std::min<std::uint64_t>(in.size(), opt_.resume->patch_offset - consumed_);
          in = in.subspan(static_cast<std::size_t>(n));
          consumed_ += n;
          if (consumed_ == opt_.resume->patch_offset) begin_frame();
          break;
        }
        case State::kFrameStart: {
          std::uint8_t mode = in[0];
          in = in.subspan(1);
          consumed_ += 1;
          // Version 3: record blocks, or interleaved records (mode + 2).
          if (v3_) {
            blocks_ = mode < detail::kFrameInterleaved;
            if (!blocks_ && mode < detail::kFrameInterleaved + 2) mode -= detail::kFrameInterleaved;
            else if (!blocks_) return with_frame(malformed("unknown frame mode " + std::to_string(mode)));
          }
          if (mode == detail::kFrameRaw) {
            state_ = State::kRaw;
          } else if (mode == detail::kFrameZstd && h_.compression != Compression::kNone) {
            if (!decoder_) {
              const int wlog = std::min(h_.window_log, opt_.max_window_log);
              if (is_lzma(h_.compression)) {
                OTA_TRY_ASSIGN(auto d, codec::LzmaDecoder::create(wlog));
                decoder_ = std::move(d);
              } else {
                OTA_TRY_ASSIGN(auto d, codec::ZstdDecoder::create(wlog));
                decoder_ = std::move(d);
              }
            }
            if (!blocks_ && zbuf_.empty()) zbuf_.resize(kDecodeBuffer);
            OTA_TRY(decoder_->reset(has_old_dictionary(h_.compression) ? ByteSpan(old_copy_) : ByteSpan{}));
            state_ = State::kZstd;
          } else {
            return with_frame(malformed("unknown frame mode " + std::to_string(mode)));
          }
          break;
        }
        case State::kRaw: {
          auto used = blocks_ ? block_input(in) : records(in);
          if (!used) return with_frame(used.error());
          in = in.subspan(*used);
          consumed_ += *used;
          if (frame_complete()) OTA_TRY(end_frame());
          break;
        }
        case State::kZstd: {
          if (blocks_) {
            auto used = zstd_block_step(in);
            if (!used) return with_frame(used.error());
            in = in.subspan(*used);
            break;
          }
          auto step = decoder_->decode(in, zbuf_);
          if (!step) return with_frame(step.error());
          if (step->consumed == 0 && step->produced == 0 && !step->frame_done)
            return with_frame(Error{ErrorCode::kDecompress, "compressed frame makes no progress"});
          in = in.subspan(step->consumed);
          consumed_ += step->consumed;
          OTA_TRY(zstd_output(*step));
          break;
        }
        case State::kDone:
          return fail(malformed("unexpected bytes after the last frame"));
      }
    }
    // zstd may still hold decoded bytes that did not fit the buffer.
    while (blocks_ && state_ == State::kZstd && last_full_) {
      auto used = zstd_block_step({});
      if (!used) return with_frame(used.error());
    }
    while (!blocks_ && state_ == State::kZstd && last_produced_ == zbuf_.size()) {
      auto step = decoder_->decode({}, zbuf_);
      if (!step) return with_frame(step.error());
      OTA_TRY(zstd_output(*step));
    }
    return ok();
  }

  Status zstd_output(const codec::FrameDecoder::Step& step) {
    last_produced_ = step.produced;
    ByteSpan out(zbuf_.data(), step.produced);
    if (!out.empty()) {
      if (frame_complete()) return with_frame(malformed("records continue past the end of the frame"));
      auto used = records(out);
      if (!used) return with_frame(used.error());
      if (*used != out.size()) return with_frame(malformed("records continue past the end of the frame"));
    }
    if (step.frame_done) {
      if (!frame_complete())
        return with_frame(Error{ErrorCode::kPatchMalformed, "compressed frame ends before its last record"});
      return end_frame();
    }
    return ok();
  }

  Status drain_zstd() {
    while (blocks_) {
      auto used = zstd_block_step({});
      if (!used) return with_frame(used.error());
      if (state_ != State::kZstd || !last_full_) return ok();
    }
    for (;;) {
      auto step = decoder_->decode({}, zbuf_);
      if (!step) return with_frame(step.error());
      OTA_TRY(zstd_output(*step));
      if (state_ != State::kZstd || (step->produced == 0 && step->consumed == 0)) return ok();
    }
  }

  Status start() {
    if (old_.size() != h_.old_size)
      return fail(ErrorCode::kOldMismatch, "OLD is " + std::to_string(old_.size()) +
                                               " bytes but the patch was made from " +
                                               std::to_string(h_.old_size) + " bytes");
    if (h_.compression != Compression::kNone && h_.window_log > opt_.max_window_log)
      return fail(ErrorCode::kLimitExceeded, "patch needs a 2^" + std::to_string(h_.window_log) +
                                                 "-byte decoder window, over the limit of 2^" +
                                                 std::to_string(opt_.max_window_log));
    OTA_TRY(base_.start(h_));
    v3_ = layout_of_version(h_.version) == RecordLayout::kBlocks;
    blocks_ = v3_;
    cache_.resize(std::min<std::uint64_t>(kOldCache, old_.size()));
    if (has_old_dictionary(h_.compression)) {
      // The window (checked against max_window_log above) covers OLD.
      if (h_.old_size >= (std::uint64_t{1} << h_.window_log))
        return fail(malformed("decoder window does not cover OLD"));
      old_copy_.resize(static_cast<std::size_t>(h_.old_size));
      OTA_TRY_CTX(old_.read_at(0, old_copy_), "reading OLD");
    }
    if (opt_.resume) OTA_TRY(start_resume());
    if (h_.elf_tables) {
      // Version 5: the tables the generator found in OLD, found again here
      // (headers and the .eh_frame record chain; at most a 2 MiB bitmap).
      OTA_TRY_ASSIGN(auto t, detail::read_elf_tables(old_));
      elf_ = std::move(t);
    }
    if (h_.predictor != Predictor::kNone) {
      map_reader_.emplace(h_.compression, h_.old_size, opt_.max_map_entries);
      state_ = State::kMap;
      return ok();
    }
    frames_begin();
    return ok();
  }

  // Checks the resume point against the header and hashes the NEW prefix
  // already written, so the final check covers all of NEW.
  Status start_resume() {
    const ResumePoint& rp = *opt_.resume;
    if (rp.frame == 0 && rp.new_offset == 0) {  // nothing was checkpointed: start over
      opt_.resume.reset();
      return ok();
    }
    const std::uint64_t frame_bytes = std::uint64_t{1} << h_.frame_log;
    if (rp.frame > (h_.new_size + frame_bytes - 1) / frame_bytes ||
        rp.new_offset != std::min(h_.new_size, rp.frame << h_.frame_log))
      return fail(ErrorCode::kUsage, "resume point (frame " + std::to_string(rp.frame) + ", NEW offset " +
                                         std::to_string(rp.new_offset) + ") does not fit this patch");
    if (rp.patch_offset < consumed_)
      return fail(ErrorCode::kUsage, "resume offset lies inside the patch header");
    if (rp.new_offset > 0) {
      if (!opt_.written_prefix || opt_.written_prefix->size() < rp.new_offset)
        return fail(ErrorCode::kUsage, "resuming needs the NEW bytes already written (written_prefix)");
      OTA_TRY_CTX(hash_range(*opt_.written_prefix, 0, rp.new_offset, output_.hasher()), "reading back NEW");
    }
    return ok();
  }

  // After the header and map: the first frame, or the resume point.
  void frames_begin() {
    if (opt_.resume) {
      frame_ = opt_.resume->frame;
      new_written_ = last_progress_ = opt_.resume->new_offset;
      output_.resume_at(new_written_);
      state_ = State::kSkip;  // left at once if already at the resume offset
      return;
    }
    begin_frame();
  }

  // COPY and ADD apply to OLD[cursor_, ...): OLD itself, or with a predictor,
  // OLD with its references re-pointed for the current alignment (NEW offset
  // minus OLD offset). Both are written ahead the same way (without a
  // predictor, detail::predict() only copies).
  //
  // A predicted byte depends only on its OLD offset and the alignment, and
  // records that follow each other without an INSERT or a SEEK share the
  // alignment (node: 1.3 million COPY records, 1.3 million ADD records of 2.4
  // bytes on average, and about 5,000 alignment changes). So the prediction is
  // written ahead, in place, into the output buffer: the first ahead_ bytes of
  // output_.space() hold the prediction of OLD[cursor_, cursor_ + ahead_). A
  // COPY then only counts them and an ADD adds its bytes onto them. After an
  // alignment change the prediction ahead starts at kPredictFirst bytes, and
  // each further step doubles, up to kWorkBuffer.
  //
  // Makes ahead_ >= len (len <= output_.space().size() and OLD's rest).
  Status predict_ahead(std::size_t len) {
    if (ahead_ >= len) return ok();
    const MutableByteSpan space = output_.space();
    step_ = aligned_ ? std::min(kWorkBuffer, step_ * 2) : kPredictFirst;
    aligned_ = true;
    const std::size_t target = static_cast<std::size_t>(std::min<std::uint64_t>(
        {space.size(), h_.old_size - cursor_, std::max<std::uint64_t>(len, ahead_ + step_)}));
    const std::int64_t delta = static_cast<std::int64_t>(new_written_) - static_cast<std::int64_t>(cursor_);
    while (ahead_ < target) {
      std::size_t n = std::min(kWorkBuffer, target - ahead_);
      const std::uint64_t off = cursor_ + ahead_;
      // A step that would run a few bytes past the read-ahead cache ends with
      // it instead, so that OLD is read once, not twice, on a long run.
      const std::uint64_t cached_end = cache_off_ + cache_len_;
      if (off >= cache_off_ + detail::kPredictBefore && cached_end >= off + detail::kPredictAfter + 4096 &&
          cached_end < off + n + detail::kPredictAfter && cached_end < h_.old_size)
        n = static_cast<std::size_t>(cached_end - detail::kPredictAfter - off);
      // Without a predictor, only the bytes copied (an expanded xz image
      // would decode a neighbouring stream for the context).
      const std::uint64_t before = h_.predictor == Predictor::kNone ? 0 : detail::kPredictBefore;
      const std::uint64_t after = h_.predictor == Predictor::kNone ? 0 : detail::kPredictAfter;
      const std::uint64_t lo = off >= before ? off - before : 0;
      const std::uint64_t hi = std::min<std::uint64_t>(h_.old_size, off + n + after);
      OTA_TRY_ASSIGN(auto window, old_view(lo, static_cast<std::size_t>(hi - lo)));
      detail::predict(h_.predictor, map_, window, lo, h_.old_size, off, n, delta, space.data() + ahead_,
                      elf_ ? &*elf_ : nullptr);
      count_copy(n);  // OLD's bytes (re-pointed or not) into the output buffer
      ahead_ += n;
    }
    return ok();
  }

  // An INSERT, a SEEK or a new frame: what was predicted ahead no longer applies.
  void realign() {
    ahead_ = 0;
    aligned_ = false;
  }

  // The patch failed: the Writer is left alone from here on, and a wrong OLD
  // is named as the cause if that is what it was.
  void failed() override {
    output_.abandon();
    status_ = base_.explain(std::move(status_), state_ != State::kHeader);
  }

  void begin_frame() {
    if (new_written_ == h_.new_size) {
      state_ = State::kDone;
      return;
    }
    frame_end_ = std::min(h_.new_size, (frame_ + 1) << h_.frame_log);
    cursor_ = 0;
    realign();
    rec_ = Rec::kTag;
    tag_len_ = 0;
    part_ = BlockPart::kLengths;
    lens_count_ = 0;
    len_bytes_ = 0;
    last_full_ = false;
    state_ = State::kFrameStart;
  }

  bool frame_complete() const {
    return new_written_ == frame_end_ &&
           (blocks_ ? part_ == BlockPart::kLengths && lens_count_ == 0 && len_bytes_ == 0
                    : rec_ == Rec::kTag && tag_len_ == 0);
  }

  Status end_frame() {
    ++frame_;
    // A frame's NEW bytes reach the Writer at its end (new_written() and a
    // checkpoint count only what the Writer accepted).
    if (auto st = output_.drain(); !st) return fail(st.error().with_context("writing NEW"));
    if (opt_.on_frame) OTA_TRY(opt_.on_frame(ResumePoint{frame_, consumed_, new_written_}));
    begin_frame();
    return ok();
  }

  Status finish_impl() override {
    if (state_ == State::kZstd) OTA_TRY(drain_zstd());
    OTA_TRY(base_.result());
    return finish_frames();
  }

  Status finish_frames() {
    if (state_ == State::kHeader)
      return fail(ErrorCode::kPatchTruncated, hdr_.empty() ? "patch is empty" : "patch header is truncated");
    if (state_ != State::kDone)
      return with_frame(Error{ErrorCode::kPatchTruncated,
                              "patch ends after " + std::to_string(new_written_) + " of " +
                                  std::to_string(h_.new_size) + " NEW bytes"});
    auto finished = output_.finish();
    if (!finished) return fail(finished.error().with_context("writing NEW"));
    const Digest got = *finished;
    if (got != h_.new_hash)
      return fail(ErrorCode::kNewMismatch, "patched result has BLAKE2b-256 " + to_hex(got) + ", expected " +
                                               to_hex(h_.new_hash));
    return ok();
  }

  // Decodes records from data; returns how many bytes were used (stops at the frame end).
  Result<std::size_t> records(ByteSpan data) {
    std::size_t pos = 0;
    while (pos < data.size() && !frame_complete()) {
      switch (rec_) {
        case Rec::kTag: {
          std::uint64_t v = 0;
          std::size_t used = 0;
          if (tag_len_ == 0) {  // the whole tag is usually in data
            auto st = detail::get_varint(data.subspan(pos), v, used);
            if (st == detail::VarintStatus::kInvalid) return fail(malformed("invalid record tag"));
            if (st == detail::VarintStatus::kOk) {
              pos += used;
              OTA_TRY(record(static_cast<std::uint8_t>(v & 3), v >> 2));
              break;
            }
          }
          tag_[tag_len_++] = data[pos++];
          auto st = detail::get_varint(ByteSpan(tag_, tag_len_), v, used);
          if (st == detail::VarintStatus::kNeedMore) break;
          if (st == detail::VarintStatus::kInvalid) return fail(malformed("invalid record tag"));
          tag_len_ = 0;
          OTA_TRY(record(static_cast<std::uint8_t>(v & 3), v >> 2));
          break;
        }
        case Rec::kAdd: {
          std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - pos));
          OTA_TRY(add(data.subspan(pos, n)));
          pos += n;
          if ((remaining_ -= n) == 0) rec_ = Rec::kTag;
          break;
        }
        case Rec::kInsert: {
          std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - pos));
          OTA_TRY(emit(data.subspan(pos, n)));
          pos += n;
          if ((remaining_ -= n) == 0) rec_ = Rec::kTag;
          break;
        }
      }
    }
    return pos;
  }

  // ADD: NEW's next bytes are the reference at the cursor plus diff (mod 256).
  Status add(ByteSpan diff) {
    while (!diff.empty()) {
      MutableByteSpan room = output_.space();
      const std::size_t n = std::min(diff.size(), room.size());
      OTA_TRY(predict_ahead(n));
      std::uint8_t* dst = room.data();
      for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<std::uint8_t>(dst[i] + diff[i]);
      ahead_ -= n;
      OTA_TRY(produced(n));
      cursor_ += n;
      diff = diff.subspan(n);
    }
    return ok();
  }

  // ---- version 3: record blocks (docs/formats.md, "Blocks") ----
  //
  // A block is ULEB128 tags_len, add_len, insert_len, then the three streams.
  // Its lengths are read a byte at a time, its streams into block_ (at most
  // kMaxBlockSize bytes, whatever the patch says), and then its records run.

  // Where the block's next bytes go.
  MutableByteSpan block_want() {
    if (part_ == BlockPart::kLengths) return MutableByteSpan(len_buf_ + len_bytes_, 1);
    return MutableByteSpan(block_.data() + block_fill_, block_size_ - block_fill_);
  }

  // The first n bytes of block_want() arrived.
  Status block_got(std::size_t n) {
    if (n == 0) return ok();
    if (part_ == BlockPart::kBody) {
      block_fill_ += n;
      if (block_fill_ < block_size_) return ok();
      part_ = BlockPart::kLengths;
      lens_count_ = 0;
      return run_block();
    }
    ++len_bytes_;
    std::uint64_t v = 0;
    std::size_t used = 0;
    switch (detail::get_varint(ByteSpan(len_buf_, len_bytes_), v, used)) {
      case detail::VarintStatus::kNeedMore: return ok();
      case detail::VarintStatus::kInvalid: return fail(malformed("invalid block length"));
      case detail::VarintStatus::kOk: break;
    }
    len_bytes_ = 0;
    if (v > kMaxBlockSize)
      return fail(malformed("block stream of " + std::to_string(v) + " bytes is over the limit of " +
                            std::to_string(kMaxBlockSize)));
    lens_[lens_count_++] = static_cast<std::size_t>(v);
    if (lens_count_ < 3) return ok();
    const std::size_t total = lens_[0] + lens_[1] + lens_[2];
    if (total > kMaxBlockSize)
      return fail(malformed("block of " + std::to_string(total) + " bytes is over the limit of " +
                            std::to_string(kMaxBlockSize)));
    if (lens_[0] == 0) return fail(malformed("block without records"));
    if (block_.size() < total) {
      block_.reserve(kMaxBlockSize);  // once: growing by doubling would take twice the bound
      block_.resize(total);
    }
    block_size_ = total;
    block_fill_ = 0;
    part_ = BlockPart::kBody;
    return ok();
  }

  // Runs the records of the block in block_.
  Status run_block() {
    const ByteSpan tags(block_.data(), lens_[0]);
    const ByteSpan adds(block_.data() + lens_[0], lens_[1]);
    const ByteSpan inserts(block_.data() + lens_[0] + lens_[1], lens_[2]);
    std::size_t t = 0, a = 0, i = 0;
    while (t < tags.size()) {
      if (new_written_ == frame_end_) return fail(malformed("records continue past the end of the frame"));
      std::uint64_t v = 0;
      std::size_t used = 0;
      switch (detail::get_varint(tags.subspan(t), v, used)) {
        case detail::VarintStatus::kNeedMore: return fail(malformed("record tag runs past the end of its block"));
        case detail::VarintStatus::kInvalid: return fail(malformed("invalid record tag"));
        case detail::VarintStatus::kOk: break;
      }
      t += used;
      const auto op = static_cast<std::uint8_t>(v & 3);
      const std::uint64_t n = v >> 2;
      OTA_TRY(record(op, n));
      if (op == detail::kOpAdd) {
        rec_ = Rec::kTag;
        if (n > adds.size() - a)
          return fail(malformed("ADD " + std::to_string(n) + " runs past the block's ADD bytes"));
        OTA_TRY(add(adds.subspan(a, static_cast<std::size_t>(n))));
        a += static_cast<std::size_t>(n);
      } else if (op == detail::kOpInsert) {
        rec_ = Rec::kTag;
        if (n > inserts.size() - i)
          return fail(malformed("INSERT " + std::to_string(n) + " runs past the block's INSERT bytes"));
        OTA_TRY(emit(inserts.subspan(i, static_cast<std::size_t>(n))));
        i += static_cast<std::size_t>(n);
      }
    }
    if (a != adds.size() || i != inserts.size())
      return fail(malformed("block has " + std::to_string(adds.size() - a) + " ADD and " +
                            std::to_string(inserts.size() - i) + " INSERT bytes left after its records"));
    return ok();
  }

  // A raw frame: block bytes straight from the patch; returns how many were
  // used (stops at the frame end).
  Result<std::size_t> block_input(ByteSpan data) {
    std::size_t pos = 0;
    while (pos < data.size() && !frame_complete()) {
      const MutableByteSpan want = block_want();
      const std::size_t n = std::min(want.size(), data.size() - pos);
      std::memcpy(want.data(), data.data() + pos, n);
      pos += n;
      OTA_TRY(block_got(n));
    }
    return pos;
  }

  // A zstd frame: one decoding step straight into the block buffer; returns
  // the input used (counted in consumed_ before a frame ends, for its resume
  // point). last_full_: the output room was filled (zstd may hold more).
  Result<std::size_t> zstd_block_step(ByteSpan in) {
    const bool complete = frame_complete();
    std::uint8_t spare = 0;
    const MutableByteSpan want = complete ? MutableByteSpan(&spare, 1) : block_want();
    OTA_TRY_ASSIGN(auto step, decoder_->decode(in, want));
    if (!in.empty() && step.consumed == 0 && step.produced == 0 && !step.frame_done)
      return fail(Error{ErrorCode::kDecompress, "compressed frame makes no progress"});
    consumed_ += step.consumed;
    last_full_ = step.produced == want.size();
    if (step.produced) {
      if (complete) return fail(malformed("records continue past the end of the frame"));
      OTA_TRY(block_got(step.produced));
    }
    if (step.frame_done) {
      if (!frame_complete())
        return fail(malformed(part_ == BlockPart::kBody || lens_count_ || len_bytes_
                                  ? "compressed frame ends inside a block"
                                  : "compressed frame ends before its last record"));
      last_full_ = false;
      OTA_TRY(end_frame());
    }
    return step.consumed;
  }

  Status record(std::uint8_t op, std::uint64_t n) {
    const std::uint64_t room = frame_end_ - new_written_;
    switch (op) {
      case detail::kOpCopy: {
        if (n == 0) n = room;
        if (n > room) return fail(malformed("COPY runs past the end of the frame"));
        if (n > h_.old_size - cursor_) return fail(malformed("COPY reads past the end of OLD"));
        while (n) {
          const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, output_.space().size()));
          OTA_TRY(predict_ahead(k));
          ahead_ -= k;
          OTA_TRY(produced(k));
          cursor_ += k;
          n -= k;
        }
        return ok();
      }
      case detail::kOpAdd:
        if (n == 0 || n > room) return fail(malformed("ADD length is zero or runs past the frame"));
        if (n > h_.old_size - cursor_) return fail(malformed("ADD reads past the end of OLD"));
        remaining_ = n;
        rec_ = Rec::kAdd;
        return ok();
      case detail::kOpInsert:
        if (n == 0 || n > room) return fail(malformed("INSERT length is zero or runs past the frame"));
        realign();
        remaining_ = n;
        rec_ = Rec::kInsert;
        return ok();
      default: {
        std::int64_t delta = detail::unzigzag(n);
        if (delta == 0) return fail(malformed("SEEK by zero"));
        if (delta < 0 ? static_cast<std::uint64_t>(-(delta + 1)) + 1 > cursor_
                      : static_cast<std::uint64_t>(delta) > h_.old_size - cursor_)
          return fail(malformed("SEEK moves outside OLD"));
        cursor_ = static_cast<std::uint64_t>(static_cast<std::int64_t>(cursor_) + delta);
        realign();
        return ok();
      }
    }
  }

  // OLD[off, off + len) from the read-ahead cache (len <= the cache size; the
  // caller checked the range against old_size).
  Result<ByteSpan> old_view(std::uint64_t off, std::size_t len) {
    if (off < cache_off_ || off + len > cache_off_ + cache_len_) {
      cache_off_ = off;
      // The read-ahead stops where reading on costs more (an xz stream's end).
      const std::uint64_t ahead = std::max<std::uint64_t>(off + len, old_.read_ahead_end(off));
      cache_len_ = static_cast<std::size_t>(std::min<std::uint64_t>(cache_.size(), std::min(h_.old_size, ahead) - off));
      if (auto st = old_.read_at(cache_off_, MutableByteSpan(cache_.data(), cache_len_)); !st) {
        cache_len_ = 0;
        return fail(st.error().with_context("reading OLD"));
      }
    }
    return ByteSpan(cache_.data() + (off - cache_off_), len);
  }

  Status emit(ByteSpan data) {
    if (auto st = output_.write(data); !st) return fail(st.error().with_context("writing NEW"));
    return advanced(data.size());
  }

  // n bytes of output_.space() are NEW's next bytes.
  Status produced(std::size_t n) {
    if (auto st = output_.produced(n); !st) return fail(st.error().with_context("writing NEW"));
    return advanced(n);
  }

  Status advanced(std::size_t n) {
    new_written_ += n;
    if (opt_.progress && (new_written_ - last_progress_ >= (1u << 20) || new_written_ == h_.new_size)) {
      last_progress_ = new_written_;
      opt_.progress(new_written_, h_.new_size);
    }
    return ok();
  }

  const Source& old_;
  PatchOptions opt_;
  State state_ = State::kHeader;
  Bytes hdr_;
  PatchHeader h_;
  std::uint64_t consumed_ = 0, new_written_ = 0, frame_ = 0, frame_end_ = 0, cursor_ = 0;
  std::uint64_t last_progress_ = 0;
  Rec rec_ = Rec::kTag;
  std::uint8_t tag_[detail::kMaxVarintSize] = {};
  std::size_t tag_len_ = 0;
  std::uint64_t remaining_ = 0;
  detail::NewOutput output_;
  std::unique_ptr<codec::FrameDecoder> decoder_;  // the frames' decoder: zstd or LZMA2
  Bytes zbuf_, cache_, old_copy_;
  detail::AddressMap map_;
  std::optional<detail::ElfTables> elf_;  // format version 5
  std::optional<detail::MapSectionReader> map_reader_;
  std::size_t last_produced_ = 0;
  // Version 3: the block being read (its lengths, then its streams in block_).
  bool v3_ = false;      // version 3: each frame's mode says its record layout
  bool blocks_ = false;  // the current frame holds record blocks
  BlockPart part_ = BlockPart::kLengths;
  std::uint8_t len_buf_[detail::kMaxVarintSize] = {};
  std::size_t len_bytes_ = 0, lens_count_ = 0, lens_[3] = {};
  Bytes block_;
  std::size_t block_fill_ = 0, block_size_ = 0;
  bool last_full_ = false;
  std::uint64_t cache_off_ = 0;
  std::size_t cache_len_ = 0;
  // The first ahead_ bytes of output_.space() hold OLD[cursor_, cursor_ + ahead_) predicted.
  std::size_t ahead_ = 0, step_ = kPredictFirst;
  bool aligned_ = false;  // the last prediction ahead was at the current alignment
  detail::BaseChecker base_;  // last: its thread stops before the members it reads go
};

}  // namespace

namespace detail {

std::unique_ptr<Patcher> make_plain_patcher(const Source& old_image, Writer& out, PatchOptions options) {
  return std::unique_ptr<Patcher>(new PatcherImpl(old_image, out, std::move(options)));
}

}  // namespace detail

Status apply(const Source& old_image, Reader& patch, Writer& out, PatchOptions options) {
  OTA_TRY_ASSIGN(auto p, Patcher::create(old_image, out, std::move(options)));
  Bytes buf(kFeedBuffer);
  for (;;) {
    auto n = patch.read(buf);
    if (!n) return fail(n.error().with_context("reading the patch"));
    if (*n == 0) break;
    OTA_TRY((p)->feed(ByteSpan(buf.data(), *n)));
  }
  return (p)->finish();
}

}  // namespace ota::delta
