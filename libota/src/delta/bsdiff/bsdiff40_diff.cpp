// BSDIFF40 generation (the cover search of delta/matcher); kept apart from the
// applier so that a patch-only binary (ota-patch) links no suffix array code.
#include <bzlib.h>

#include <algorithm>
#include <cstring>

#include "delta/matcher.hpp"
#include "ota/delta/bsdiff40.hpp"

namespace ota::bsdiff40 {

namespace {

void put_off(std::uint8_t* buf, std::int64_t x) {
  std::uint64_t y = x < 0 ? static_cast<std::uint64_t>(-(x + 1)) + 1 : static_cast<std::uint64_t>(x);
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<std::uint8_t>(y >> (8 * i));
  if (x < 0) buf[7] |= 0x80;
}

Result<Bytes> bz2_compress(const Bytes& in) {
  bz_stream s{};
  if (BZ2_bzCompressInit(&s, 9, 0, 0) != BZ_OK)
    return fail(ErrorCode::kOutOfMemory, "bzip2: cannot start a compressor");
  Bytes out(in.size() + in.size() / 100 + 600);
  s.next_in = const_cast<char*>(reinterpret_cast<const char*>(in.data()));
  s.avail_in = static_cast<unsigned>(0);
  std::size_t fed = 0, produced = 0;
  int rc = BZ_RUN_OK;
  for (;;) {
    if (s.avail_in == 0 && fed < in.size()) {
      unsigned n = static_cast<unsigned>(std::min<std::size_t>(in.size() - fed, 1u << 30));
      s.next_in = const_cast<char*>(reinterpret_cast<const char*>(in.data() + fed));
      s.avail_in = n;
      fed += n;
    }
    if (produced == out.size()) out.resize(out.size() * 2);
    s.next_out = reinterpret_cast<char*>(out.data() + produced);
    s.avail_out = static_cast<unsigned>(std::min<std::size_t>(out.size() - produced, 1u << 30));
    unsigned before = s.avail_out;
    rc = BZ2_bzCompress(&s, (fed == in.size() && s.avail_in == 0) ? BZ_FINISH : BZ_RUN);
    produced += before - s.avail_out;
    if (rc == BZ_STREAM_END) break;
    if (rc != BZ_RUN_OK && rc != BZ_FINISH_OK) {
      BZ2_bzCompressEnd(&s);
      return fail(ErrorCode::kInternal, "bzip2 compression failed");
    }
  }
  BZ2_bzCompressEnd(&s);
  out.resize(produced);
  return out;
}

}  // namespace

Result<Stats> diff(ByteSpan old_image, ByteSpan new_image, Writer& patch) {
  auto index = delta::detail::build_suffix_index(old_image);
  std::vector<delta::detail::Block> blocks;
  delta::detail::match_range(*index, old_image, new_image, 0, new_image.size(), blocks);

  // Triples (add, insert, seek); BSDIFF40 starts at OLD offset 0, and a block
  // that begins elsewhere is reached by the previous triple's seek.
  struct Triple {
    std::int64_t add, insert, seek;
  };
  std::vector<Triple> triples;
  Bytes dif, extra;
  std::uint64_t cursor = 0;
  for (const auto& b : blocks) {
    if (b.add_len) {
      const std::int64_t seek = static_cast<std::int64_t>(b.old_pos) - static_cast<std::int64_t>(cursor);
      if (seek != 0) {
        if (triples.empty()) triples.push_back({0, 0, 0});
        triples.back().seek += seek;
      }
      cursor = b.old_pos + b.add_len;
    }
    triples.push_back({static_cast<std::int64_t>(b.add_len), static_cast<std::int64_t>(b.insert_len), 0});
    for (std::uint64_t k = 0; k < b.add_len; ++k)
      dif.push_back(static_cast<std::uint8_t>(new_image[b.new_pos + k] - old_image[b.old_pos + k]));
    extra.insert(extra.end(), new_image.begin() + static_cast<std::ptrdiff_t>(b.new_pos + b.add_len),
                 new_image.begin() + static_cast<std::ptrdiff_t>(b.new_pos + b.add_len + b.insert_len));
  }
  Bytes ctrl;
  ctrl.reserve(triples.size() * 24);
  for (const Triple& t : triples) {
    std::uint8_t raw[24];
    put_off(raw, t.add);
    put_off(raw + 8, t.insert);
    put_off(raw + 16, t.seek);
    ctrl.insert(ctrl.end(), raw, raw + 24);
  }
  OTA_TRY_ASSIGN(auto zc, bz2_compress(ctrl));
  OTA_TRY_ASSIGN(auto zd, bz2_compress(dif));
  OTA_TRY_ASSIGN(auto ze, bz2_compress(extra));

  std::uint8_t header[32];
  std::memcpy(header, kMagic, 8);
  put_off(header + 8, static_cast<std::int64_t>(zc.size()));
  put_off(header + 16, static_cast<std::int64_t>(zd.size()));
  put_off(header + 24, static_cast<std::int64_t>(new_image.size()));
  OTA_TRY(patch.write(ByteSpan(header, 32)));
  OTA_TRY(patch.write(zc));
  OTA_TRY(patch.write(zd));
  OTA_TRY(patch.write(ze));
  return Stats{32 + zc.size() + zd.size() + ze.size(), triples.size()};
}

}  // namespace ota::bsdiff40
