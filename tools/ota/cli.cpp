#include "cli.hpp"

#include "ota/hash.hpp"
#include "ota/keys.hpp"
#include "ota/trust.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>

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

void print_json(const nlohmann::ordered_json& doc) { std::cout << doc.dump() << std::endl; }

int report(const Context& ctx, const std::string& command, const Error& error) {
  int code = static_cast<int>(error.code);
  if (code == 0) code = static_cast<int>(ErrorCode::kInternal);
  std::fprintf(stderr, "ota %s: error: %s\n", command.c_str(), error.message.c_str());
  if (ctx.json) {
    nlohmann::ordered_json doc;
    doc["ok"] = false;
    doc["command"] = command;
    doc["error"] = {{"code", code},
                    {"name", std::string(error_code_name(error.code))},
                    {"message", error.message}};
    print_json(doc);
  }
  return code;
}

nlohmann::ordered_json payload_json(const manifest::Payload& p) {
  nlohmann::ordered_json j;
  j["name"] = p.name;
  j["kind"] = std::string(manifest::kind_name(p.kind));
  j["base"] = p.kind == manifest::PayloadKind::kDelta
                  ? nlohmann::ordered_json{{"size", p.base_size}, {"hash", to_hex(p.base_hash)}}
                  : nlohmann::ordered_json(nullptr);
  j["compression"] = std::string(manifest::compression_name(p.compression));
  j["window_log"] = p.window_log;
  j["size"] = p.size;
  j["hash"] = to_hex(p.hash);
  j["chunk_size"] = p.chunk_size;
  j["chunks"] = p.chunks.size();
  return j;
}

nlohmann::ordered_json manifest_json(const manifest::Manifest& m) {
  nlohmann::ordered_json j;
  j["name"] = m.name;
  j["version"] = m.version;
  j["security_version"] = m.security_version;
  j["hardware"] = m.hardware;
  j["created"] = trust::format_time(m.created);
  j["expires"] = m.expires ? nlohmann::ordered_json(trust::format_time(*m.expires)) : nlohmann::ordered_json(nullptr);
  j["target"] = {{"size", m.target_size}, {"hash", to_hex(m.target_hash)}};
  j["payloads"] = nlohmann::ordered_json::array();
  for (const auto& p : m.payloads) j["payloads"].push_back(payload_json(p));
  return j;
}

void PassphraseSource::add_options(CLI::App* cmd) {
  auto* f = cmd->add_option("--passphrase-file", file, "Read the key passphrase from this file (first line)");
  auto* e = cmd->add_option("--passphrase-env", env, "Read the key passphrase from this environment variable");
  f->excludes(e);
}

Result<std::optional<std::string>> read_passphrase(const PassphraseSource& src) {
  if (!src.env.empty()) {
    const char* v = std::getenv(src.env.c_str());
    if (!v || !*v) return fail(ErrorCode::kUsage, "environment variable " + src.env + " is not set or empty");
    return std::optional<std::string>(v);
  }
  if (!src.file.empty()) {
    auto bytes = read_file(src.file);
    if (!bytes) return fail(bytes.error().with_context("passphrase file"));
    std::string p(bytes->begin(), bytes->end());
    keys::wipe(bytes->data(), bytes->size());
    auto nl = p.find('\n');
    if (nl != std::string::npos) p.resize(nl);
    if (!p.empty() && p.back() == '\r') p.pop_back();
    if (p.empty()) return fail(ErrorCode::kUsage, "the passphrase file '" + src.file + "' is empty");
    return std::optional<std::string>(std::move(p));
  }
  return std::optional<std::string>();
}

Result<std::int64_t> time_now_or(const std::string& at) {
  if (at.empty()) return static_cast<std::int64_t>(std::time(nullptr));
  auto t = trust::parse_time(at);
  if (!t) return fail(ErrorCode::kUsage, "--at: " + t.error().message);
  return *t;
}

Result<std::int64_t> build_time() {
  const char* sde = std::getenv("SOURCE_DATE_EPOCH");
  if (!sde || !*sde) return static_cast<std::int64_t>(std::time(nullptr));
  std::int64_t v = 0;
  for (const char* p = sde; *p; ++p) {
    if (*p < '0' || *p > '9' || v > (std::int64_t{1} << 40))
      return fail(ErrorCode::kUsage, "SOURCE_DATE_EPOCH is not a number of seconds");
    v = v * 10 + (*p - '0');
  }
  return v;
}

}  // namespace ota::cli
