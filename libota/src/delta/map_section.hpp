// Internal: reads the address map section of a patch as it streams in
// (docs/formats.md, "Address map section": mode byte, ULEB128 stored size,
// stored bytes, zstd-compressed or raw), bounded by kMaxMapSection, and
// decodes it into an AddressMap checked against OLD.
#pragma once

#include <cstdint>

#include "delta/predict.hpp"
#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta::detail {

class MapSectionReader {
 public:
  MapSectionReader(Compression compression, std::uint64_t old_size, std::uint64_t max_entries)
      : compression_(compression), old_size_(old_size), max_entries_(max_entries) {}

  // Consumes what belongs to the section from `in`; returns how many bytes
  // were used. Once done(), the map is in take().
  Result<std::size_t> feed(ByteSpan in);
  bool done() const { return done_; }
  AddressMap take() { return std::move(map_); }

 private:
  Compression compression_;
  std::uint64_t old_size_, max_entries_;
  Bytes buf_;
  std::uint8_t mode_ = 0;
  std::uint64_t stored_ = UINT64_MAX;  // stored size, once its varint is complete
  bool done_ = false;
  AddressMap map_;
};

}  // namespace ota::delta::detail
