#include "cli.hpp"

#include <unistd.h>

#include <cstdio>

#include "error_json.hpp"

namespace ota::cli {

Progress::Progress(const Context& ctx, std::string label)
    : enabled_(!ctx.quiet && !ctx.json && ::isatty(STDERR_FILENO)), label_(std::move(label)) {}

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

void print_json(const nlohmann::ordered_json& doc) {
  const std::string line = doc.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

int report(const Context& ctx, const std::string& command, const Error& error) {
  std::fprintf(stderr, "ota %s: error: %s\n", command.c_str(), error.message.c_str());
  if (ctx.json) print_json(front_end::error_document(command, error));
  return front_end::exit_code(error);
}

int parse_and_run(CLI::App& app, int argc, const char* const* argv, const char* who, const int& exit_code) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ErrorCode::kUsage);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", who);
    return static_cast<int>(ErrorCode::kOutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", who, e.what());
    return static_cast<int>(ErrorCode::kInternal);
  }
  return exit_code;
}

}  // namespace ota::cli
