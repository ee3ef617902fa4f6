#include "cli.hpp"

#include <unistd.h>

#include <cstdio>

#include "error_json.hpp"

namespace ota::cli {

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
