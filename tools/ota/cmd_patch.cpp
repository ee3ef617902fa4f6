// ota patch OLD PATCH -o OUT: ota's CLI11 definition of the command; the
// command itself (and ota-patch's own parser) is patch_command.cpp.
#include "cli.hpp"
#include "patch_command.hpp"

namespace ota::cli {

void add_patch_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto args = std::make_shared<PatchArgs>();
  auto* cmd = app.add_subcommand("patch", "Apply a patch (ota or BSDIFF40, detected by magic) to OLD");
  cmd->footer("Example:\n  ota patch firmware-1.0.bin 1.0-to-1.1.otd -o firmware-1.1.bin");
  cmd->add_option("OLD", args->old_path, "The image the patch was made from")->required()->check(CLI::ExistingFile);
  cmd->add_option("PATCH", args->patch_path, "The patch ('-' reads an ota patch from standard input)")->required();
  cmd->add_option("-o,--output", args->out_path, "Where to write NEW (written atomically)")->required();
  cmd->add_option("--max-window-log", args->max_window_log,
                  "Refuse patches that need a larger decoder window than 2^N bytes")
      ->check(CLI::Range(10, 31));
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print a JSON summary on stdout");
  cmd->callback([&ctx, &exit_code, args] {
    args->quiet = ctx.quiet;
    args->json = ctx.json;
    exit_code = run_patch_command(*args);
  });
}

}  // namespace ota::cli
