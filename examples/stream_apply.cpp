// Example: apply an ota delta as it arrives, the way a device does.
//
//   ota-example-stream-apply OLD NEW_OUT < PATCH
//
// The patch comes from standard input in whatever pieces the pipe delivers
// (a network socket behaves the same); OLD is read by random access; NEW is
// written sequentially and committed only after its hash matched. After each
// frame the patcher reports where an interrupted install could resume.
#include <cstdio>

#include "ota/delta/delta.hpp"
#include "ota/core/io.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OLD NEW_OUT < PATCH\n", argv[0]);
    return static_cast<int>(ota::ErrorCode::kUsage);
  }
  auto old_image = ota::FileSource::open(argv[1]);
  if (!old_image) return std::fprintf(stderr, "%s\n", old_image.error().message.c_str()), 3;
  auto out = ota::AtomicFileWriter::create(argv[2]);
  if (!out) return std::fprintf(stderr, "%s\n", out.error().message.c_str()), 3;

  ota::delta::PatchOptions options;
  options.on_frame = [&](const ota::delta::ResumePoint& at) -> ota::Status {
    // A device syncs its bank here, then persists `at` atomically.
    std::fprintf(stderr, "frame %llu done: resume at patch offset %llu, NEW offset %llu\n",
                 static_cast<unsigned long long>(at.frame), static_cast<unsigned long long>(at.patch_offset),
                 static_cast<unsigned long long>(at.new_offset));
    return (*out)->sync();
  };
  auto patcher = ota::delta::Patcher::create(**old_image, **out, options);
  if (!patcher) return 1;

  auto in = ota::FileReader::open("-");
  if (!in) return 3;
  ota::Bytes chunk(4096);
  ota::Status status = ota::ok();
  for (;;) {
    auto n = (*in)->read(chunk);
    if (!n) {
      status = ota::fail(n.error());
      break;
    }
    if (*n == 0) {
      status = (*patcher)->finish();
      break;
    }
    status = (*patcher)->feed(ota::ByteSpan(chunk.data(), *n));
    if (!status) break;
  }
  if (!status) {
    std::fprintf(stderr, "error: %s\n", status.error().message.c_str());
    return static_cast<int>(status.error().code);  // OUT is removed: nothing half-written remains
  }
  if (auto st = (*out)->commit(); !st) {
    std::fprintf(stderr, "error: %s\n", st.error().message.c_str());
    return static_cast<int>(st.error().code);
  }
  const auto* h = (*patcher)->header();
  std::printf("wrote %llu bytes, BLAKE2b-256 %s\n", static_cast<unsigned long long>(h->new_size),
              ota::to_hex(h->new_hash).c_str());
  return 0;
}
