// Writes the seed corpus of fuzz_patch: a few small valid patches, made with
// the library against the fuzzer's fixed OLD; and, given a second directory,
// of fuzz_elf_tables: synthetic ELF executables with the tables of format
// version 5. Usage: make_fuzz_corpus DIR [ELF_DIR] (the committed seeds live
// in fuzz/corpus/fuzz_patch/ and fuzz/corpus/fuzz_elf_tables/).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "delta/codec/xz.hpp"
#include "fuzz_input.hpp"
#include "ota/delta/bsdiff40.hpp"
#include "support/synthetic_elf.hpp"
#include "ota/delta/delta.hpp"

using namespace ota;

namespace {

Bytes edited(const Bytes& old_image) {
  // NEW: OLD with a few byte edits, an 80-byte insertion and 2 KiB appended
  // (so with 4 KiB frames there are two frames).
  Bytes n = old_image;
  for (std::size_t i = 7; i < n.size(); i += 301) n[i] = static_cast<std::uint8_t>(n[i] + 1 + i % 5);
  Bytes ins(80);
  for (std::size_t i = 0; i < ins.size(); ++i) ins[i] = static_cast<std::uint8_t>("ota fuzz seed "[i % 14]);
  n.insert(n.begin() + 1000, ins.begin(), ins.end());
  n.insert(n.end(), old_image.begin(), old_image.begin() + 2048);
  return n;
}

bool write(const std::string& dir, const std::string& name, const Bytes& prefix, const Bytes& patch) {
  std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(prefix.data(), 1, prefix.size(), f) == prefix.size() &&
            std::fwrite(patch.data(), 1, patch.size(), f) == patch.size();
  return std::fclose(f) == 0 && ok;
}

// The seeds named ota-* are format versions 1 and 2 (interleaved records, as
// they were first written); the ota3-* seeds are version 3 (record blocks);
// the ota4-* seeds are version 4 (LZMA2 frames).
Bytes delta_patch(const Bytes& o, const Bytes& n, delta::Compression c,
                  delta::PredictorChoice predictor = delta::PredictorChoice::kNone,
                  delta::RecordLayout layout = delta::RecordLayout::kInterleaved) {
  delta::DiffOptions opt;
  opt.layout = layout;
  opt.compression = c;
  opt.predictor = predictor;
  opt.old_dictionary_max = 0;  // kZstd means plain zstd here; kZstdOld is asked for explicitly
  opt.frame_log = 12;
  opt.window_log = 12;
  opt.threads = 1;
  VectorWriter w;
  if (!delta::diff(o, n, w, opt)) std::abort();
  // A seed is only useful if it is valid: check that it applies.
  MemorySource old_source(o);
  MemoryReader reader(w.data());
  VectorWriter check;
  if (!delta::apply(old_source, reader, check) || check.data() != n) std::abort();
  return std::move(w).take();
}

}  // namespace

// Seeds of fuzz_elf_tables: the synthetic ELF with 24 functions, and the
// same without section headers (only the search table is found).
bool write_elf_seeds(const std::string& dir) {
  std::vector<test::Function> funcs;
  std::uint32_t x = 12345;
  for (std::uint32_t i = 0; i < 24; ++i) {
    Bytes code(16 + i * 5 % 40);
    for (auto& b : code) b = static_cast<std::uint8_t>((x = x * 1103515245u + 12345u) >> 16);
    funcs.push_back({i, code});
  }
  const test::Layout l = test::make_elf(funcs, 48, 24);
  Bytes stripped = l.image;
  stripped[60] = stripped[61] = 0;  // e_shnum
  return write(dir, "elf-x86", {}, l.image) && write(dir, "elf-x86-no-sections", {}, stripped);
}

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: %s DIR [ELF_DIR]\n", argv[0]);
    return 2;
  }
  if (argc == 3 && !write_elf_seeds(argv[2])) {
    std::perror("writing the ELF seeds");
    return 1;
  }
  const std::string dir = argv[1];
  const Bytes o = fuzz::fixed_old();
  const Bytes n = edited(o);
  const Bytes code = fuzz::fixed_code_old();
  const Bytes code_new = edited(code);
  constexpr auto kNoPredictor = delta::PredictorChoice::kNone;
  constexpr auto kBlocks = delta::RecordLayout::kBlocks;
  VectorWriter bs;
  if (!bsdiff40::diff(o, n, bs)) return 1;
  // Version 6: NEW ends with an xz stream (as mksquashfs writes them) of
  // 17,000 bytes that do not compress, so that it holds kRecompressMin.
  Bytes xz_new = n;
  {
    Bytes plain(17'000);
    std::uint32_t x = 777;
    for (auto& b : plain) b = static_cast<std::uint8_t>((x = x * 1103515245u + 12345u) >> 16);
    Bytes stream(plain.size() + 1024);
    codec::XzParams p;
    p.dict_size = 32 * 1024;
    auto len = codec::xz_encode(plain, p, stream);
    if (!len) return 1;
    xz_new.insert(xz_new.end(), stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(*len));
  }
  // control 0x00: one feed; 0x03 + three sizes: chunks of 1, 7, 65 bytes;
  // 0x08: skip hashing OLD; 0x20: max_window_log 12; 0x80: the code-like OLD.
  bool ok = write(dir, "ota-zstd", {0x00}, delta_patch(o, n, delta::Compression::kZstd)) &&
            write(dir, "ota-zstd-chunked", {0x23, 0x00, 0x06, 0x40}, delta_patch(o, n, delta::Compression::kZstd)) &&
            write(dir, "ota-raw-chunked", {0x03, 0x00, 0x06, 0x40}, delta_patch(o, n, delta::Compression::kNone)) &&
            write(dir, "ota-raw-noverify", {0x08}, delta_patch(o, n, delta::Compression::kNone)) &&
            write(dir, "ota-empty-new", {0x00}, delta_patch(o, {}, delta::Compression::kZstd)) &&
            write(dir, "ota-thumb-zstd-old", {0x00},
                  delta_patch(o, n, delta::Compression::kZstdOld, delta::PredictorChoice::kThumb)) &&
            write(dir, "ota-x86-raw-chunked", {0x03, 0x00, 0x06, 0x40},
                  delta_patch(o, n, delta::Compression::kNone, delta::PredictorChoice::kX86)) &&
            write(dir, "ota-arm64-zstd", {0x00}, delta_patch(o, n, delta::Compression::kZstd, delta::PredictorChoice::kArm64)) &&
            // 0x80: against the code-like OLD, where the predictors find sites.
            write(dir, "ota-code-arm64-raw", {0x80},
                  delta_patch(code, code_new, delta::Compression::kNone, delta::PredictorChoice::kArm64)) &&
            write(dir, "ota-code-x86-zstd-chunked", {0x83, 0x00, 0x06, 0x40},
                  delta_patch(code, code_new, delta::Compression::kZstd, delta::PredictorChoice::kX86)) &&
            write(dir, "ota-code-thumb-raw", {0x80},
                  delta_patch(code, code_new, delta::Compression::kNone, delta::PredictorChoice::kThumb)) &&
            write(dir, "ota3-zstd", {0x00},
                  delta_patch(o, n, delta::Compression::kZstd, kNoPredictor, kBlocks)) &&
            write(dir, "ota3-raw-chunked", {0x03, 0x00, 0x06, 0x40},
                  delta_patch(o, n, delta::Compression::kNone, kNoPredictor, kBlocks)) &&
            write(dir, "ota3-zstd-chunked-background", {0x43, 0x00, 0x06, 0x40},
                  delta_patch(o, n, delta::Compression::kZstd, kNoPredictor, kBlocks)) &&
            write(dir, "ota3-empty-new", {0x00},
                  delta_patch(o, {}, delta::Compression::kZstd, kNoPredictor, kBlocks)) &&
            write(dir, "ota3-thumb-zstd-old", {0x00},
                  delta_patch(o, n, delta::Compression::kZstdOld, delta::PredictorChoice::kThumb, kBlocks)) &&
            write(dir, "ota3-code-arm64-raw", {0x80},
                  delta_patch(code, code_new, delta::Compression::kNone, delta::PredictorChoice::kArm64,
                              kBlocks)) &&
            write(dir, "ota3-code-x86-zstd-chunked", {0x83, 0x00, 0x06, 0x40},
                  delta_patch(code, code_new, delta::Compression::kZstd, delta::PredictorChoice::kX86,
                              kBlocks)) &&
            write(dir, "ota4-lzma", {0x00}, delta_patch(o, n, delta::Compression::kLzma, kNoPredictor, kBlocks)) &&
            write(dir, "ota4-lzma-chunked-window12", {0x23, 0x00, 0x06, 0x40},
                  delta_patch(o, n, delta::Compression::kLzma, kNoPredictor, kBlocks)) &&
            write(dir, "ota4-empty-new", {0x00}, delta_patch(o, {}, delta::Compression::kLzma, kNoPredictor, kBlocks)) &&
            write(dir, "ota4-thumb-lzma-old", {0x00},
                  delta_patch(o, n, delta::Compression::kLzmaOld, delta::PredictorChoice::kThumb, kBlocks)) &&
            write(dir, "ota4-code-x86-lzma-chunked-background", {0xc3, 0x00, 0x06, 0x40},
                  delta_patch(code, code_new, delta::Compression::kLzma, delta::PredictorChoice::kX86, kBlocks)) &&
            write(dir, "ota6-xz-chunked", {0x03, 0x00, 0x06, 0x40},
                  delta_patch(o, xz_new, delta::Compression::kLzma, kNoPredictor, kBlocks)) &&
            write(dir, "bsdiff40", {0x00}, std::move(bs).take());
  if (!ok) {
    std::perror("writing the corpus");
    return 1;
  }
  return 0;
}
