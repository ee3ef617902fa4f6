// The patcher suites' fixture (delta_patcher_test, delta_base_check_test): a
// patch between two related images, and a Source that counts its reads.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"

namespace ota {
namespace {  // each test file its own copy

using delta::Compression;

struct Fixture {
  Bytes old_image;
  Bytes new_image;
  Bytes patch;
};

Fixture make_fixture(Compression compression = Compression::kZstd, std::uint8_t frame_log = 12,
                     std::size_t size = 40'000) {
  Fixture f;
  f.old_image = test::structured_bytes(size, 200);
  f.new_image = test::with_insertion(test::with_random_edits(f.old_image, 60, 201), size / 3,
                                     test::random_bytes(500, 202));
  auto patch = test::make_patch(f.old_image, f.new_image, test::fast_options(compression, frame_log));
  EXPECT_TRUE(patch);
  if (patch) f.patch = *patch;
  return f;
}

// Counts the bytes read through it; optionally fails every read.
class CountingSource final : public Source {
 public:
  explicit CountingSource(ByteSpan data, bool broken = false) : inner_(data), broken_(broken) {}
  std::uint64_t size() const override { return inner_.size(); }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override {
    if (broken_) return fail(ErrorCode::kIo, "bad sector");
    bytes_read += out.size();
    return inner_.read_at(offset, out);
  }
  mutable std::uint64_t bytes_read = 0;

 private:
  MemorySource inner_;
  bool broken_;
};

}  // namespace
}  // namespace ota
