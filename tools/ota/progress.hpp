// A throttled one-line progress display on stderr for the ota front ends
// (ota and ota-patch): silent when stderr is not a terminal, with --quiet or
// with --json. Depends on nothing but the C library, so the static patcher
// can use it without the CLI parser.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ota::cli {

class Progress {
 public:
  // quiet: --quiet or --json was given.
  Progress(bool quiet, std::string label);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
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

}  // namespace ota::cli
