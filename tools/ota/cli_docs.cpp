// --json views of manifests, passphrases and clocks: the helpers of the
// signing and bundle commands (cli.cpp holds what every command needs).
#include "cli.hpp"

#include "ota/core/hash.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ota::cli {
nlohmann::ordered_json payload_json(const manifest::Payload& p) {
  nlohmann::ordered_json j;
  j["name"] = p.name;
  j["kind"] = std::string(manifest::kind_name(p.kind));
  j["format"] = p.kind == manifest::PayloadKind::kSbom ? nlohmann::ordered_json(manifest::sbom_format_name(p.sbom_format))
                                                        : nlohmann::ordered_json(nullptr);
  j["base"] = p.kind == manifest::PayloadKind::kDelta
                  ? nlohmann::ordered_json{{"size", p.base_size}, {"hash", to_hex(p.base_hash)}}
                  : nlohmann::ordered_json(nullptr);
  j["index"] = p.kind == manifest::PayloadKind::kChunks
                   ? nlohmann::ordered_json{{"size", p.index_size}, {"hash", to_hex(p.index_hash)}}
                   : nlohmann::ordered_json(nullptr);
  j["compression"] = std::string(manifest::compression_name(p.compression));
  j["window_log"] = p.window_log;
  j["size"] = p.size;
  j["hash"] = to_hex(p.hash);
  // Encrypted: size and hash name the ciphertext, plain the bytes inside.
  j["plain"] = p.plain_hash != Digest{} ? nlohmann::ordered_json{{"size", p.plain_size}, {"hash", to_hex(p.plain_hash)}}
                                        : nlohmann::ordered_json(nullptr);
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
  j["security"] = m.security ? nlohmann::ordered_json{{"advisory", m.security->advisory}, {"ids", m.security->ids}}
                             : nlohmann::ordered_json(nullptr);
  if (m.encryption) {
    nlohmann::ordered_json e;
    e["cipher"] = "xchacha20poly1305-ietf";
    e["block_size"] = m.encryption->block_size;
    e["recipients"] = nlohmann::ordered_json::array();
    for (const auto& r : m.encryption->recipients) e["recipients"].push_back(to_hex(r.key_id));
    j["encryption"] = std::move(e);
  } else {
    j["encryption"] = nullptr;
  }
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

trust::PassphraseSource passphrase_of(const PassphraseSource& src) {
  return [src] { return read_passphrase(src); };
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
