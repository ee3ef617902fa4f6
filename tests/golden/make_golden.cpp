// make_golden DIR: writes the golden fixtures into DIR (scripts/make-golden.sh).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "golden/golden.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_golden DIR\n");
    return 2;
  }
  const std::filesystem::path dir(argv[1]);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto scratch = std::filesystem::temp_directory_path() / ("ota-golden-" + std::to_string(::getpid()));
  std::filesystem::create_directories(scratch, ec);
  auto files = ota::golden::generate(scratch.string());
  std::filesystem::remove_all(scratch, ec);
  if (!files) {
    std::fprintf(stderr, "make_golden: %s\n", files.error().message.c_str());
    return 1;
  }
  for (const auto& f : *files) {
    std::ofstream out(dir / f.name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(f.bytes.data()), static_cast<std::streamsize>(f.bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_golden: cannot write %s\n", (dir / f.name).c_str());
      return 1;
    }
  }
  std::printf("%zu files in %s\n", files->size(), dir.c_str());
  return 0;
}
