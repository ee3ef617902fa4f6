#include "delta/codec/lzma.hpp"

#include <lzma.h>

#include <string>

namespace ota::codec {
namespace {

std::string lzma_message(lzma_ret r) {
  switch (r) {
    case LZMA_MEM_ERROR: return "lzma: out of memory";
    case LZMA_MEMLIMIT_ERROR: return "lzma: memory limit reached";
    case LZMA_FORMAT_ERROR: return "lzma: not an LZMA2 stream";
    case LZMA_OPTIONS_ERROR: return "lzma: unsupported options";
    case LZMA_DATA_ERROR: return "lzma: corrupt compressed data";
    case LZMA_BUF_ERROR: return "lzma: compressed data is truncated";
    default: return "lzma: error " + std::to_string(static_cast<int>(r));
  }
}

ErrorCode lzma_code_of(lzma_ret r) {
  return r == LZMA_MEM_ERROR || r == LZMA_MEMLIMIT_ERROR ? ErrorCode::kOutOfMemory : ErrorCode::kDecompress;
}

struct StreamGuard {
  lzma_stream s = LZMA_STREAM_INIT;
  ~StreamGuard() { lzma_end(&s); }
};

}  // namespace

Result<Bytes> lzma_compress(ByteSpan in, const LzmaParams& params, ByteSpan prefix) {
  lzma_options_lzma lz{};
  const std::uint32_t preset =
      static_cast<std::uint32_t>(params.preset) | (params.extreme ? LZMA_PRESET_EXTREME : 0u);
  if (lzma_lzma_preset(&lz, preset)) return fail(ErrorCode::kUsage, "lzma: invalid preset");
  if (params.dict_log < kLzmaMinDictLog || params.dict_log > 30)
    return fail(ErrorCode::kUsage, "lzma: dictionary size out of range");
  lz.dict_size = std::uint32_t{1} << params.dict_log;
  if (!prefix.empty()) {
    lz.preset_dict = prefix.data();
    lz.preset_dict_size = static_cast<std::uint32_t>(prefix.size());
  }
  lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &lz}, {LZMA_VLI_UNKNOWN, nullptr}};
  StreamGuard g;
  lzma_ret r = lzma_raw_encoder(&g.s, filters);
  if (r != LZMA_OK)
    return fail(r == LZMA_MEM_ERROR ? ErrorCode::kOutOfMemory : ErrorCode::kInternal, lzma_message(r));
  Bytes out(in.size() / 2 + 4096);
  g.s.next_in = in.data();
  g.s.avail_in = in.size();
  std::size_t written = 0;
  for (;;) {
    if (written == out.size()) out.resize(out.size() * 2);
    g.s.next_out = out.data() + written;
    g.s.avail_out = out.size() - written;
    r = lzma_code(&g.s, LZMA_FINISH);
    written = out.size() - g.s.avail_out;
    if (r == LZMA_STREAM_END) break;
    if (r != LZMA_OK)
      return fail(r == LZMA_MEM_ERROR ? ErrorCode::kOutOfMemory : ErrorCode::kInternal, lzma_message(r));
  }
  out.resize(written);
  return out;
}

namespace {

class Decoder final : public LzmaDecoder {
 public:
  explicit Decoder(int dict_log) : dict_log_(dict_log) {}
  ~Decoder() override { lzma_end(&s_); }

  Status reset(ByteSpan prefix) override {
    lzma_options_lzma lz{};
    lzma_lzma_preset(&lz, 0);  // the decoder reads lc/lp/pb from the stream; only the dictionary matters
    lz.dict_size = std::uint32_t{1} << dict_log_;
    if (!prefix.empty()) {
      lz.preset_dict = prefix.data();
      lz.preset_dict_size = static_cast<std::uint32_t>(prefix.size());
    }
    lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &lz}, {LZMA_VLI_UNKNOWN, nullptr}};
    const lzma_ret r = lzma_raw_decoder(&s_, filters);
    if (r != LZMA_OK) return fail(lzma_code_of(r), lzma_message(r));
    done_ = false;
    return ok();
  }

  Result<Step> decode(ByteSpan in, MutableByteSpan out) override {
    if (done_) return Step{0, 0, true};
    s_.next_in = in.data();
    s_.avail_in = in.size();
    s_.next_out = out.data();
    s_.avail_out = out.size();
    const lzma_ret r = lzma_code(&s_, LZMA_RUN);
    const Step step{in.size() - s_.avail_in, out.size() - s_.avail_out, r == LZMA_STREAM_END};
    // LZMA_BUF_ERROR: no progress was possible twice in a row (the caller
    // detects a frame that makes no progress itself, with its own message).
    if (r != LZMA_OK && r != LZMA_STREAM_END && r != LZMA_BUF_ERROR) return fail(lzma_code_of(r), lzma_message(r));
    done_ = step.frame_done;
    return step;
  }

 private:
  int dict_log_;
  lzma_stream s_ = LZMA_STREAM_INIT;
  bool done_ = false;
};

}  // namespace

Result<std::unique_ptr<LzmaDecoder>> LzmaDecoder::create(int dict_log) {
  if (dict_log < kLzmaMinDictLog || dict_log > 30) return fail(ErrorCode::kUsage, "lzma: dictionary size out of range");
  return std::unique_ptr<LzmaDecoder>(new Decoder(dict_log));
}

}  // namespace ota::codec
