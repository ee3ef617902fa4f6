#include "delta/map_section.hpp"

#include <algorithm>
#include <string>

#include "core/varint.hpp"
#include "delta/codec/zstd.hpp"
#include "delta/format.hpp"

namespace ota::delta::detail {

namespace {
Error malformed(std::string what) { return Error{ErrorCode::kPatchMalformed, std::move(what)}; }
}  // namespace

Result<std::size_t> MapSectionReader::feed(ByteSpan in) {
  std::size_t pos = 0;
  while (pos < in.size() && stored_ == UINT64_MAX) {
    buf_.push_back(in[pos++]);
    if (buf_.size() == 1) {
      if (buf_[0] != kFrameRaw && buf_[0] != kFrameZstd)
        return fail(malformed("unknown section mode " + std::to_string(buf_[0])));
      continue;
    }
    std::uint64_t v = 0;
    std::size_t used = 0;
    auto st = get_varint(ByteSpan(buf_).subspan(1), v, used);
    if (st == VarintStatus::kInvalid) return fail(malformed("invalid section size"));
    if (st == VarintStatus::kOk) {
      if (v > kMaxMapSection) return fail(ErrorCode::kLimitExceeded, "section is too large");
      mode_ = buf_[0];
      stored_ = v;
      buf_.clear();
    }
  }
  if (stored_ == UINT64_MAX) return pos;
  const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(in.size() - pos, stored_ - buf_.size()));
  buf_.insert(buf_.end(), in.begin() + static_cast<std::ptrdiff_t>(pos),
              in.begin() + static_cast<std::ptrdiff_t>(pos + take));
  pos += take;
  if (buf_.size() < stored_) return pos;
  Bytes decoded;
  if (mode_ == kFrameZstd) {
    if (compression_ == Compression::kNone) return fail(malformed("compressed section in an uncompressed patch"));
    OTA_TRY_ASSIGN(auto d, codec::zstd_decompress(buf_, kMaxMapSection));
    decoded = std::move(d);
  } else {
    decoded = std::move(buf_);
  }
  OTA_TRY_ASSIGN(auto m, AddressMap::decode(decoded, old_size_, max_entries_));
  map_ = std::move(m);
  buf_ = Bytes();
  done_ = true;
  return pos;
}

}  // namespace ota::delta::detail
