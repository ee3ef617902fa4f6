// ota: the command-line tool. main only wires the subcommands and maps an
// error to its exit code (docs/error-codes.md).
#include <cstdio>

#include "cli.hpp"

int main(int argc, char** argv) {
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
  ota::cli::add_campaign_commands(app, ctx, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ota::ErrorCode::kUsage);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "ota: error: out of memory\n");
    return static_cast<int>(ota::ErrorCode::kOutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ota: internal error: %s\n", e.what());
    return static_cast<int>(ota::ErrorCode::kInternal);
  }
  return exit_code;
}
