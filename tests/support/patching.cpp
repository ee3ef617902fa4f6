#include "support/patching.hpp"

namespace ota {

void PrintTo(const Error& error, std::ostream* os) {
  *os << error_code_name(error.code) << " (" << static_cast<int>(error.code) << "): " << error.message;
}

namespace delta {
void PrintTo(Compression compression, std::ostream* os) {
  *os << (compression == Compression::kZstd ? "zstd" : compression == Compression::kNone ? "none" : "unknown");
}
}  // namespace delta

}  // namespace ota

namespace ota::test {

Result<Bytes> make_patch(ByteSpan old_image, ByteSpan new_image, const delta::DiffOptions& options) {
  VectorWriter out;
  auto stats = delta::diff(old_image, new_image, out, options);
  if (!stats) return fail(stats.error());
  if (stats->patch_size != out.data().size())
    return fail(ErrorCode::kInternal, "DiffStats::patch_size disagrees with the bytes written");
  return std::move(out).take();
}

delta::DiffOptions fast_options(delta::Compression compression, std::uint8_t frame_log) {
  delta::DiffOptions opt;
  opt.compression = compression;
  opt.old_dictionary_max = 0;  // the compression asked for, literally (kZstdOld has its own tests)
  opt.level = 3;
  opt.frame_log = frame_log;
  opt.threads = 2;
  return opt;
}

Result<Bytes> apply_patch(ByteSpan old_image, ByteSpan patch, delta::PatchOptions options) {
  MemorySource old_source(old_image);
  MemoryReader reader(patch);
  VectorWriter out;
  OTA_TRY(delta::apply(old_source, reader, out, std::move(options)));
  return std::move(out).take();
}

Result<Bytes> apply_in_chunks(ByteSpan old_image, ByteSpan patch,
                              const std::function<std::size_t(std::size_t left)>& next_chunk,
                              delta::PatchOptions options) {
  MemorySource old_source(old_image);
  VectorWriter out;
  auto patcher = delta::Patcher::create(old_source, out, std::move(options));
  if (!patcher) return fail(patcher.error());
  std::size_t pos = 0;
  while (pos < patch.size()) {
    std::size_t n = next_chunk(patch.size() - pos);
    if (n == 0 || n > patch.size() - pos) return fail(ErrorCode::kInternal, "bad chunk size from the test");
    OTA_TRY((*patcher)->feed(patch.subspan(pos, n)));
    pos += n;
  }
  OTA_TRY((*patcher)->finish());
  return std::move(out).take();
}

std::string describe(const Status& status) {
  if (status) return "ok";
  return std::string(error_code_name(status.error().code)) + ": " + status.error().message;
}

}  // namespace ota::test
