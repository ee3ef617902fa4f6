#include "delta/codec/xz.hpp"

#include <lzma.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_estimateCCtxSize
#include <zstd.h>
#include <zstd_errors.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace ota::codec {
namespace {

constexpr std::uint8_t kXzMagic[6] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
constexpr std::uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
constexpr std::size_t kStreamHeader = 12;
constexpr std::uint64_t kDecodeMemory = std::uint64_t{256} << 20;
// A stream whose settings no preset reproduces costs 40 trial encodes; after
// this many such streams in a row only the settings already found are tried.
constexpr int kFullSearches = 4;

struct StreamGuard {
  lzma_stream s = LZMA_STREAM_INIT;
  ~StreamGuard() { lzma_end(&s); }
};

bool check_valid(std::uint8_t c) { return c == 0 || c == 1 || c == 4 || c == 10; }

struct Chain {
  lzma_options_lzma lz{};
  lzma_filter f[3]{};
};

bool make_chain(const XzParams& p, Chain& c) {
  if (!xz_params_valid(p)) return false;
  if (lzma_lzma_preset(&c.lz, p.preset | (p.extreme ? LZMA_PRESET_EXTREME : 0u))) return false;
  c.lz.dict_size = p.dict_size;
  std::size_t i = 0;
  if (p.bcj != 0) c.f[i++] = {static_cast<lzma_vli>(p.bcj), nullptr};
  c.f[i++] = {LZMA_FILTER_LZMA2, &c.lz};
  c.f[i] = {LZMA_VLI_UNKNOWN, nullptr};
  return true;
}

// The check and filter chain of a stream's first block; false when it is not
// a BCJ (optional, start offset 0) + LZMA2 chain.
bool stream_settings(ByteSpan s, XzParams& p) {
  lzma_stream_flags flags{};
  if (s.size() < kStreamHeader + 8 || lzma_stream_header_decode(&flags, s.data()) != LZMA_OK) return false;
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_block block{};
  block.version = 0;
  block.check = flags.check;
  block.filters = filters;
  block.header_size = lzma_block_header_size_decode(s[kStreamHeader]);
  if (s[kStreamHeader] == 0 || s.size() < kStreamHeader + block.header_size) return false;
  if (lzma_block_header_decode(&block, nullptr, s.data() + kStreamHeader) != LZMA_OK) return false;
  bool good = true;
  std::size_t n = 0;
  while (filters[n].id != LZMA_VLI_UNKNOWN) ++n;
  p = XzParams{};
  p.check = static_cast<std::uint8_t>(flags.check);
  if (n == 2 && filters[0].id >= 4 && filters[0].id <= 10) {
    const auto* bcj = static_cast<const lzma_options_bcj*>(filters[0].options);
    good = bcj == nullptr || bcj->start_offset == 0;
    p.bcj = static_cast<std::uint8_t>(filters[0].id);
  } else if (n != 1) {
    good = false;
  }
  if (good && filters[n - 1].id == LZMA_FILTER_LZMA2 && filters[n - 1].options != nullptr)
    p.dict_size = static_cast<const lzma_options_lzma*>(filters[n - 1].options)->dict_size;
  else
    good = false;
  for (std::size_t i = 0; i < n; ++i) std::free(filters[i].options);
  return good && xz_params_valid(p);
}

// Decodes the stream starting at s[0]: its compressed and expanded sizes, the
// expanded bytes in out (at most out.size()). false if it is not one.
bool decode_prefix(ByteSpan s, Bytes& out, std::uint64_t& comp, std::uint64_t& exp) {
  StreamGuard g;
  if (lzma_stream_decoder(&g.s, kDecodeMemory, 0) != LZMA_OK) return false;
  g.s.next_in = s.data();
  g.s.avail_in = s.size();
  g.s.next_out = out.data();
  g.s.avail_out = out.size();
  const lzma_ret r = lzma_code(&g.s, LZMA_FINISH);
  if (r != LZMA_STREAM_END) return false;
  comp = g.s.total_in;
  exp = g.s.total_out;
  return exp > 0;
}

// A zstd frame at s[0] with its content size in the header (as
// ZSTD_compressCCtx writes it) of 1..out.size() bytes: decoded into out.
bool decode_zstd_prefix(ByteSpan s, Bytes& out, std::uint64_t& comp, std::uint64_t& exp) {
  const std::size_t len = ZSTD_findFrameCompressedSize(s.data(), s.size());
  if (ZSTD_isError(len)) return false;
  const unsigned long long content = ZSTD_getFrameContentSize(s.data(), len);
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR || content == 0 ||
      content > out.size())
    return false;
  const std::size_t n = ZSTD_decompress(out.data(), out.size(), s.data(), len);
  if (ZSTD_isError(n) || n != content) return false;
  comp = len;
  exp = n;
  return true;
}

// A zlib stream at s[0] (CMF 0x78, a 32 KiB window, no preset dictionary)
// that inflates to 1..out.size() bytes.
bool decode_zlib_prefix(ByteSpan s, Bytes& out, std::uint64_t& comp, std::uint64_t& exp) {
  if (s.size() < 8 || s[0] != 0x78 || (s[1] & 0x20) != 0 || ((s[0] << 8) | s[1]) % 31 != 0) return false;
  z_stream z{};
  if (inflateInit2(&z, 15) != Z_OK) return false;
  z.next_in = const_cast<Bytef*>(s.data());
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(s.size(), UINT32_MAX));
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int r = inflate(&z, Z_FINISH);
  comp = z.total_in;
  exp = z.total_out;
  inflateEnd(&z);
  return r == Z_STREAM_END && exp > 0;
}

// The settings a zlib stream's header allows: the levels of its FLEVEL
// (0: 1, 1: 2..5, 2: 6, 3: 7..9), first the likeliest, each strategy.
std::vector<XzParams> zlib_candidates(ByteSpan s) {
  static const std::vector<std::vector<int>> kLevels = {{1}, {5, 4, 3, 2}, {6}, {9, 8, 7}};
  std::vector<XzParams> out;
  for (int mem : {8, 9})
    for (int strategy : {0, 1, 3, 2, 4})
      for (int level : kLevels[s[1] >> 6]) {
        XzParams p;
        p.codec = StreamCodec::kZlib;
        p.preset = static_cast<std::uint8_t>(level);
        p.zlib_strategy = static_cast<std::uint8_t>(strategy);
        p.zlib_mem_level = static_cast<std::uint8_t>(mem);
        p.zlib_window = static_cast<std::uint8_t>((s[0] >> 4) + 8);
        out.push_back(p);
      }
  return out;
}

// zstd levels in the order they are tried: mksquashfs' default 15, zstd(1)'s
// 3 and 19, then the rest.
constexpr int kZstdLevels[] = {15, 3, 19, 22, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 20, 21};

}  // namespace

bool xz_params_valid(const XzParams& p) {
  if (p.codec == StreamCodec::kZstd) return p.preset >= 1 && p.preset <= 22;
  if (p.codec == StreamCodec::kZlib)
    return p.preset >= 1 && p.preset <= 9 && p.zlib_strategy <= 4 && p.zlib_mem_level >= 1 && p.zlib_mem_level <= 9 &&
           p.zlib_window >= 9 && p.zlib_window <= 15;
  return p.codec == StreamCodec::kXz && p.preset <= 9 && check_valid(p.check) && p.dict_size >= kXzMinDict &&
         p.dict_size <= kXzMaxDict && (p.bcj == 0 || (p.bcj >= 4 && p.bcj <= 10));
}

std::uint64_t xz_encoder_memory(const XzParams& p, std::uint64_t input_size) {
  if (!xz_params_valid(p)) return UINT64_MAX;
  if (p.codec == StreamCodec::kZstd)
    return ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(p.preset, input_size, 0));
  if (p.codec == StreamCodec::kZlib)  // zlib.h's figure for deflate, plus its state
    return (std::uint64_t{1} << (p.zlib_window + 2)) + (std::uint64_t{1} << (p.zlib_mem_level + 9)) + 8192;
  Chain c;
  if (!make_chain(p, c)) return UINT64_MAX;
  return lzma_raw_encoder_memusage(c.f);
}

Result<std::size_t> xz_encode(ByteSpan in, const XzParams& p, MutableByteSpan out) {
  if (p.codec == StreamCodec::kZlib) {
    if (!xz_params_valid(p)) return fail(ErrorCode::kPatchMalformed, "invalid zlib encoder settings");
    z_stream z{};
    if (deflateInit2(&z, p.preset, Z_DEFLATED, p.zlib_window, p.zlib_mem_level, p.zlib_strategy) != Z_OK)
      return fail(ErrorCode::kOutOfMemory, "zlib: deflateInit2 failed");
    z.next_in = const_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size(), UINT32_MAX));
    const int r = deflate(&z, Z_FINISH);
    const std::size_t n = z.total_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) return fail(ErrorCode::kLimitExceeded, "zlib stream does not fit");
    return n;
  }
  if (p.codec == StreamCodec::kZstd) {
    if (!xz_params_valid(p)) return fail(ErrorCode::kPatchMalformed, "invalid zstd encoder settings");
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    if (cctx == nullptr) return fail(ErrorCode::kOutOfMemory, "zstd: out of memory");
    const std::size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), in.data(), in.size(), p.preset);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(n))
      return fail(ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? ErrorCode::kLimitExceeded
                                                                      : ErrorCode::kInternal,
                  std::string("zstd encoder failed: ") + ZSTD_getErrorName(n));
    return n;
  }
  Chain c;
  if (!make_chain(p, c)) return fail(ErrorCode::kPatchMalformed, "invalid xz encoder settings");
  const auto check = static_cast<lzma_check>(p.check);
  if (!p.stream_encoder) {
    std::size_t pos = 0;
    const lzma_ret r = lzma_stream_buffer_encode(c.f, check, nullptr, in.data(), in.size(), out.data(), &pos,
                                                 out.size());
    if (r == LZMA_BUF_ERROR) return fail(ErrorCode::kLimitExceeded, "xz stream does not fit");
    if (r != LZMA_OK)
      return fail(r == LZMA_MEM_ERROR ? ErrorCode::kOutOfMemory : ErrorCode::kInternal,
                  "xz encoder failed (" + std::to_string(static_cast<int>(r)) + ")");
    return pos;
  }
  StreamGuard g;
  lzma_ret r = lzma_stream_encoder(&g.s, c.f, check);
  if (r != LZMA_OK)
    return fail(r == LZMA_MEM_ERROR ? ErrorCode::kOutOfMemory : ErrorCode::kInternal, "xz encoder failed");
  g.s.next_in = in.data();
  g.s.avail_in = in.size();
  g.s.next_out = out.data();
  g.s.avail_out = out.size();
  r = lzma_code(&g.s, LZMA_FINISH);
  if (r == LZMA_OK || r == LZMA_BUF_ERROR) return fail(ErrorCode::kLimitExceeded, "xz stream does not fit");
  if (r != LZMA_STREAM_END) return fail(ErrorCode::kInternal, "xz encoder failed");
  return static_cast<std::size_t>(g.s.total_out);
}

Status xz_decode(ByteSpan in, MutableByteSpan out, StreamCodec codec) {
  if (codec == StreamCodec::kZlib) {
    z_stream z{};
    if (inflateInit2(&z, 15) != Z_OK) return fail(ErrorCode::kOutOfMemory, "zlib: inflateInit2 failed");
    z.next_in = const_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    const int r = inflate(&z, Z_FINISH);
    const bool exact = r == Z_STREAM_END && z.total_in == in.size() && z.total_out == out.size();
    inflateEnd(&z);
    if (!exact) return fail(ErrorCode::kDecompress, "zlib stream is corrupt or has a different length than its table says");
    return ok();
  }
  if (codec == StreamCodec::kZstd) {
    const std::size_t len = ZSTD_findFrameCompressedSize(in.data(), in.size());
    const std::size_t n = ZSTD_isError(len) ? len : ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n) || len != in.size() || n != out.size())
      return fail(ErrorCode::kDecompress, "zstd frame is corrupt or has a different length than its table says");
    return ok();
  }
  std::uint64_t memlimit = kDecodeMemory;
  std::size_t in_pos = 0, out_pos = 0;
  const lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, nullptr, in.data(), &in_pos, in.size(), out.data(),
                                               &out_pos, out.size());
  if (r != LZMA_OK || in_pos != in.size() || out_pos != out.size())
    return fail(ErrorCode::kDecompress, r == LZMA_OK ? "xz stream has a different length than its table says"
                                                     : "xz stream is corrupt (" +
                                                           std::to_string(static_cast<int>(r)) + ")");
  return ok();
}

std::vector<XzStream> find_xz_streams(ByteSpan image, std::uint64_t max_expanded, bool find_params) {
  std::vector<XzStream> found;
  std::vector<XzParams> seen;  // settings that worked, most recent first
  int misses = 0;
  Bytes expanded(static_cast<std::size_t>(max_expanded)), trial;
  std::size_t pos = 0;
  const std::uint8_t* next_xz = nullptr;
  const std::uint8_t* next_zstd = nullptr;
  const std::uint8_t* const end = image.data() + image.size();
  auto find = [&](const std::uint8_t*& cached, const std::uint8_t* magic, std::size_t len) {
    const std::uint8_t* from = image.data() + pos;
    if (cached == end || (cached != nullptr && cached >= from)) return cached;
    auto* hit = static_cast<const std::uint8_t*>(memmem(from, image.size() - pos, magic, len));
    cached = hit == nullptr ? end : hit;
    return cached;
  };
  const std::uint8_t* next_zlib = nullptr;
  // The next zlib header as zlib writes it: 0x78 (a 32 KiB window) and the
  // FLG byte of its FLEVEL with no preset dictionary (01, 5E, 9C or DA).
  auto find_zlib = [&]() {
    const std::uint8_t* from = image.data() + pos;
    if (next_zlib == end || (next_zlib != nullptr && next_zlib >= from)) return next_zlib;
    next_zlib = end;
    for (const std::uint8_t* q = from; q + 1 < end; ++q) {
      q = static_cast<const std::uint8_t*>(std::memchr(q, 0x78, static_cast<std::size_t>(end - q)));
      if (q == nullptr || q + 1 >= end) break;
      if (q[1] == 0x01 || q[1] == 0x5E || q[1] == 0x9C || q[1] == 0xDA) {
        next_zlib = q;
        break;
      }
    }
    return next_zlib;
  };
  while (pos + 16 <= image.size()) {
    const std::uint8_t* xz = find(next_xz, kXzMagic, sizeof kXzMagic);
    const std::uint8_t* zs = find(next_zstd, kZstdMagic, sizeof kZstdMagic);
    const std::uint8_t* zl = find_zlib();
    const std::uint8_t* hit = std::min({xz, zs, zl});
    if (hit == end) break;
    const std::size_t at = static_cast<std::size_t>(hit - image.data());
    XzStream st;
    st.offset = at;
    st.codec = hit == xz ? StreamCodec::kXz : hit == zs ? StreamCodec::kZstd : StreamCodec::kZlib;
    const ByteSpan rest = image.subspan(at);
    const bool found_one = st.codec == StreamCodec::kXz     ? decode_prefix(rest, expanded, st.comp_size, st.exp_size)
                           : st.codec == StreamCodec::kZstd ? decode_zstd_prefix(rest, expanded, st.comp_size, st.exp_size)
                                                            : decode_zlib_prefix(rest, expanded, st.comp_size, st.exp_size);
    if (!found_one) {
      pos = at + 1;
      continue;
    }
    const ByteSpan comp = image.subspan(at, static_cast<std::size_t>(st.comp_size));
    const ByteSpan exp(expanded.data(), static_cast<std::size_t>(st.exp_size));
    XzParams base;
    base.codec = st.codec;
    if (find_params && (st.codec != StreamCodec::kXz || stream_settings(comp, base))) {
      std::vector<XzParams> tries;
      for (const XzParams& p : seen)
        if (p.codec == st.codec) tries.push_back(p);
      const bool full = misses < kFullSearches;
      if (full && st.codec == StreamCodec::kZlib) {
        for (const XzParams& p : zlib_candidates(comp)) tries.push_back(p);
      } else if (full && st.codec == StreamCodec::kZstd) {
        for (int level : kZstdLevels) {
          XzParams p = base;
          p.preset = static_cast<std::uint8_t>(level);
          tries.push_back(p);
        }
      } else if (full) {
        for (int enc = 0; enc < 2; ++enc)
          for (int x = 0; x < 2; ++x)
            for (int preset : {6, 9, 0, 1, 2, 3, 4, 5, 7, 8}) {
              XzParams p = base;
              p.preset = static_cast<std::uint8_t>(preset);
              p.extreme = x == 1;
              p.stream_encoder = enc == 1;
              tries.push_back(p);
            }
      }
      trial.resize(comp.size() + 1024);  // zstd wants room past the end it reaches
      for (XzParams p : tries) {
        // xz: the stream's own check, dictionary and filter; the preset and encoder are tried.
        if (p.codec == StreamCodec::kXz) {
          p.check = base.check;
          p.dict_size = base.dict_size;
          p.bcj = base.bcj;
        }
        auto n = xz_encode(exp, p, trial);
        if (n && *n == comp.size() && std::memcmp(trial.data(), comp.data(), comp.size()) == 0) {
          st.params = p;
          break;
        }
      }
      if (st.params) {
        auto it = std::find(seen.begin(), seen.end(), *st.params);
        if (it != seen.end()) seen.erase(it);
        seen.insert(seen.begin(), *st.params);
        misses = 0;
      } else if (full) {
        ++misses;
      }
    }
    found.push_back(st);
    pos = at + static_cast<std::size_t>(st.comp_size);
  }
  return found;
}

}  // namespace ota::codec
