// Internal: the patcher's two halves. Patcher::create (recompress_patch.cpp)
// looks at the patch's version byte: version 6 (xz streams re-encoded,
// delta/xz_tables.hpp) wraps a plain patcher that works between the expanded
// images; every other version is the plain patcher itself (patch.cpp).
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "ota/delta/delta.hpp"

namespace ota::delta::detail {

// What both patchers share: the first error is sticky, and on it failed()
// runs once (abandon the output, name a wrong OLD as the cause).
class StickyPatcher : public Patcher {
 public:
  Status feed(ByteSpan chunk) final {
    if (!status_) return status_;
    status_ = feed_impl(chunk);
    if (!status_) failed();
    return status_;
  }
  Status finish() final {
    if (!status_) return status_;
    status_ = finish_impl();
    if (!status_) failed();
    return status_;
  }

 protected:
  virtual Status feed_impl(ByteSpan chunk) = 0;
  virtual Status finish_impl() = 0;
  // Called with the error in status_, which it may replace.
  virtual void failed() = 0;

  Status status_ = ok();
};

// Gathers a patch header from the chunks fed: moves what in holds of it to
// buf (advancing in and consumed). Returns the header once buf holds all of
// it (buf then holds exactly the header), nullopt while it is incomplete, or
// parse_header's error.
Result<std::optional<PatchHeader>> gather_header(Bytes& buf, ByteSpan& in, std::uint64_t& consumed);

// A version-6 header (delta/xz_tables.hpp) around the expanded images' own.
PatchHeader recompress_header(const PatchHeader& inner, std::uint64_t old_size, std::uint64_t new_size,
                              const Digest& old_hash, const Digest& new_hash);

std::unique_ptr<Patcher> make_plain_patcher(const Source& old_image, Writer& out, PatchOptions options);

}  // namespace ota::delta::detail
