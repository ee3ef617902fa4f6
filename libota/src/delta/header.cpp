#include <cstring>

#include "core/varint.hpp"
#include "delta/format.hpp"
#include "delta/recompress.hpp"
#include "ota/delta/delta.hpp"

namespace ota::delta {

using detail::get_varint;
using detail::put_varint;
using detail::VarintStatus;

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kZstd: return "zstd";
    case Compression::kZstdOld: return "zstd-old";
    case Compression::kLzma: return "lzma";
    case Compression::kLzmaOld: return "lzma-old";
  }
  return "unknown";
}

const char* predictor_name(Predictor p) {
  switch (p) {
    case Predictor::kNone: return "none";
    case Predictor::kX86: return "x86";
    case Predictor::kThumb: return "thumb";
    case Predictor::kArm64: return "arm64";
  }
  return "unknown";
}

std::uint64_t PatchHeader::frame_count() const {
  const std::uint64_t frame = std::uint64_t{1} << frame_log;
  return ((recompress ? expanded_new_size : new_size) + frame - 1) / frame;
}

namespace {

Bytes encode_plain(const PatchHeader& h) {
  Bytes out(std::begin(detail::kMagic), std::end(detail::kMagic));
  out.push_back(format_version_for(h.predictor, layout_of_version(h.version), h.compression, h.elf_tables));
  out.push_back(static_cast<std::uint8_t>(static_cast<unsigned>(h.compression) |
                                          static_cast<unsigned>(h.predictor) << 4));
  out.push_back(h.window_log);
  out.push_back(h.frame_log);
  put_varint(out, h.old_size);
  put_varint(out, h.new_size);
  out.insert(out.end(), h.old_hash.begin(), h.old_hash.end());
  out.insert(out.end(), h.new_hash.begin(), h.new_hash.end());
  return out;
}

}  // namespace

namespace detail {

Result<std::optional<PatchHeader>> gather_header(Bytes& buf, ByteSpan& in, std::uint64_t& consumed) {
  const std::size_t before = buf.size();
  const std::size_t take = std::min(in.size(), kMaxHeaderSize - before);
  buf.insert(buf.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
  auto parsed = parse_header(buf);
  if (!parsed) {
    if (parsed.error().code != ErrorCode::kPatchTruncated || buf.size() >= kMaxHeaderSize) return fail(parsed.error());
    consumed += take;
    in = in.subspan(take);
    return std::optional<PatchHeader>{};
  }
  const std::size_t used = parsed->second - before;
  consumed += used;
  in = in.subspan(used);
  buf.resize(parsed->second);
  return std::optional<PatchHeader>(parsed->first);
}

PatchHeader recompress_header(const PatchHeader& inner, std::uint64_t old_size, std::uint64_t new_size,
                              const Digest& old_hash, const Digest& new_hash) {
  PatchHeader h = inner;
  h.recompress = true;
  h.inner_version = inner.version;
  h.version = kRecompressFormatVersion;
  h.expanded_old_size = inner.old_size;
  h.expanded_new_size = inner.new_size;
  h.expanded_old_hash = inner.old_hash;
  h.expanded_new_hash = inner.new_hash;
  h.old_size = old_size;
  h.new_size = new_size;
  h.old_hash = old_hash;
  h.new_hash = new_hash;
  return h;
}

}  // namespace detail

Bytes encode_header(const PatchHeader& h) {
  if (!h.recompress) return encode_plain(h);
  // Version 6: the real images, then the inner delta's own header.
  Bytes out(std::begin(detail::kMagic), std::end(detail::kMagic));
  out.push_back(kRecompressFormatVersion);
  put_varint(out, h.old_size);
  put_varint(out, h.new_size);
  out.insert(out.end(), h.old_hash.begin(), h.old_hash.end());
  out.insert(out.end(), h.new_hash.begin(), h.new_hash.end());
  PatchHeader inner = h;
  inner.version = h.inner_version;
  inner.old_size = h.expanded_old_size;
  inner.new_size = h.expanded_new_size;
  inner.old_hash = h.expanded_old_hash;
  inner.new_hash = h.expanded_new_hash;
  const Bytes tail = encode_plain(inner);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

namespace {

Result<std::pair<PatchHeader, std::size_t>> parse_plain(ByteSpan data);

// Version 6: real sizes and hashes, then a header of version 3, 4 or 5.
Result<std::pair<PatchHeader, std::size_t>> parse_recompress(ByteSpan data) {
  auto truncated = [] { return fail(ErrorCode::kPatchTruncated, "patch header is truncated"); };
  std::uint64_t sizes[2] = {};
  std::size_t pos = 4;
  for (std::uint64_t& field : sizes) {
    std::size_t used = 0;
    switch (get_varint(data.subspan(pos), field, used)) {
      case VarintStatus::kNeedMore: return truncated();
      case VarintStatus::kInvalid: return fail(ErrorCode::kPatchMalformed, "invalid size in patch header");
      case VarintStatus::kOk: pos += used; break;
    }
  }
  if (sizes[0] > (std::uint64_t{1} << 62) || sizes[1] > (std::uint64_t{1} << 62))
    return fail(ErrorCode::kPatchMalformed, "image size in patch header is out of range");
  if (data.size() < pos + 64) return truncated();
  Digest old_hash{}, new_hash{};
  std::memcpy(old_hash.data(), data.data() + pos, 32);
  std::memcpy(new_hash.data(), data.data() + pos + 32, 32);
  pos += 64;
  auto inner = parse_plain(data.subspan(pos));
  if (!inner) return fail(inner.error().with_context("the expanded images' header"));
  if (inner->first.version < kBlocksFormatVersion)
    return fail(ErrorCode::kUnsupported, "ota delta format version 6 wraps versions 3 to 5, not " +
                                             std::to_string(inner->first.version));
  const PatchHeader h = detail::recompress_header(inner->first, sizes[0], sizes[1], old_hash, new_hash);
  return std::make_pair(h, pos + inner->second);
}

}  // namespace

Result<std::pair<PatchHeader, std::size_t>> parse_header(ByteSpan data) {
  if (data.size() >= 4 && std::memcmp(data.data(), detail::kMagic, 3) == 0 &&
      data[3] == kRecompressFormatVersion)
    return parse_recompress(data);
  return parse_plain(data);
}

namespace {

Result<std::pair<PatchHeader, std::size_t>> parse_plain(ByteSpan data) {
  auto truncated = [] { return fail(ErrorCode::kPatchTruncated, "patch header is truncated"); };
  const std::size_t magic = std::min<std::size_t>(data.size(), 3);
  if (magic > 0 && std::memcmp(data.data(), detail::kMagic, magic) != 0)
    return fail(ErrorCode::kPatchMalformed, "not an ota delta patch (bad magic)");
  if (data.size() < 7) return truncated();
  PatchHeader h;
  h.version = data[3];
  if (h.version < kFormatVersion || h.version >= kRecompressFormatVersion)
    return fail(ErrorCode::kUnsupported,
                "ota delta format version " + std::to_string(h.version) + " is not supported");
  const unsigned compression = data[4] & 0x0f, predictor = data[4] >> 4;
  if (compression > static_cast<unsigned>(Compression::kLzmaOld))
    return fail(ErrorCode::kUnsupported, "unknown patch compression " + std::to_string(compression));
  if (predictor > static_cast<unsigned>(Predictor::kArm64))
    return fail(ErrorCode::kUnsupported, "unknown patch predictor " + std::to_string(predictor));
  h.compression = static_cast<Compression>(compression);
  h.predictor = static_cast<Predictor>(predictor);
  // Version 4 is version 3 with LZMA2 frames, and only that; version 5 is
  // version 4 whose x86 or arm64 predictor re-points ELF tables.
  h.elf_tables = h.version == kElfTablesFormatVersion;
  if (is_lzma(h.compression) != (h.version == kLzmaFormatVersion || h.elf_tables))
    return fail(ErrorCode::kUnsupported,
                is_lzma(h.compression)
                    ? "LZMA2 patch compression needs ota delta format version 4 or 5, the patch says " +
                          std::to_string(h.version)
                    : "ota delta format version " + std::to_string(h.version) +
                          " is only used with LZMA2 compression, the patch has compression " +
                          std::to_string(compression));
  if (h.elf_tables && h.predictor != Predictor::kX86 && h.predictor != Predictor::kArm64)
    return fail(ErrorCode::kUnsupported,
                "ota delta format version 5 is only used with predictor 1 (x86) or 3 (arm64), the patch has "
                "predictor " + std::to_string(predictor));
  // Version 3 goes with any predictor. The interleaved versions are the lowest
  // that have the patch's features: version 1 has no predictor 3, and version
  // 2 is only written for it.
  if (h.version < kBlocksFormatVersion && h.version != format_version_for(h.predictor, RecordLayout::kInterleaved))
    return fail(ErrorCode::kUnsupported,
                h.predictor == Predictor::kArm64
                    ? "patch predictor 3 (arm64) needs ota delta format version 2 or 3, the patch says " +
                          std::to_string(h.version)
                    : "ota delta format version " + std::to_string(h.version) +
                          " is only used with predictor 3 (arm64), the patch has predictor " +
                          std::to_string(predictor));
  h.window_log = data[5];
  h.frame_log = data[6];
  if (h.compression == Compression::kNone ? h.window_log != 0
      : is_lzma(h.compression)            ? (h.window_log < 12 || h.window_log > 30)
                                          : (h.window_log < 10 || h.window_log > 31))
    return fail(ErrorCode::kPatchMalformed, "invalid decoder window in patch header");
  if (h.frame_log < kMinFrameLog || h.frame_log > kMaxFrameLog)
    return fail(ErrorCode::kPatchMalformed, "invalid frame size in patch header");
  std::size_t pos = 7;
  for (std::uint64_t* field : {&h.old_size, &h.new_size}) {
    std::size_t used = 0;
    switch (get_varint(data.subspan(pos), *field, used)) {
      case VarintStatus::kNeedMore: return truncated();
      case VarintStatus::kInvalid: return fail(ErrorCode::kPatchMalformed, "invalid size in patch header");
      case VarintStatus::kOk: pos += used; break;
    }
  }
  if (h.old_size > (std::uint64_t{1} << 62) || h.new_size > (std::uint64_t{1} << 62))
    return fail(ErrorCode::kPatchMalformed, "image size in patch header is out of range");
  if (data.size() < pos + 64) return truncated();
  std::memcpy(h.old_hash.data(), data.data() + pos, 32);
  std::memcpy(h.new_hash.data(), data.data() + pos + 32, 32);
  return std::make_pair(h, pos + 64);
}

}  // namespace

Result<PatchHeader> read_header(Reader& patch) {
  Bytes buf;
  std::uint8_t byte = 0;
  while (buf.size() < kMaxHeaderSize) {
    OTA_TRY_ASSIGN(auto n, patch.read(MutableByteSpan(&byte, 1)));
    if (n == 0) break;
    buf.push_back(byte);
    auto parsed = parse_header(buf);
    if (parsed) return parsed->first;
    if (parsed.error().code != ErrorCode::kPatchTruncated) return fail(parsed.error());
  }
  OTA_TRY_ASSIGN(auto parsed, parse_header(buf));
  return parsed.first;
}

}  // namespace ota::delta
