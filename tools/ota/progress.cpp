#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace ota::cli {

Progress::Progress(bool quiet, std::string label)
    : enabled_(!quiet && ::isatty(STDERR_FILENO)), label_(std::move(label)) {}

Progress::~Progress() { done(); }

void Progress::update(std::uint64_t done_bytes, std::uint64_t total) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (shown_ && now - last_ < std::chrono::milliseconds(100) && done_bytes != total) return;
  last_ = now;
  shown_ = true;
  double pct = total ? 100.0 * static_cast<double>(done_bytes) / static_cast<double>(total) : 100.0;
  std::fprintf(stderr, "\r%s %5.1f%%  %.1f / %.1f MB", label_.c_str(), pct, static_cast<double>(done_bytes) / 1e6,
               static_cast<double>(total) / 1e6);
  std::fflush(stderr);
}

void Progress::done() {
  if (enabled_ && shown_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  shown_ = false;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace ota::cli
