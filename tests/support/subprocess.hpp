// Runs a program (the ota CLI, Debian's bsdiff/bspatch) and captures its
// exit status, stdout and stderr.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ota::test {

struct ProcessResult {
  int exit_code = -1;    // the exit status, or -1 when the process did not exit normally
  int term_signal = 0;   // the signal that killed it, if any (a crash)
  std::string out;       // everything written to stdout
  std::string err;       // everything written to stderr

  bool crashed() const { return term_signal != 0; }
};

struct ProcessOptions {
  // File to connect to stdin; /dev/null when empty.
  std::string stdin_path;
  // Kill the process after this many seconds (a hang is a failure, not a stuck test run).
  int timeout_seconds = 60;
};

// Runs argv[0] (a path, not searched in PATH) with argv. Throws only when the
// process cannot be started at all.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// True when path names an executable file.
bool is_executable(const std::string& path);

// Splits text into lines (a trailing newline does not make an empty last line).
std::vector<std::string> split_lines(const std::string& text);

}  // namespace ota::test
