// Shortcuts over the delta API for tests: make a patch in memory, apply one in
// memory (whole, or fed in chunks), and print Errors readably in gtest output.
#pragma once

#include <functional>
#include <ostream>

#include "ota/delta/delta.hpp"
#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota {
// gtest prints Errors and Compressions with these.
void PrintTo(const Error& error, std::ostream* os);
namespace delta {
void PrintTo(Compression compression, std::ostream* os);
}  // namespace delta
}  // namespace ota

namespace ota::test {

// delta::diff into a vector.
Result<Bytes> make_patch(ByteSpan old_image, ByteSpan new_image, const delta::DiffOptions& options = {});

// Options for small, fast test patches: zstd level 3 unless told otherwise.
delta::DiffOptions fast_options(delta::Compression compression = delta::Compression::kZstd,
                                std::uint8_t frame_log = delta::kDefaultFrameLog);

// delta::apply from memory into memory.
Result<Bytes> apply_patch(ByteSpan old_image, ByteSpan patch, delta::PatchOptions options = {});

// Feeds patch to a Patcher in chunks whose sizes next_chunk() chooses (it is
// called with the bytes left and returns 1..left), then finish().
Result<Bytes> apply_in_chunks(ByteSpan old_image, ByteSpan patch,
                              const std::function<std::size_t(std::size_t left)>& next_chunk,
                              delta::PatchOptions options = {});

// A Writer that accepts `limit` bytes and then fails like a full disk (kIo).
class FullDiskWriter final : public Writer {
 public:
  explicit FullDiskWriter(std::uint64_t limit) : limit_(limit) {}
  Status write(ByteSpan data) override {
    if (pos_ + data.size() > limit_) return fail(ErrorCode::kIo, "no space left on device");
    pos_ += data.size();
    return ok();
  }
  std::uint64_t position() const override { return pos_; }

 private:
  std::uint64_t limit_, pos_ = 0;
};

// "code_name: message" or "ok".
std::string describe(const Status& status);

}  // namespace ota::test
