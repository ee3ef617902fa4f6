// Shared plumbing of the ota subcommands: output mode, progress, errors.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "ota/error.hpp"

namespace ota::cli {

struct Context {
  bool quiet = false;
  bool json = false;
};

// A throttled one-line progress display on stderr; silent when stderr is not
// a terminal, with --quiet or with --json.
class Progress {
 public:
  Progress(const Context& ctx, std::string label);
  ~Progress();
  void update(std::uint64_t done, std::uint64_t total);
  void done();

 private:
  bool enabled_;
  std::string label_;
  std::chrono::steady_clock::time_point last_{};
  bool shown_ = false;
};

// Seconds since start, for --json timings.
double seconds_since(std::chrono::steady_clock::time_point start);

// Prints a JSON document on stdout (one line, stable key order).
void print_json(const nlohmann::ordered_json& doc);

// Reports an error (one line on stderr; a JSON document with --json) and
// returns the exit code, which is the pinned ErrorCode value.
int report(const Context& ctx, const std::string& command, const Error& error);

// The subcommands; each registers itself and its callback.
void add_diff_command(CLI::App& app, Context& ctx, int& exit_code);
void add_patch_command(CLI::App& app, Context& ctx, int& exit_code);

}  // namespace ota::cli
