// libFuzzer target: an arbitrary patch against one of two fixed 4 KiB OLDs
// (random bytes, or code-like words that every predictor finds sites in), through the
// streaming delta::Patcher (fed in chunks whose sizes come from the input) and
// through bsdiff40::apply. See fuzz_input.hpp for the input layout.
//
// Oracles beyond "no crash, no sanitizer report": a patch the Patcher accepts
// must have produced exactly new_size bytes with the header's NEW hash; one
// bsdiff40::apply accepts must have produced exactly the declared NEW size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fuzz_input.hpp"
#include "ota/delta/bsdiff40.hpp"
#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"

namespace {

using namespace ota;

// A VectorWriter that refuses to grow past a cap: a few bytes of patch can
// legitimately declare gigabytes of NEW (COPY to end, zstd, bzip2), and the
// fuzzer's memory limit is not what is being tested.
class CappedWriter final : public Writer {
 public:
  static constexpr std::uint64_t kCap = 1u << 20;
  Status write(ByteSpan data) override {
    if (inner_.position() + data.size() > kCap) return fail(ErrorCode::kLimitExceeded, "fuzz output cap");
    return inner_.write(data);
  }
  std::uint64_t position() const override { return inner_.position(); }
  const Bytes& data() const { return inner_.data(); }

 private:
  VectorWriter inner_;
};

const Bytes& old_image(std::uint8_t control) {
  static const Bytes old = fuzz::fixed_old(), code = fuzz::fixed_code_old();
  return (control & fuzz::kCodeOld) ? code : old;
}

void check(bool condition) {
  if (!condition) std::abort();
}

void run_delta(std::uint8_t control, ByteSpan chunk_sizes, ByteSpan patch) {
  MemorySource old_source(old_image(control));
  CappedWriter out;
  delta::PatchOptions opt;
  opt.base_check = (control & fuzz::kVerifyOldOff) == 0 ? delta::BaseCheck::kHashFirst : delta::BaseCheck::kNone;
  opt.max_window_log = fuzz::kWindowLogs[(control >> 4) & 3];
  opt.hash_in_background = (control & fuzz::kBackground) != 0;
  std::uint64_t frames_seen = 0, last_new = 0;
  opt.on_frame = [&](const delta::ResumePoint& p) {
    // Frames in order; a version-6 patch reports only the boundaries where
    // the real NEW is complete, so it may skip some.
    check(p.frame > frames_seen);
    frames_seen = p.frame;
    check(p.new_offset > last_new);
    last_new = p.new_offset;
    return ok();
  };
  auto patcher = delta::Patcher::create(old_source, out, opt);
  if (!patcher) return;
  delta::Patcher& p = **patcher;

  Status st = ok();
  std::size_t pos = 0, turn = 0;
  while (st && pos < patch.size()) {
    std::size_t n = chunk_sizes.empty() ? patch.size() - pos : std::size_t{chunk_sizes[turn++ % chunk_sizes.size()]} + 1;
    n = std::min(n, patch.size() - pos);
    st = p.feed(patch.subspan(pos, n));
    pos += n;
  }
  if (st) st = p.finish();
  check(p.new_written() == out.position());
  if (st) {
    const delta::PatchHeader* h = p.header();
    check(h != nullptr);
    check(out.position() == h->new_size);
    check(content_hash(out.data()) == h->new_hash);
    check(frames_seen == h->frame_count());
  } else {
    // Errors are sticky.
    Status again = p.finish();
    check(!again && again.error().code == st.error().code);
  }
}

void run_bsdiff40(std::uint8_t control, ByteSpan patch) {
  MemorySource old_source(old_image(control)), patch_source(patch);
  CappedWriter out;
  Status st = bsdiff40::apply(old_source, patch_source, out);
  if (st) {
    auto declared = bsdiff40::new_size(patch_source);
    check(declared.has_value() && *declared == out.position());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ByteSpan in(data, size);
  const std::uint8_t control = in[0];
  const std::size_t k = std::min<std::size_t>(control & 7, in.size() - 1);
  ByteSpan chunk_sizes = in.subspan(1, k);
  ByteSpan patch = in.subspan(1 + k);

  (void)delta::parse_header(patch);
  run_delta(control, chunk_sizes, patch);
  run_bsdiff40(control, patch);
  return 0;
}
