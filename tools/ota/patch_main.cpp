// ota-patch: `ota patch` as a small, statically linked program. It applies ota
// and BSDIFF40 patches and nothing else, so its whole process fits the
// patcher's memory budget (3 MiB on a 150 MB image, docs/benchmarks.md) and it
// runs on a device root filesystem without any of ota's shared libraries.
// `ota patch ...` executes it when it sits next to the ota binary; both parse
// the same options (cmd_patch.cpp), print the same messages and exit with the
// same codes.
#include <cstdio>
#include <cstring>
#include <vector>

#include "cli.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ota: signed, delta-compressed firmware updates"};
  app.name("ota");
  app.require_subcommand(1);
  ota::cli::Context ctx;
  int exit_code = 0;
  ota::cli::add_patch_command(app, ctx, exit_code);
  // `ota-patch ARGS` is `ota patch ARGS`.
  std::vector<const char*> args{"ota", "patch"};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ota::ErrorCode::kUsage);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "ota patch: error: out of memory\n");
    return static_cast<int>(ota::ErrorCode::kOutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ota patch: internal error: %s\n", e.what());
    return static_cast<int>(ota::ErrorCode::kInternal);
  }
  return exit_code;
}
