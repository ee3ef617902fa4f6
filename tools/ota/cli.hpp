// Shared plumbing of the ota subcommands: output mode, progress, errors.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "ota/core/error.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"
#include "progress.hpp"

namespace ota::cli {

// --key: a key file that exists, or a key in a PKCS#11 token named by its
// RFC 7512 URI (ota/release/pkcs11.hpp).
inline const CLI::Validator& key_file_or_uri() {
  static const CLI::Validator v(
      [](std::string& s) -> std::string {
        if (s.rfind("pkcs11:", 0) == 0) return {};
        return CLI::ExistingFile(s);
      },
      "FILE|pkcs11:URI", "KeyFileOrUri");
  return v;
}

struct Context {
  bool quiet = false;
  bool json = false;
};

// Prints a JSON document on stdout (one line, stable key order).
void print_json(const nlohmann::ordered_json& doc);

// Reports an error (one line on stderr; a JSON document with --json) and
// returns the exit code, which is the pinned ErrorCode value.
int report(const Context& ctx, const std::string& command, const Error& error);

// --json views of a manifest and of one payload (build, verify, inspect).
nlohmann::ordered_json payload_json(const manifest::Payload& p);
nlohmann::ordered_json manifest_json(const manifest::Manifest& m);

// Where a passphrase comes from: a file or an environment variable, never argv.
struct PassphraseSource {
  std::string file;
  std::string env;
  void add_options(CLI::App* cmd);
};
// The passphrase (trailing newline removed), nullopt when none was named.
Result<std::optional<std::string>> read_passphrase(const PassphraseSource& src);
// src as the library's passphrase source (read when the first key is opened).
trust::PassphraseSource passphrase_of(const PassphraseSource& src);

// The current time, or --at TIME when given (for audits and tests).
Result<std::int64_t> time_now_or(const std::string& at);
// SOURCE_DATE_EPOCH when set (reproducible builds), else the current time.
Result<std::int64_t> build_time();

// Parses argv and runs the chosen subcommand's callback; returns its exit
// code, or the pinned code of a usage error (2), an out-of-memory (9) or an
// internal error, printed as "<who>: error: ..." (ota and ota-patch).
int parse_and_run(CLI::App& app, int argc, const char* const* argv, const char* who, const int& exit_code);

// The subcommands; each registers itself and its callback.
void add_diff_command(CLI::App& app, Context& ctx, int& exit_code);
void add_patch_command(CLI::App& app, Context& ctx, int& exit_code);
void add_keygen_command(CLI::App& app, Context& ctx, int& exit_code);
void add_root_command(CLI::App& app, Context& ctx, int& exit_code);
void add_build_command(CLI::App& app, Context& ctx, int& exit_code);
void add_sign_command(CLI::App& app, Context& ctx, int& exit_code);
void add_verify_command(CLI::App& app, Context& ctx, int& exit_code);
void add_inspect_command(CLI::App& app, Context& ctx, int& exit_code);
void add_publish_command(CLI::App& app, Context& ctx, int& exit_code);
void add_campaign_commands(CLI::App& app, Context& ctx, int& exit_code);
// ota campaign serve|report (cmd_campaign_view.cpp), under `ota campaign`.
void add_campaign_view_commands(CLI::App* camp, Context& ctx, int& exit_code);
void add_device_command(CLI::App& app, Context& ctx, int& exit_code);

}  // namespace ota::cli
