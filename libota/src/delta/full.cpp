// The full-image payload sink: zstd frames decoded straight into the output
// buffer (each frame boundary a checkpoint), or stored bytes handed to the
// Writer where they are (a checkpoint every stored_checkpoint bytes).
#include <algorithm>

#include "delta/codec/zstd.hpp"
#include "delta/new_output.hpp"
#include "ota/delta/sink.hpp"

namespace ota::delta {

namespace {

class FullImageDecoder final : public PayloadSink {
 public:
  FullImageDecoder(Writer& out, FullImageOptions o) : o_(std::move(o)), output_(out, false) {}

  Status start() {
    if (o_.zstd) {
      OTA_TRY_ASSIGN(dec_, codec::ZstdDecoder::create(std::max<int>(o_.window_log, 10)));
    }
    if (o_.resume) {
      const ResumePoint& rp = *o_.resume;
      if (rp.new_offset > o_.target_size)
        return fail(ErrorCode::kUsage, "resume point beyond the payload");
      if (rp.new_offset > 0) {
        if (!o_.written_prefix)
          return fail(ErrorCode::kUsage, "resuming needs the NEW bytes already written (written_prefix)");
        OTA_TRY_CTX(hash_range(*o_.written_prefix, 0, rp.new_offset, output_.hasher()), "reading back NEW");
      }
      output_.resume_at(rp.new_offset);
      written_ = last_checkpoint_ = rp.new_offset;
      frame_ = rp.frame;
    }
    return ok();
  }

  std::uint64_t next_offset() const override {
    return o_.resume && offset_ < o_.resume->patch_offset ? o_.resume->patch_offset : offset_;
  }

  Status skip(std::uint64_t n) override {
    if (!o_.resume || offset_ + n > o_.resume->patch_offset)
      return fail(ErrorCode::kUsage, "skip() only moves up to the resume offset");
    offset_ += n;
    return ok();
  }

  std::uint64_t new_written() const override { return output_.written(); }

  Status feed(ByteSpan data) override {
    if (!status_) return status_;
    status_ = feed_impl(data);
    if (!status_) output_.abandon();
    return status_;
  }

  // The end of the payload: every frame complete, the image's size and hash.
  Status finish() override {
    if (!status_) return status_;
    if (in_frame_) return status_ = fail(ErrorCode::kDecompress, o_.name + ": the zstd frame is truncated");
    auto digest = output_.finish();
    if (!digest) return status_ = fail(digest.error().with_context("writing NEW"));
    if (written_ != o_.target_size || *digest != o_.target_hash)
      return status_ = fail(ErrorCode::kPayloadMismatch, o_.name + " does not produce the manifest's target image");
    return ok();
  }

 private:
  Status feed_impl(ByteSpan data) {
    if (o_.resume && offset_ < o_.resume->patch_offset) {  // bytes before the resume point
      const std::size_t k =
          static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), o_.resume->patch_offset - offset_));
      offset_ += k;
      data = data.subspan(k);
    }
    if (data.empty()) return ok();
    if (!dec_) {  // stored: the caller's bytes go to the Writer as they are
      OTA_TRY(room_for(data.size()));
      OTA_TRY(output_.write(data));
      offset_ += data.size();
      advanced(data.size());
      if (written_ - last_checkpoint_ >= o_.stored_checkpoint) OTA_TRY(checkpoint());
      return ok();
    }
    while (true) {
      if (!in_frame_) {
        if (data.empty()) return ok();
        OTA_TRY(dec_->reset());
        in_frame_ = true;
      }
      const MutableByteSpan space = output_.space();
      auto step = dec_->decode(data, space);
      if (!step) return fail(step.error().with_context(o_.name));
      data = data.subspan(step->consumed);
      offset_ += step->consumed;
      if (step->produced) {
        OTA_TRY(room_for(step->produced));
        OTA_TRY(output_.produced(step->produced));
        advanced(step->produced);
      }
      if (step->frame_done) {
        in_frame_ = false;
        ++frame_;
        OTA_TRY(checkpoint());
        continue;
      }
      if (data.empty() && step->produced < space.size()) return ok();
    }
  }

  Status room_for(std::size_t n) const {
    if (n > o_.target_size - written_)
      return fail(ErrorCode::kPayloadMismatch, o_.name + " is longer than the target image");
    return ok();
  }

  void advanced(std::size_t n) {
    written_ += n;
  }

  // A frame boundary: every NEW byte before it reaches the Writer, then the caller checkpoints.
  Status checkpoint() {
    if (auto st = output_.drain(); !st) return fail(st.error().with_context("writing NEW"));
    last_checkpoint_ = written_;
    if (!o_.on_frame) return ok();
    return o_.on_frame(ResumePoint{frame_, offset_, written_});
  }

  FullImageOptions o_;
  detail::NewOutput output_;
  std::unique_ptr<codec::ZstdDecoder> dec_;
  Status status_ = ok();
  bool in_frame_ = false;
  std::uint64_t offset_ = 0, written_ = 0, frame_ = 0, last_checkpoint_ = 0;
};

}  // namespace

Result<std::unique_ptr<PayloadSink>> make_full_image_decoder(Writer& out, FullImageOptions options) {
  auto d = std::make_unique<FullImageDecoder>(out, std::move(options));
  OTA_TRY(d->start());
  return std::unique_ptr<PayloadSink>(std::move(d));
}

}  // namespace ota::delta
