// ota-patch: `ota patch` as a small, statically linked program. It applies ota
// and BSDIFF40 patches and nothing else, so its whole process fits the
// patcher's memory budget (3 MiB on a 150 MB image, docs/benchmarks.md) and it
// runs on a device root filesystem without any of ota's shared libraries.
// `ota patch ...` executes it when it sits next to the ota binary; both parse
// the same options (cmd_patch.cpp), print the same messages and exit with the
// same codes.
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
  return ota::cli::parse_and_run(app, static_cast<int>(args.size()), args.data(), "ota patch", exit_code);
}
