// ota verify, ota inspect
#include <cstdio>

#include "cli.hpp"
#include "error_json.hpp"
#include "ota/release/bundle.hpp"

namespace ota::cli {

namespace {

using OJson = nlohmann::ordered_json;

struct VerifyArgs {
  std::string bundle, trust_path, at, hw, installed_version, save_root;
  std::vector<std::string> roots;
  std::optional<std::uint64_t> security_floor;
  bool metadata_only = false, no_expiry = false;
};

// Each check in order; a failure names the check it belongs to.
struct Checks {
  OJson list = OJson::array();
  void pass(const std::string& name, OJson detail = OJson::object()) {
    OJson c;
    c["check"] = name;
    c["ok"] = true;
    for (auto& [k, v] : detail.items()) c[k] = v;
    list.push_back(std::move(c));
  }
  void failed(const std::string& name, const Error& e, OJson detail = OJson::object()) {
    OJson c;
    c["check"] = name;
    c["ok"] = false;
    for (auto& [k, v] : detail.items()) c[k] = v;
    c["error"] = front_end::error_json(e, false);
    list.push_back(std::move(c));
  }
};

OJson sig_json(const trust::ThresholdReport& r) {
  OJson j;
  j["valid"] = r.valid;
  j["threshold"] = r.threshold;
  j["signatures"] = OJson::array();
  for (const auto& c : r.checks)
    j["signatures"].push_back({{"keyid", to_hex(c.key_id)}, {"status", std::string(trust::sig_status_name(c.status))}});
  return j;
}

// The check a verify() error belongs to.
std::string check_of(const Error& e) {
  switch (e.code) {
    case ErrorCode::kBadSignature:
    case ErrorCode::kTooFewSignatures:
    case ErrorCode::kUnknownKey:
    case ErrorCode::kKeyRevoked: return "signatures";
    case ErrorCode::kExpired: return e.message.find("trust root") != std::string::npos ? "trust_root" : "expiry";
    case ErrorCode::kIncompatibleHardware: return "hardware";
    case ErrorCode::kDowngrade: return "version";
    default: return "manifest";
  }
}

int run_verify(const Context& ctx, const VerifyArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  Checks checks;
  OJson doc;
  doc["ok"] = false;
  doc["command"] = "verify";
  doc["bundle"] = a.bundle;
  doc["metadata_only"] = a.metadata_only;
  auto finish = [&](const Error* err) -> int {
    doc["verdict"] = err ? "rejected" : (a.metadata_only ? "metadata-valid" : "valid");
    doc["checks"] = checks.list;
    doc["timings"] = {{"total_s", seconds_since(t0)}};
    if (!err) {
      doc["ok"] = true;
      if (ctx.json) print_json(doc);
      else if (!ctx.quiet)
        std::printf("%s: %s\n", a.bundle.c_str(),
                    a.metadata_only ? "signatures and metadata valid (payloads NOT checked: --metadata-only)" : "valid");
      return 0;
    }
    std::fprintf(stderr, "ota verify: error: %s\n", err->message.c_str());
    if (ctx.json) {
      doc["error"] = front_end::error_json(*err);
      print_json(doc);
    }
    return front_end::exit_code(*err);
  };

  auto now = time_now_or(a.at);
  if (!now) return finish(&now.error());
  auto store = trust::TrustStore::load(a.trust_path);
  if (!store) {
    checks.failed("trust_root", store.error());
    return finish(&store.error());
  }
  for (const auto& path : a.roots) {
    auto bytes = read_file(path);
    if (!bytes) return finish(&bytes.error());
    auto env = trust::parse_envelope(std::string(bytes->begin(), bytes->end()));
    if (!env) {
      Error e = env.error().with_context(path);
      checks.failed("trust_root", e);
      return finish(&e);
    }
    if (auto st = store->update(*env); !st) {
      Error e = st.error().with_context(path);
      checks.failed("trust_root", e);
      return finish(&e);
    }
  }
  auto in = FileReader::open(a.bundle);
  if (!in) return finish(&in.error());
  auto reader = bundle::BundleReader::open(**in);
  if (!reader) {
    checks.failed("container", reader.error());
    return finish(&reader.error());
  }
  checks.pass("container");
  bundle::VerifyOptions opts;
  opts.check_expiry = !a.no_expiry;
  opts.policy.now = *now;
  if (!a.hw.empty()) opts.policy.hardware = a.hw;
  if (!a.installed_version.empty()) opts.policy.installed_version = a.installed_version;
  opts.policy.security_floor = a.security_floor;
  trust::ThresholdReport report;
  const std::uint64_t root_before = store->root().version;
  auto m = (*reader)->verify(*store, opts, &report);
  OJson root_detail = {{"version", store->root().version},
                       {"expires", trust::format_time(store->root().expires)},
                       {"updated_from", root_before}};
  doc["root"] = root_detail;
  if (!m) {
    const std::string which = check_of(m.error());
    if (which != "trust_root") checks.pass("trust_root", root_detail);
    if (which == "signatures") checks.failed("signatures", m.error(), sig_json(report));
    else if (which == "trust_root") checks.failed("trust_root", m.error(), root_detail);
    else {
      checks.pass("signatures", sig_json(report));
      checks.failed(which, m.error());
    }
    return finish(&m.error());
  }
  checks.pass("trust_root", root_detail);
  checks.pass("signatures", sig_json(report));
  checks.pass("manifest");
  checks.pass("policy", {{"expiry", a.no_expiry ? "not checked" : "checked"},
                         {"hardware", a.hw.empty() ? OJson(nullptr) : OJson(a.hw)},
                         {"installed_version", a.installed_version.empty() ? OJson(nullptr) : OJson(a.installed_version)},
                         {"security_floor", a.security_floor ? OJson(*a.security_floor) : OJson(nullptr)}});
  doc["manifest"] = manifest_json(*m);
  if (!a.metadata_only) {
    std::uint64_t total = 0, done = 0;
    for (const auto& p : m->payloads) total += p.size;
    Progress progress(ctx, "verify");
    Bytes buf(256 * 1024);
    while (true) {
      auto idx = (*reader)->next_payload();
      if (!idx) {
        checks.failed("payloads", idx.error(), {{"bytes", done}});
        return finish(&idx.error());
      }
      if (!*idx) break;
      while (true) {
        auto n = (*reader)->read(buf);
        if (!n) {
          checks.failed("payloads", n.error(), {{"bytes", done}});
          return finish(&n.error());
        }
        if (*n == 0) break;
        done += *n;
        progress.update(done, total);
      }
    }
    progress.done();
    checks.pass("payloads", {{"bytes", done}});
  }
  if (!a.save_root.empty() && store->root().version > root_before) {
    std::string text = trust::encode_envelope(store->envelope());
    if (auto st = write_file_atomic(a.save_root, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
        !st)
      return finish(&st.error());
  }
  return finish(nullptr);
}

struct InspectArgs {
  std::string bundle;
};

Status run_inspect(const Context& ctx, const InspectArgs& a) {
  OTA_TRY_ASSIGN(auto in, FileReader::open(a.bundle));
  OTA_TRY_ASSIGN(auto reader, bundle::BundleReader::open(*in));
  OTA_TRY_ASSIGN(auto m, (reader)->parse_unverified());
  const auto& block = (reader)->signature_block();
  const Bytes sig_bytes = bundle::encode_signature_block(block);
  const auto lay = bundle::layout((reader)->manifest_bytes().size(), sig_bytes.size(), m);
  OJson doc;
  doc["ok"] = true;
  doc["command"] = "inspect";
  doc["bundle"] = a.bundle;
  doc["verified"] = false;
  doc["manifest"] = manifest_json(m);
  doc["signatures"] = OJson::array();
  for (const auto& s : block.signatures) doc["signatures"].push_back({{"keyid", to_hex(s.key_id)}});
  doc["root_updates"] = block.roots.size();
  doc["members"] = OJson::array();
  for (const auto& mem : lay.members)
    doc["members"].push_back({{"path", mem.path}, {"offset", mem.data_offset}, {"size", mem.size}});
  doc["size"] = lay.total_size;
  if (ctx.json) {
    print_json(doc);
    return ok();
  }
  std::printf("bundle     %s (%llu bytes; signatures not checked: use `ota verify`)\n", a.bundle.c_str(),
              static_cast<unsigned long long>(lay.total_size));
  std::printf("name       %s\nversion    %s\nsecurity   %llu\n", m.name.c_str(), m.version.c_str(),
              static_cast<unsigned long long>(m.security_version));
  std::string hw;
  for (const auto& h : m.hardware) hw += (hw.empty() ? "" : ", ") + h;
  std::printf("hardware   %s\ncreated    %s\nexpires    %s\n", hw.c_str(), trust::format_time(m.created).c_str(),
              m.expires ? trust::format_time(*m.expires).c_str() : "never");
  std::printf("target     %llu bytes, blake2b-256 %s\n", static_cast<unsigned long long>(m.target_size),
              to_hex(m.target_hash).c_str());
  for (const auto& p : m.payloads) {
    std::printf("payload    %s: %s, %s (window 2^%u), %llu bytes, %zu chunks of %u, blake2b-256 %s\n", p.name.c_str(),
                std::string(manifest::kind_name(p.kind)).c_str(), std::string(manifest::compression_name(p.compression)).c_str(),
                p.window_log, static_cast<unsigned long long>(p.size), p.chunks.size(), p.chunk_size,
                to_hex(p.hash).c_str());
    if (p.kind == manifest::PayloadKind::kDelta)
      std::printf("             from base %llu bytes, blake2b-256 %s\n", static_cast<unsigned long long>(p.base_size),
                  to_hex(p.base_hash).c_str());
  }
  for (const auto& s : block.signatures) std::printf("signature  key %s\n", to_hex(s.key_id).c_str());
  if (block.signatures.empty()) std::printf("signature  none (unsigned)\n");
  if (!block.roots.empty()) std::printf("roots      %zu root update(s) attached\n", block.roots.size());
  return ok();
}

}  // namespace

void add_verify_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto a = std::make_shared<VerifyArgs>();
  auto* cmd = app.add_subcommand("verify", "Verify a bundle against a trust root");
  cmd->footer(
      "Exit 0 only when a threshold of distinct trusted, unrevoked keys signed, nothing is expired\n"
      "and every payload chunk matches. Exit codes: docs/error-codes.md.\n"
      "Example:\n  ota verify fw-1.1.otb --trust root.json --hw board-a");
  cmd->add_option("BUNDLE", a->bundle, "The bundle")->required();
  cmd->add_option("--trust", a->trust_path, "The trust root (root.json)")->required();
  cmd->add_option("--root", a->roots, "A newer root version to walk to first (repeat, in order)");
  cmd->add_option("--hw", a->hw, "Require this hardware id");
  cmd->add_option("--installed-version", a->installed_version, "Reject versions not newer than this");
  cmd->add_option("--security-floor", a->security_floor, "Reject security versions below this");
  cmd->add_option("--at", a->at, "Check expiry as of this UTC time instead of now");
  cmd->add_flag("--ignore-expiry", a->no_expiry, "Do not check expiry (reported in --json)");
  cmd->add_flag("--metadata-only", a->metadata_only, "Check signatures and metadata only, not the payload bytes");
  cmd->add_option("--save-root", a->save_root, "Write the newest root reached (after walking updates) here");
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print the verdict and each check as JSON on stdout");
  cmd->callback([&ctx, &exit_code, a] { exit_code = run_verify(ctx, *a); });
}

void add_inspect_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto a = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Show a bundle's manifest, payloads and signatures (not verified)");
  cmd->footer("Example:\n  ota inspect fw-1.1.otb --json");
  cmd->add_option("BUNDLE", a->bundle, "The bundle")->required();
  cmd->add_flag("--json", ctx.json, "Print JSON on stdout");
  cmd->callback([&ctx, &exit_code, a] {
    auto st = run_inspect(ctx, *a);
    exit_code = st ? 0 : report(ctx, "inspect", st.error());
  });
}

}  // namespace ota::cli
