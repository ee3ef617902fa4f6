// `ota patch OLD PATCH -o OUT`: the command itself, shared by ota (whose CLI11
// parser fills PatchArgs, cmd_patch.cpp) and ota-patch (the static patcher,
// patch_main.cpp, which parses its arguments with parse_patch_args so that no
// option parser or JSON library reaches its memory). Neither the parser nor the
// run uses CLI11 or nlohmann::json.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/delta/delta.hpp"

namespace ota::cli {

struct PatchArgs {
  std::string old_path, patch_path, out_path;
  int max_window_log = delta::kMaxWindowLog;
  bool quiet = false;
  bool json = false;
};

// The help text of `ota-patch --help` (CLI11 writes ota's own).
extern const char* const kPatchUsage;

// Parses ota-patch's arguments (argv without the program name), accepting what
// ota's CLI11 definition accepts: OLD PATCH positionally, -o/--output OUT
// (also --output=OUT, -oOUT), --max-window-log N (10..31), -q/--quiet, --json,
// -h/--help, and "--" before positionals. nullopt with help = true when help was
// asked for; kUsage errors otherwise (exit 2), OLD must exist.
struct ParsedPatchArgs {
  PatchArgs args;
  bool help = false;
};
Result<ParsedPatchArgs> parse_patch_args(const std::vector<std::string>& argv);

// Applies the patch (ota format or BSDIFF40, by magic), prints the --json
// summary on success, and on failure one error line on stderr (and the error
// document with --json). Returns the exit code.
int run_patch_command(const PatchArgs& args);

}  // namespace ota::cli
