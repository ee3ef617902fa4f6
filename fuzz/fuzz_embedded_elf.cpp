// libFuzzer target: delta::detail::find_embedded_elf, the generator's scan for
// ELF images inside a larger image (a root filesystem), over arbitrary bytes,
// and keep_covers_inside over covers taken from the input.
//
// Oracles beyond "no crash, no sanitizer report": every region lies inside the
// input, starts at a 512-byte aligned offset, is not empty and comes after the
// previous one; every kept cover lies inside one region and inside the cover it
// came from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "delta/predict.hpp"

using namespace ota;
using delta::detail::EmbeddedElf;
using delta::detail::MapEntry;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan input(data, size);
  const std::vector<EmbeddedElf> regions = delta::detail::find_embedded_elf(input);
  std::uint64_t last_end = 0;
  for (const EmbeddedElf& r : regions) {
    if (r.offset % 512 || r.size == 0 || r.offset < last_end || r.offset > size || r.size > size - r.offset ||
        r.predictor == delta::Predictor::kNone)
      std::abort();
    last_end = r.offset + r.size;
  }
  // Covers from the input's bytes: (start, length) pairs of 16 bits each.
  std::vector<MapEntry> covers;
  for (std::size_t i = 0; i + 4 <= size && covers.size() < 64; i += 4) {
    covers.push_back({static_cast<std::uint64_t>(data[i] | data[i + 1] << 8) * 8,
                      static_cast<std::uint64_t>(data[i + 2] | data[i + 3] << 8), static_cast<std::int64_t>(i)});
  }
  const std::vector<MapEntry> original = covers;
  delta::detail::keep_covers_inside(regions, covers);
  for (const MapEntry& c : covers) {
    bool in_region = false, in_cover = false;
    for (const EmbeddedElf& r : regions)
      in_region |= c.old_start >= r.offset && c.old_start + c.length <= r.offset + r.size;
    for (const MapEntry& o : original)
      in_cover |= o.shift == c.shift && c.old_start >= o.old_start && c.old_start + c.length <= o.old_start + o.length;
    if (!in_region || !in_cover || c.length == 0) std::abort();
  }
  return 0;
}
