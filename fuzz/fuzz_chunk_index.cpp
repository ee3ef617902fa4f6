// libFuzzer target: arbitrary bytes as a chunk index (docs/formats.md,
// "Chunks payload") and as data to cut into content-defined chunks.
//
// Oracles beyond "no crash, no sanitizer report":
// - an index that parses encodes back to exactly the same bytes (nothing is
//   ignored), its plain sizes add up to its target size, and each entry is
//   within the declared bounds;
// - next_cut() over the bytes, with parameters taken from the first bytes,
//   returns chunks within [min, max] (the last one possibly shorter) that
//   cover the input, and the Chunker fed in two pieces cuts the same.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ota/release/chunks.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan in(data, size);
  auto ix = chunks::parse_index(in);
  if (ix) {
    check(chunks::encode_index(*ix) == Bytes(in.begin(), in.end()));
    std::uint64_t plain = 0;
    for (const auto& e : ix->entries) {
      check(e.plain_size >= 1 && e.plain_size <= ix->params.max_size);
      check(e.mode == chunks::Mode::kRaw ? e.stored_size == e.plain_size : e.stored_size < e.plain_size);
      plain += e.plain_size;
    }
    check(plain == ix->target_size);
  }
  if (size < 4) return 0;
  chunks::Params p;
  p.min_size = 64u + data[0] * 8u;
  p.avg_bits = static_cast<std::uint8_t>(6 + data[1] % 10);
  p.max_size = p.min_size + data[2] * 64u;
  check(static_cast<bool>(chunks::check_params(p)));
  const ByteSpan rest = in.subspan(3);
  std::vector<std::size_t> cuts;
  for (std::size_t at = 0; at < rest.size();) {
    const std::size_t n = chunks::next_cut(rest.subspan(at), p);
    check(n >= 1 && n <= p.max_size);
    if (at + n < rest.size()) check(n >= p.min_size);
    cuts.push_back(n);
    at += n;
  }
  chunks::Chunker ch(p);
  std::vector<std::size_t> fed;
  auto on = [&](std::uint64_t, ByteSpan b) -> Status {
    fed.push_back(b.size());
    return ok();
  };
  const std::size_t half = rest.size() / 2;
  check(static_cast<bool>(ch.feed(rest.subspan(0, half), on)));
  check(static_cast<bool>(ch.feed(rest.subspan(half), on)));
  check(static_cast<bool>(ch.finish(on)));
  check(fed == cuts);
  return 0;
}
