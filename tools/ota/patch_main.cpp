// ota-patch: `ota patch` as a small, statically linked program. It applies ota
// and BSDIFF40 patches and nothing else, so its whole process fits the
// patcher's memory budget (2 MiB on a 150 MB image, docs/benchmarks.md) and it
// runs on a device root filesystem without any of ota's shared libraries.
// `ota patch ...` executes it when it sits next to the ota binary. The command
// is patch_command.cpp, shared with ota; only the argument parser is its own
// (parse_patch_args: no option parser or JSON library in this process), and
// it accepts what ota's CLI11 definition of `ota patch` accepts.
#include <malloc.h>

#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "patch_command.hpp"

int main(int argc, char** argv) {
  // The background hashing thread allocates nothing big: one malloc arena
  // for the process saves the second arena's pages.
  ::mallopt(M_ARENA_MAX, 1);
  try {
    std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    auto parsed = ota::cli::parse_patch_args(args);
    if (!parsed) {
      std::fprintf(stderr, "ota patch: error: %s\nRun with --help for more information.\n",
                   parsed.error().message.c_str());
      return static_cast<int>(ota::ErrorCode::kUsage);
    }
    if (parsed->help) {
      std::fputs(ota::cli::kPatchUsage, stdout);
      return 0;
    }
    return ota::cli::run_patch_command(parsed->args);
  } catch (const std::bad_alloc&) {
    std::fputs("ota-patch: error: out of memory\n", stderr);
    return static_cast<int>(ota::ErrorCode::kOutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ota-patch: internal error: %s\n", e.what());
    return static_cast<int>(ota::ErrorCode::kInternal);
  }
}
