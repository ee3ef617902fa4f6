// libFuzzer target: delta::detail::read_elf_tables (format version 5: the
// tables the x86 and arm64 predictors re-point, read from OLD's headers and
// .eh_frame records) over arbitrary bytes taken as OLD, and the prediction of
// those tables over all of it.
//
// Oracles beyond "no crash, no sanitizer report": every range the reader
// returns lies inside the input, the pointer ranges are sorted and disjoint,
// and the prediction made in pieces, each given only its window of OLD (8
// bytes either side, in a buffer of its own), equals the prediction made over
// the whole input at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "delta/elf_tables.hpp"
#include "delta/predict.hpp"

using namespace ota;
using delta::detail::AddressMap;
using delta::detail::ElfTables;
using delta::detail::MapEntry;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan input(data, size);
  auto read = delta::detail::read_elf_tables(MemorySource(input));
  check(read.has_value());
  const ElfTables& t = *read;
  for (const auto& s : t.segments) check(s.offset <= size && s.filesz <= size - s.offset);
  check(t.table_begin <= t.table_end && t.table_end <= size && (t.table_end - t.table_begin) % 8 == 0);
  check(t.eh_begin <= t.eh_end && t.eh_end <= size);
  check(t.fde_sites.empty() || t.fde_sites.size() * 64 * (std::uint64_t{1} << t.fde_shift) >= t.eh_end - t.eh_begin);
  std::uint64_t last = 0;
  for (const auto& r : t.pointer_ranges) {
    check(r.first >= last && r.first < r.second && r.second <= size);
    last = r.second;
  }
  if (size == 0) return 0;
  // A map that moves the first half up and the second half down.
  const AddressMap map = AddressMap::from_covers({{0, (size + 1) / 2, 24}, {(size + 1) / 2, size / 2, 0}}, 0);
  const std::int64_t delta = 40;
  Bytes whole(size), pieces(size);
  delta::detail::predict(delta::Predictor::kX86, map, input, 0, size, 0, size, delta, whole.data(), &t);
  const std::size_t step = 1 + data[0] % 61;
  for (std::size_t q = 0; q < size; q += step) {
    const std::size_t n = std::min(step, size - q);
    const std::size_t lo = q >= 8 ? q - 8 : 0, hi = std::min(size, q + n + 8);
    const Bytes window(data + lo, data + hi);
    delta::detail::predict(delta::Predictor::kX86, map, window, lo, size, q, n, delta, pieces.data() + q, &t);
  }
  check(whole == pieces);
  return 0;
}
