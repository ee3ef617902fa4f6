#include "delta/codec/zstd.hpp"

#include <algorithm>

#include <zstd.h>
#include <zstd_errors.h>

namespace ota::codec {

Result<Bytes> zstd_compress(ByteSpan in, const ZstdParams& params, ByteSpan prefix) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (!cctx) return fail(ErrorCode::kOutOfMemory, "zstd: cannot create a compression context");
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> guard(cctx, ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, params.level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, params.window_log);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  if (!prefix.empty()) {
    std::size_t r = ZSTD_CCtx_refPrefix(cctx, prefix.data(), prefix.size());
    if (ZSTD_isError(r)) return fail(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(r));
  }
  Bytes out(ZSTD_compressBound(in.size()));
  std::size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) return fail(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<Bytes> zstd_compress_parts(ByteSpan in, std::span<const std::size_t> flush_at, const ZstdParams& params,
                                  ByteSpan prefix) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (!cctx) return fail(ErrorCode::kOutOfMemory, "zstd: cannot create a compression context");
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> guard(cctx, ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, params.level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, params.window_log);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setPledgedSrcSize(cctx, in.size());
  if (!prefix.empty()) {
    std::size_t r = ZSTD_CCtx_refPrefix(cctx, prefix.data(), prefix.size());
    if (ZSTD_isError(r)) return fail(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(r));
  }
  Bytes out(ZSTD_compressBound(in.size()) + 64);
  std::size_t written = 0, start = 0;
  auto run = [&](std::size_t end, ZSTD_EndDirective mode) -> Status {
    ZSTD_inBuffer ib{in.data() + start, end - start, 0};
    for (;;) {
      if (out.size() - written < ZSTD_CStreamOutSize()) out.resize(out.size() + ZSTD_CStreamOutSize());
      ZSTD_outBuffer ob{out.data() + written, out.size() - written, 0};
      std::size_t r = ZSTD_compressStream2(cctx, &ob, &ib, mode);
      if (ZSTD_isError(r)) return fail(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(r));
      written += ob.pos;
      if (r == 0 && ib.pos == ib.size) break;
    }
    start = end;
    return ok();
  };
  for (std::size_t at : flush_at)
    if (at > start && at < in.size()) OTA_TRY(run(at, ZSTD_e_flush));
  OTA_TRY(run(in.size(), ZSTD_e_end));
  out.resize(written);
  return out;
}

Result<std::uint64_t> zstd_compress_stream(Reader& in, Writer& out, const StreamParams& params,
                                           const std::function<void(std::uint64_t)>& progress) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (!cctx) return fail(ErrorCode::kOutOfMemory, "zstd: cannot create a compression context");
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> guard(cctx, ZSTD_freeCCtx);
  auto set = [&](ZSTD_cParameter p, int v) -> Status {
    std::size_t r = ZSTD_CCtx_setParameter(cctx, p, v);
    if (ZSTD_isError(r)) return fail(ErrorCode::kUsage, std::string("zstd: ") + ZSTD_getErrorName(r));
    return ok();
  };
  OTA_TRY(set(ZSTD_c_compressionLevel, params.level));
  OTA_TRY(set(ZSTD_c_windowLog, params.window_log));
  OTA_TRY(set(ZSTD_c_checksumFlag, 0));
  OTA_TRY(set(ZSTD_c_contentSizeFlag, 1));
  // A build without thread support cannot honour workers; that is an error
  // rather than silently different bytes.
  OTA_TRY(set(ZSTD_c_nbWorkers, params.workers < 1 ? 1 : params.workers));
  const std::uint64_t frame = params.frame_size ? params.frame_size : ~0ull;
  // Each frame declares its content size when the total is known.
  auto pledge = [&](std::uint64_t consumed) {
    if (params.pledged_size != ~0ull)
      ZSTD_CCtx_setPledgedSrcSize(cctx, std::min(frame, params.pledged_size - std::min(consumed, params.pledged_size)));
  };
  pledge(0);
  Bytes ibuf(ZSTD_CStreamInSize() * 4), obuf(ZSTD_CStreamOutSize());
  std::uint64_t total_in = 0, total_out = 0, in_frame = 0;
  bool eof = false;
  while (!eof) {
    // Fill the buffer, never past the end of the current frame.
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(ibuf.size(), frame - in_frame));
    std::size_t have = 0;
    while (have < want) {
      OTA_TRY_ASSIGN(auto n, in.read(MutableByteSpan(ibuf.data() + have, want - have)));
      if (n == 0) {
        eof = true;
        break;
      }
      have += n;
    }
    total_in += have;
    in_frame += have;
    const bool end_frame = eof || in_frame == frame;
    if (eof && have == 0 && in_frame == 0 && total_in > 0) break;  // the input ended on a frame boundary
    ZSTD_inBuffer ib{ibuf.data(), have, 0};
    const ZSTD_EndDirective mode = end_frame ? ZSTD_e_end : ZSTD_e_continue;
    while (true) {
      ZSTD_outBuffer ob{obuf.data(), obuf.size(), 0};
      std::size_t r = ZSTD_compressStream2(cctx, &ob, &ib, mode);
      if (ZSTD_isError(r)) return fail(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(r));
      if (ob.pos) OTA_TRY(out.write(ByteSpan(obuf.data(), ob.pos)));
      total_out += ob.pos;
      if (end_frame ? r == 0 : ib.pos == ib.size) break;
    }
    if (end_frame && !eof) {
      in_frame = 0;
      pledge(total_in);
    }
    if (progress) progress(total_in);
  }
  return total_out;
}

Result<Bytes> zstd_decompress(ByteSpan in, std::size_t max_size) {
  const unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
    return fail(ErrorCode::kDecompress, "zstd: not a frame with a known content size");
  if (size > max_size) return fail(ErrorCode::kLimitExceeded, "zstd: frame content is too large");
  Bytes out(static_cast<std::size_t>(size));
  const std::size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) return fail(ErrorCode::kDecompress, std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != out.size()) return fail(ErrorCode::kDecompress, "zstd: frame is shorter than it declares");
  return out;
}

namespace {

class Decoder final : public ZstdDecoder {
 public:
  explicit Decoder(ZSTD_DCtx* d) : dctx_(d) {}
  ~Decoder() override { ZSTD_freeDCtx(dctx_); }

  Status reset(ByteSpan prefix) override {
    ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_only);
    if (!prefix.empty()) {
      std::size_t r = ZSTD_DCtx_refPrefix(dctx_, prefix.data(), prefix.size());
      if (ZSTD_isError(r)) return fail(ErrorCode::kDecompress, std::string("zstd: ") + ZSTD_getErrorName(r));
    }
    return ok();
  }

  Result<Step> decode(ByteSpan in, MutableByteSpan out) override {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    std::size_t r = ZSTD_decompressStream(dctx_, &ob, &ib);
    if (ZSTD_isError(r)) {
      ErrorCode code = ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge
                           ? ErrorCode::kLimitExceeded
                           : ErrorCode::kDecompress;
      return fail(code, std::string("zstd: ") + ZSTD_getErrorName(r));
    }
    return Step{ib.pos, ob.pos, r == 0};
  }

 private:
  ZSTD_DCtx* dctx_;
};

}  // namespace

Result<std::unique_ptr<ZstdDecoder>> ZstdDecoder::create(int max_window_log) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  if (!d) return fail(ErrorCode::kOutOfMemory, "zstd: cannot create a decompression context");
  ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, max_window_log < 10 ? 10 : max_window_log);
  return std::unique_ptr<ZstdDecoder>(new Decoder(d));
}

}  // namespace ota::codec
