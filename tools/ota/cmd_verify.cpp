// ota verify, ota inspect
#include <cstdio>

#include "cli.hpp"
#include "error_json.hpp"
#include "ota/delta/delta.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/encryption.hpp"
#include "ota/release/sbom.hpp"
#include "ota/release/verify.hpp"

namespace ota::cli {

namespace {

using OJson = nlohmann::ordered_json;

struct VerifyArgs {
  std::string bundle, trust_path, at, hw, installed_version, save_root, decryption_key;
  std::vector<std::string> roots;
  std::optional<std::uint64_t> security_floor;
  bool metadata_only = false, no_expiry = false;
};

// The --json view of a check: its name, ok, its details, and the error of a failure.
OJson check_json(const std::string& name, const bundle::CheckResult& c, const OJson& detail = OJson::object()) {
  OJson j;
  j["check"] = name;
  j["ok"] = c.outcome == bundle::Outcome::kPassed;
  for (auto& [k, v] : detail.items()) j[k] = v;
  if (c.error) j["error"] = front_end::error_json(*c.error, false);
  return j;
}

OJson sig_json(const trust::ThresholdReport& r) {
  OJson j;
  j["valid"] = r.valid;
  j["threshold"] = r.threshold;
  j["signatures"] = OJson::array();
  for (const auto& c : r.checks)
    j["signatures"].push_back({{"keyid", to_hex(c.key_id)}, {"status", std::string(trust::sig_status_name(c.status))}});
  return j;
}

int run_verify(const Context& ctx, const VerifyArgs& a) {
  using bundle::Check;
  using bundle::Outcome;
  auto t0 = std::chrono::steady_clock::now();
  OJson checks = OJson::array();
  OJson doc;
  doc["ok"] = false;
  doc["command"] = "verify";
  doc["bundle"] = a.bundle;
  doc["metadata_only"] = a.metadata_only;
  auto finish = [&](const Error* err) -> int {
    doc["verdict"] = err ? "rejected" : (a.metadata_only ? "metadata-valid" : "valid");
    doc["checks"] = checks;
    doc["timings"] = {{"total_s", seconds_since(t0)}};
    if (!err) {
      doc["ok"] = true;
      if (ctx.json) print_json(doc);
      else if (!ctx.quiet)
        std::printf("%s: %s%s\n", a.bundle.c_str(),
                    a.metadata_only ? "signatures and metadata valid (payloads NOT checked: --metadata-only)" : "valid",
                    doc.contains("plaintext") && !doc["plaintext"]["checked"].get<bool>()
                        ? " (encrypted: ciphertext checked; plaintext not, without --decryption-key)"
                        : "");
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
  bundle::VerifyOptions opts;
  opts.check_expiry = !a.no_expiry;
  opts.policy.now = *now;
  if (!a.hw.empty()) opts.policy.hardware = a.hw;
  if (!a.installed_version.empty()) opts.policy.installed_version = a.installed_version;
  opts.policy.security_floor = a.security_floor;
  Progress progress(ctx.quiet || ctx.json, "verify");
  const auto r = bundle::verify_bundle_file(a.bundle, a.trust_path, a.roots, opts, a.metadata_only,
                                            [&](std::uint64_t d, std::uint64_t t) { progress.update(d, t); });
  progress.done();

  // What is printed: each check that ran, in order, with these details. The
  // root is shown once the bundle's own checks began (the container read).
  // The manifest and the policy parts (expiry, hardware, version) show as
  // "manifest" and "policy" when all passed, else as the one that failed.
  OJson root_detail = OJson::object();
  if (r.outcome(Check::kContainer) == Outcome::kPassed) {
    root_detail = {{"version", r.trust->root().version},
                   {"expires", trust::format_time(r.trust->root().expires)},
                   {"updated_from", r.root_version_before}};
    doc["root"] = root_detail;
  }
  const bool policy_passed = r.outcome(Check::kManifest) == Outcome::kPassed &&
                             r.outcome(Check::kExpiry) != Outcome::kFailed &&
                             r.outcome(Check::kHardware) != Outcome::kFailed &&
                             r.outcome(Check::kVersion) != Outcome::kFailed;
  const bundle::CheckResult passed{Check::kManifest, Outcome::kPassed, {}};
  for (const auto& c : r.checks) {
    const std::string name(bundle::check_name(c.check));
    switch (c.check) {
      case Check::kManifest:  // the manifest and the policy, together
        if (policy_passed) {
          checks.push_back(check_json("manifest", passed));
          checks.push_back(check_json(
              "policy", passed,
              {{"expiry", a.no_expiry ? "not checked" : "checked"},
               {"hardware", a.hw.empty() ? OJson(nullptr) : OJson(a.hw)},
               {"installed_version", a.installed_version.empty() ? OJson(nullptr) : OJson(a.installed_version)},
               {"security_floor", a.security_floor ? OJson(*a.security_floor) : OJson(nullptr)}}));
          doc["manifest"] = manifest_json(*r.manifest);
        } else {
          for (auto part : {Check::kManifest, Check::kExpiry, Check::kHardware, Check::kVersion})
            if (r.outcome(part) == Outcome::kFailed)
              checks.push_back(check_json(std::string(bundle::check_name(part)), r.at(part)));
        }
        break;
      case Check::kExpiry:
      case Check::kHardware:
      case Check::kVersion: break;  // with the manifest
      default:
        if (c.outcome == Outcome::kSkipped) break;
        if (c.check == Check::kTrustRoot) checks.push_back(check_json(name, c, root_detail));
        else if (c.check == Check::kSignatures) checks.push_back(check_json(name, c, sig_json(r.signatures)));
        else if (c.check == Check::kPayloads) checks.push_back(check_json(name, c, {{"bytes", r.payload_bytes}}));
        else checks.push_back(check_json(name, c));
    }
  }
  if (r.error) return finish(&*r.error);
  // An encrypted bundle: the ciphertext is checked above; with the key, the
  // plaintext too (every block's tag and each payload's plain hash).
  if (r.manifest && r.manifest->encryption && !a.metadata_only) {
    doc["plaintext"] = {{"checked", false}, {"bytes", 0}};
    if (!a.decryption_key.empty()) {
      auto checked = [&]() -> Result<std::uint64_t> {
        OTA_TRY_ASSIGN(auto key, encryption::load_secret(a.decryption_key));
        OTA_TRY_ASSIGN(auto in, FileReader::open(a.bundle));
        OTA_TRY_ASSIGN(auto reader, bundle::BundleReader::open(*in));
        if (content_hash(reader->manifest_bytes()) != r.manifest_hash)
          return fail(ErrorCode::kMalformed, "the bundle changed while it was verified");
        trust::TrustStore again = *r.trust;  // the root reached: the signatures check once more, cheaply
        OTA_TRY_ASSIGN(auto m, reader->verify(again, opts));
        (void)m;
        Progress decrypting(ctx.quiet || ctx.json, "decrypt");
        auto n = encryption::check_plaintext(std::move(reader), *r.manifest, key,
                                             [&](std::uint64_t d, std::uint64_t t) { decrypting.update(d, t); });
        decrypting.done();
        return n;
      }();
      if (!checked) {
        checks.push_back({{"check", "plaintext"}, {"ok", false}, {"error", front_end::error_json(checked.error(), false)}});
        return finish(&checked.error());
      }
      doc["plaintext"] = {{"checked", true}, {"bytes", *checked}};
      checks.push_back({{"check", "plaintext"}, {"ok", true}, {"bytes", *checked}});
    }
  } else if (!a.decryption_key.empty() && r.manifest && !r.manifest->encryption) {
    Error e{ErrorCode::kUsage, "--decryption-key: the bundle is not encrypted"};
    return finish(&e);
  }
  if (!a.save_root.empty() && r.trust->root().version > r.root_version_before) {
    std::string text = trust::encode_envelope(r.trust->envelope());
    if (auto st = write_file_atomic(a.save_root, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
        !st)
      return finish(&st.error());
  }
  return finish(nullptr);
}

struct InspectArgs {
  std::string bundle, decryption_key, sbom_out;
};

// The SBOM payload's bytes (chunk-checked against the manifest as read;
// decrypted with the key when the bundle is encrypted).
Result<Bytes> read_sbom(std::unique_ptr<bundle::BundleReader> reader, const manifest::Manifest& m, std::size_t index,
                        const std::string& key_path) {
  if (m.encryption) {
    if (key_path.empty())
      return fail(ErrorCode::kDecryptionKey, "the bundle is encrypted: its SBOM needs --decryption-key");
    OTA_TRY_ASSIGN(auto key, encryption::load_secret(key_path));
    OTA_TRY_ASSIGN(auto content, encryption::open(*m.encryption, key));
    reader = encryption::decrypting(std::move(reader), m, std::move(content));
  }
  while (true) {
    OTA_TRY_ASSIGN(auto idx, reader->next_payload());
    if (!idx) return fail(ErrorCode::kMalformed, "bundle: the sbom payload is missing");
    if (*idx == index) break;
  }
  Bytes out(static_cast<std::size_t>(manifest::readable_size(m, m.payloads[index])));
  std::size_t got = 0;
  while (got < out.size()) {
    OTA_TRY_ASSIGN(auto n, reader->read(MutableByteSpan(out.data() + got, out.size() - got)));
    if (n == 0) return fail(ErrorCode::kMalformed, "bundle: the sbom payload is short");
    got += n;
  }
  return out;
}

// An ota delta patch (.otd): its header, which says what a device needs
// before it starts (the base, the result, the decoder's memory).
Status inspect_patch(const Context& ctx, const std::string& path, std::uint64_t size) {
  OTA_TRY_ASSIGN(auto in, FileReader::open(path));
  OTA_TRY_ASSIGN(auto h, delta::read_header(*in));
  const std::uint64_t window = h.compression == delta::Compression::kNone ? 0 : std::uint64_t{1} << h.window_log;
  OJson doc;
  doc["ok"] = true;
  doc["command"] = "inspect";
  doc["patch"] = path;
  doc["size"] = size;
  doc["header"] = {{"version", h.version},
                   {"compression", delta::compression_name(h.compression)},
                   {"predictor", delta::predictor_name(h.predictor)},
                   {"elf_tables", h.elf_tables},
                   {"window_log", h.window_log},
                   {"decoder_window", window},
                   {"frame_size", std::uint64_t{1} << h.frame_log},
                   {"frames", h.frame_count()},
                   {"old", {{"size", h.old_size}, {"blake2b256", to_hex(h.old_hash)}}},
                   {"new", {{"size", h.new_size}, {"blake2b256", to_hex(h.new_hash)}}}};
  if (h.recompress)
    doc["header"]["xz_streams"] = {{"inner_version", h.inner_version},
                                   {"expanded_old_size", h.expanded_old_size},
                                   {"expanded_new_size", h.expanded_new_size}};
  if (ctx.json) {
    print_json(doc);
    return ok();
  }
  std::printf("patch      %s (%llu bytes; ota delta format version %u)\n", path.c_str(),
              static_cast<unsigned long long>(size), h.version);
  std::printf("coding     compression %s, predictor %s%s\n", delta::compression_name(h.compression),
              delta::predictor_name(h.predictor), h.elf_tables ? " with ELF tables" : "");
  std::printf("memory     decoder window %llu bytes (2^%u)\n", static_cast<unsigned long long>(window), h.window_log);
  std::printf("frames     %llu of %llu bytes\n", static_cast<unsigned long long>(h.frame_count()),
              static_cast<unsigned long long>(std::uint64_t{1} << h.frame_log));
  std::printf("old        %llu bytes, blake2b-256 %s\n", static_cast<unsigned long long>(h.old_size),
              to_hex(h.old_hash).c_str());
  std::printf("new        %llu bytes, blake2b-256 %s\n", static_cast<unsigned long long>(h.new_size),
              to_hex(h.new_hash).c_str());
  if (h.recompress)
    std::printf("xz         streams expanded and re-encoded: a version %u delta between %llu and %llu bytes\n",
                h.inner_version, static_cast<unsigned long long>(h.expanded_old_size),
                static_cast<unsigned long long>(h.expanded_new_size));
  return ok();
}

Status run_inspect(const Context& ctx, const InspectArgs& a) {
  {
    // A delta patch is recognised by its magic; anything else is read as a bundle.
    OTA_TRY_ASSIGN(auto probe, FileSource::open(a.bundle));
    std::uint8_t magic[3] = {};
    if (probe->size() >= sizeof magic) {
      OTA_TRY(probe->read_at(0, MutableByteSpan(magic, sizeof magic)));
      if (magic[0] == 'O' && magic[1] == 'T' && magic[2] == 'D') return inspect_patch(ctx, a.bundle, probe->size());
    }
  }
  OTA_TRY_ASSIGN(auto in, FileReader::open(a.bundle));
  OTA_TRY_ASSIGN(auto reader, bundle::BundleReader::open(*in));
  OTA_TRY_ASSIGN(auto m, (reader)->parse_unverified());
  const bundle::SignatureBlock block = (reader)->signature_block();  // a copy: the reader may go to read_sbom
  const Bytes sig_bytes = bundle::encode_signature_block(block);
  const auto lay = bundle::layout((reader)->manifest_bytes().size(), sig_bytes.size(), m);
  // The SBOM, when the bundle carries one: summarised (and written out with
  // --sbom-out); never parsed before its chunks matched the manifest.
  std::optional<std::size_t> sbom_index;
  for (std::size_t i = 0; i < m.payloads.size(); ++i)
    if (m.payloads[i].kind == manifest::PayloadKind::kSbom) sbom_index = i;
  if (!a.sbom_out.empty() && !sbom_index) return fail(ErrorCode::kUsage, "--sbom-out: the bundle carries no SBOM");
  OJson sbom_doc = nullptr;
  std::optional<sbom::Summary> sbom_summary;
  std::string sbom_note;
  if (sbom_index && (!m.encryption || !a.decryption_key.empty() || !a.sbom_out.empty())) {
    OTA_TRY_ASSIGN(auto bytes, read_sbom(std::move(reader), m, *sbom_index, a.decryption_key));
    OTA_TRY_ASSIGN(auto summary, sbom::check_sbom(bytes));
    if (!a.sbom_out.empty()) {
      if (a.sbom_out == "-") std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      else OTA_TRY(write_file_atomic(a.sbom_out, bytes, 0644));
      if (a.sbom_out == "-") return ok();
    }
    sbom_doc = {{"format", std::string(manifest::sbom_format_name(summary.format))},
                {"spec_version", summary.spec_version},
                {"name", summary.name},
                {"components", summary.components.size()}};
    sbom_summary = std::move(summary);
  } else if (sbom_index) {
    sbom_note = "encrypted (give --decryption-key to read it)";
    sbom_doc = {{"format", std::string(manifest::sbom_format_name(m.payloads[*sbom_index].sbom_format))},
                {"encrypted", true}};
  }
  OJson doc;
  doc["ok"] = true;
  doc["command"] = "inspect";
  doc["bundle"] = a.bundle;
  doc["verified"] = false;
  doc["manifest"] = manifest_json(m);
  doc["sbom"] = sbom_doc;
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
  if (m.security) {
    std::string ids;
    for (const auto& id : m.security->ids) ids += (ids.empty() ? "" : ", ") + id;
    std::printf("advisory   security update: %s\n", ids.c_str());
    std::string text = m.security->advisory;
    for (std::size_t at = 0; at < text.size();) {
      auto nl = text.find('\n', at);
      std::printf("             %s\n", text.substr(at, nl == std::string::npos ? std::string::npos : nl - at).c_str());
      if (nl == std::string::npos) break;
      at = nl + 1;
    }
  }
  if (m.encryption) {
    std::printf("encryption xchacha20poly1305-ietf in blocks of %u bytes, content key sealed to %zu recipient(s)\n",
                m.encryption->block_size, m.encryption->recipients.size());
    for (const auto& r : m.encryption->recipients) std::printf("             x25519 key %s\n", to_hex(r.key_id).c_str());
  }
  if (sbom_summary) {
    std::printf("sbom       %s %s%s%s, %zu components\n", std::string(manifest::sbom_format_name(sbom_summary->format)).c_str(),
                sbom_summary->spec_version.c_str(), sbom_summary->name.empty() ? "" : " for ", sbom_summary->name.c_str(),
                sbom_summary->components.size());
    const std::size_t shown = std::min<std::size_t>(sbom_summary->components.size(), 20);
    for (std::size_t i = 0; i < shown; ++i)
      std::printf("             %s%s%s\n", sbom_summary->components[i].name.c_str(),
                  sbom_summary->components[i].version.empty() ? "" : " ", sbom_summary->components[i].version.c_str());
    if (shown < sbom_summary->components.size())
      std::printf("             ... %zu more (ota inspect --sbom-out FILE)\n", sbom_summary->components.size() - shown);
  } else if (!sbom_note.empty()) {
    std::printf("sbom       %s\n", sbom_note.c_str());
  }
  for (const auto& p : m.payloads) {
    std::printf("payload    %s: %s, %s (window 2^%u), %llu bytes, %zu chunks of %u, blake2b-256 %s\n", p.name.c_str(),
                std::string(manifest::kind_name(p.kind)).c_str(), std::string(manifest::compression_name(p.compression)).c_str(),
                p.window_log, static_cast<unsigned long long>(p.size), p.chunks.size(), p.chunk_size,
                to_hex(p.hash).c_str());
    if (p.kind == manifest::PayloadKind::kDelta)
      std::printf("             from base %llu bytes, blake2b-256 %s\n", static_cast<unsigned long long>(p.base_size),
                  to_hex(p.base_hash).c_str());
    if (p.kind == manifest::PayloadKind::kChunks)
      std::printf("             index %llu bytes, blake2b-256 %s\n", static_cast<unsigned long long>(p.index_size),
                  to_hex(p.index_hash).c_str());
    if (m.encryption)
      std::printf("             encrypted; plaintext %llu bytes, blake2b-256 %s\n",
                  static_cast<unsigned long long>(p.plain_size), to_hex(p.plain_hash).c_str());
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
  cmd->add_option("--decryption-key", a->decryption_key,
                  "An encrypted bundle: also decrypt every payload with this X25519 key (a recipient's NAME.key) and "
                  "check the plaintext against its signed hash");
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print the verdict and each check as JSON on stdout");
  cmd->callback([&ctx, &exit_code, a] { exit_code = run_verify(ctx, *a); });
}

void add_inspect_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto a = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect",
                                 "Show a bundle's manifest, payloads and signatures (not verified), or a delta patch's header");
  cmd->footer("Example:\n  ota inspect fw-1.1.otb --json\n  ota inspect 1.0-to-1.1.otd");
  cmd->add_option("BUNDLE", a->bundle, "The bundle, or an ota delta patch (.otd)")->required();
  cmd->add_option("--decryption-key", a->decryption_key, "An encrypted bundle's X25519 key (to read its SBOM)");
  cmd->add_option("--sbom-out", a->sbom_out, "Write the bundle's SBOM here (- for stdout)");
  cmd->add_flag("--json", ctx.json, "Print JSON on stdout");
  cmd->callback([&ctx, &exit_code, a] {
    auto st = run_inspect(ctx, *a);
    exit_code = st ? 0 : report(ctx, "inspect", st.error());
  });
}

}  // namespace ota::cli
