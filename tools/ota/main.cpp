// ota: the command-line tool. main only wires the subcommands and maps an
// error to its exit code (docs/error-codes.md).
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

// `ota patch` is carried out by ota-patch (tools/ota/patch_main.cpp), a small
// static build of the same command, when it sits next to this binary: a device
// or a pipeline applying a 150 MB patch then pays for the patcher's memory,
// not for every other command's code. Returns only when it is not there (or
// OTA_PATCH_IN_PROCESS is set): the command then runs in this process.
void run_patch_binary(int argc, char** argv) {
  if (std::getenv("OTA_PATCH_IN_PROCESS")) return;
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return;
  std::string path(self, static_cast<std::size_t>(n));
  path.replace(path.rfind('/') + 1, std::string::npos, "ota-patch");
  std::vector<char*> args{const_cast<char*>("ota-patch")};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execv(path.c_str(), args.data());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "patch") == 0) run_patch_binary(argc, argv);
  CLI::App app{"ota: signed, delta-compressed firmware updates"};
  app.require_subcommand(1);
  app.footer("Example:\n  ota diff old.bin new.bin -o update.otd\nEvery command has --help with an example; exit codes: docs/error-codes.md.");
  app.set_version_flag("--version", std::string("ota ") + OTA_VERSION);
  ota::cli::Context ctx;
  int exit_code = 0;
  ota::cli::add_diff_command(app, ctx, exit_code);
  ota::cli::add_patch_command(app, ctx, exit_code);
  ota::cli::add_keygen_command(app, ctx, exit_code);
  ota::cli::add_root_command(app, ctx, exit_code);
  ota::cli::add_build_command(app, ctx, exit_code);
  ota::cli::add_sign_command(app, ctx, exit_code);
  ota::cli::add_verify_command(app, ctx, exit_code);
  ota::cli::add_inspect_command(app, ctx, exit_code);
  ota::cli::add_publish_command(app, ctx, exit_code);
  ota::cli::add_campaign_commands(app, ctx, exit_code);
  ota::cli::add_device_command(app, ctx, exit_code);
  return ota::cli::parse_and_run(app, argc, argv, "ota", exit_code);
}
