// Patcher::create, and the patcher of format version 6 (xz streams expanded
// and re-encoded; docs/formats.md, "Version 6: xz streams").

#include <cstring>
#include <optional>

#include "core/varint.hpp"
#include "delta/base_check.hpp"
#include "delta/format.hpp"
#include "delta/recompress.hpp"
#include "delta/xz_tables.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta {

namespace {

using ::ota::detail::get_varint;
using ::ota::detail::VarintStatus;

// Version 6: the header (real images, then the expanded images' header), the
// tables section, then the inner patch's body. The inner patcher is fed its
// own header and body; the tables are this class's.
class RecompressPatcher final : public detail::StickyPatcher {
 public:
  RecompressPatcher(const Source& old_image, Writer& out, PatchOptions opt)
      : old_(old_image), out_(out), opt_(std::move(opt)), base_(old_, opt_.base_check, opt_.known_old_hash) {}

  const PatchHeader* header() const override { return state_ == State::kHeader ? nullptr : &h_; }
  std::uint64_t new_written() const override { return rc_ ? rc_->real_written() : 0; }
  std::uint64_t next_offset() const override { return inner_ ? inner_->next_offset() + shift_ : consumed_; }
  Status skip(std::uint64_t n) override {
    if (!status_) return status_;
    if (!inner_) return status_ = fail(ErrorCode::kUsage, "skip() only moves up to the resume offset");
    return inner_->skip(n);
  }

 private:
  enum class State { kHeader, kTablesLength, kTables, kInner };

  Status feed_impl(ByteSpan in) override {
    while (!in.empty()) {
      switch (state_) {
        case State::kHeader: {
          OTA_TRY_ASSIGN(auto got, detail::gather_header(hdr_, in, consumed_));
          if (!got) return ok();
          h_ = *got;
          OTA_TRY(start());
          state_ = State::kTablesLength;
          break;
        }
        case State::kTablesLength: {
          len_buf_.push_back(in[0]);
          in = in.subspan(1);
          ++consumed_;
          std::size_t used = 0;
          switch (get_varint(len_buf_, tables_size_, used)) {
            case VarintStatus::kNeedMore: break;
            case VarintStatus::kInvalid:
              return fail(ErrorCode::kPatchMalformed, "invalid length of the xz tables");
            case VarintStatus::kOk:
              if (tables_size_ > detail::kMaxXzTablesSize)
                return fail(ErrorCode::kLimitExceeded, "the xz tables are over the size limit");
              state_ = State::kTables;
              if (tables_size_ == 0) OTA_TRY(tables_done());
              break;
          }
          break;
        }
        case State::kTables: {
          const std::size_t n = static_cast<std::size_t>(
              std::min<std::uint64_t>(in.size(), tables_size_ - tables_.size()));
          tables_.insert(tables_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
          in = in.subspan(n);
          consumed_ += n;
          if (tables_.size() == tables_size_) OTA_TRY(tables_done());
          break;
        }
        case State::kInner:
          return inner_->feed(in);
      }
    }
    return ok();
  }

  Status start() {
    if (old_.size() != h_.old_size)
      return fail(ErrorCode::kOldMismatch, "OLD is " + std::to_string(old_.size()) +
                                               " bytes but the patch was made from " +
                                               std::to_string(h_.old_size) + " bytes");
    return base_.start(h_);
  }

  // The tables are in: the inner patcher starts, fed the inner header.
  Status tables_done() {
    OTA_TRY_ASSIGN(auto t, detail::parse_tables(tables_, h_));
    tables_.clear();
    tables_.shrink_to_fit();
    if (t.encoder_memory > opt_.max_xz_encoder_memory)
      return fail(ErrorCode::kLimitExceeded, "re-encoding NEW's xz streams needs " +
                                                 std::to_string(t.encoder_memory) + " bytes, over the limit of " +
                                                 std::to_string(opt_.max_xz_encoder_memory));
    t_ = std::move(t);
    old_x_.emplace(old_, t_.old_pieces, h_.expanded_old_size, detail::xz_cache_slots(t_.old_pieces));
    rc_.emplace(out_, t_.new_pieces);
    // The inner header starts after "OTD" 6, the two real sizes and hashes.
    std::size_t prefix = 4;
    for (int i = 0; i < 2; ++i) {
      std::uint64_t v = 0;
      std::size_t used = 0;
      (void)get_varint(ByteSpan(hdr_).subspan(prefix), v, used);
      prefix += used;
    }
    prefix += 64;
    shift_ = consumed_ - (hdr_.size() - prefix);  // outer offset = inner offset + shift_ (after the inner header)

    PatchOptions inner = opt_;
    inner.base_check = BaseCheck::kNone;  // OLD's real bytes are this patcher's to check
    inner.written_prefix = nullptr;
    inner.resume.reset();
    OTA_TRY(map_resume(inner));
    inner.progress = nullptr;
    if (opt_.progress)
      inner.progress = [this](std::uint64_t, std::uint64_t) { opt_.progress(rc_->real_written(), h_.new_size); };
    inner.on_frame = nullptr;
    if (opt_.on_frame)
      inner.on_frame = [this](const ResumePoint& rp) -> Status {
        // Only where NEW's real bytes are complete (the generator pads so
        // that every frame boundary is one).
        if (!rc_->at_boundary()) return ok();
        return opt_.on_frame(ResumePoint{rp.frame, rp.patch_offset + shift_, rc_->real_written()});
      };
    inner_ = detail::make_plain_patcher(*old_x_, *rc_, std::move(inner));
    state_ = State::kInner;
    return inner_->feed(ByteSpan(hdr_).subspan(prefix));
  }

  // A resume point of the real NEW, as one of the expanded NEW.
  Status map_resume(PatchOptions& inner) {
    if (!opt_.resume || (opt_.resume->frame == 0 && opt_.resume->new_offset == 0)) return ok();
    const ResumePoint& rp = *opt_.resume;
    const std::uint64_t frames = h_.frame_count();
    const std::uint64_t exp = rp.frame > frames ? UINT64_MAX : std::min(h_.expanded_new_size, rp.frame << h_.frame_log);
    const auto real = exp == UINT64_MAX ? std::nullopt : detail::real_offset_at(t_.new_pieces, exp);
    if (!real || *real != rp.new_offset || rp.patch_offset < consumed_)
      return fail(ErrorCode::kUsage, "resume point (frame " + std::to_string(rp.frame) + ", NEW offset " +
                                         std::to_string(rp.new_offset) + ") does not fit this patch");
    if (!opt_.written_prefix || opt_.written_prefix->size() < rp.new_offset)
      return fail(ErrorCode::kUsage, "resuming needs the NEW bytes already written (written_prefix)");
    OTA_TRY_CTX(hash_range(*opt_.written_prefix, 0, rp.new_offset, rc_->hasher()), "reading back NEW");
    rc_->resume_at(exp, rp.new_offset);
    new_x_.emplace(*opt_.written_prefix, t_.new_pieces, h_.expanded_new_size, 2, /*lenient=*/true);
    inner.written_prefix = &*new_x_;
    inner.resume = ResumePoint{rp.frame, rp.patch_offset - shift_, exp};
    return ok();
  }

  Status finish_impl() override {
    if (!inner_)
      return fail(ErrorCode::kPatchTruncated, state_ == State::kHeader && hdr_.empty()
                                                  ? "patch is empty"
                                                  : "patch ends inside its header or xz tables");
    OTA_TRY(inner_->finish());
    OTA_TRY(base_.result());
    const Digest got = rc_->finish();
    if (rc_->real_written() != h_.new_size || got != h_.new_hash)
      return fail(ErrorCode::kNewMismatch, "re-encoded result has BLAKE2b-256 " + to_hex(got) + ", expected " +
                                               to_hex(h_.new_hash));
    return ok();
  }

  void failed() override { status_ = base_.explain(std::move(status_), state_ != State::kHeader); }

  const Source& old_;
  Writer& out_;
  PatchOptions opt_;
  State state_ = State::kHeader;
  Bytes hdr_, len_buf_, tables_;
  PatchHeader h_;
  std::uint64_t consumed_ = 0, tables_size_ = 0, shift_ = 0;
  detail::XzTables t_;
  std::optional<detail::ExpandedSource> old_x_, new_x_;
  std::optional<detail::Recompressor> rc_;
  std::unique_ptr<Patcher> inner_;
  detail::BaseChecker base_;  // last: its thread stops before the members it reads go
};

// Waits for the version byte, then is the patcher of that version.
class PatcherFront final : public Patcher {
 public:
  PatcherFront(const Source& old_image, Writer& out, PatchOptions opt) : old_(old_image), out_(out), opt_(std::move(opt)) {}

  Status feed(ByteSpan chunk) override {
    if (!impl_) {
      const std::size_t n = std::min(chunk.size(), kMagicSize - head_.size());
      head_.insert(head_.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      chunk = chunk.subspan(n);
      if (head_.size() < kMagicSize) return ok();
      choose();
      OTA_TRY(impl_->feed(head_));
    }
    return chunk.empty() ? ok() : impl_->feed(chunk);
  }
  Status finish() override {
    if (!impl_) {
      choose();
      if (!head_.empty()) OTA_TRY(impl_->feed(head_));
    }
    return impl_->finish();
  }
  const PatchHeader* header() const override { return impl_ ? impl_->header() : nullptr; }
  std::uint64_t new_written() const override { return impl_ ? impl_->new_written() : 0; }
  std::uint64_t next_offset() const override { return impl_ ? impl_->next_offset() : head_.size(); }
  Status skip(std::uint64_t n) override {
    if (!impl_) return fail(ErrorCode::kUsage, "skip() only moves up to the resume offset");
    return impl_->skip(n);
  }

 private:
  void choose() {
    const bool v6 = head_.size() == kMagicSize && std::memcmp(head_.data(), detail::kMagic, 3) == 0 &&
                    head_[3] == kRecompressFormatVersion;
    if (v6) impl_ = std::make_unique<RecompressPatcher>(old_, out_, std::move(opt_));
    else impl_ = detail::make_plain_patcher(old_, out_, std::move(opt_));
  }

  const Source& old_;
  Writer& out_;
  PatchOptions opt_;
  Bytes head_;
  std::unique_ptr<Patcher> impl_;
};

}  // namespace

Result<std::unique_ptr<Patcher>> Patcher::create(const Source& old_image, Writer& out, PatchOptions options) {
  return std::unique_ptr<Patcher>(new PatcherFront(old_image, out, std::move(options)));
}

}  // namespace ota::delta
