// ota build, ota sign
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli.hpp"
#include "ota/release/bundle.hpp"
#include "ota/delta/delta.hpp"
#include "ota/release/encryption.hpp"
#include "ota/release/keys.hpp"

namespace ota::cli {

namespace {


// Reads one payload of a bundle being re-written, chunk-checked.
class PayloadIn final : public ota::Reader {
 public:
  explicit PayloadIn(bundle::BundleReader& r) : r_(r) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    if (!started_) {
      OTA_TRY_ASSIGN(auto i, r_.next_payload());
      if (!i) return fail(ErrorCode::kMalformed, "bundle: fewer payloads than the manifest lists");
      started_ = true;
    }
    return r_.read(out);
  }

 private:
  bundle::BundleReader& r_;
  bool started_ = false;
};

// A signature given as 64 raw bytes, 128 hex digits or base64 (whitespace ignored).
Result<keys::Signature> parse_signature_bytes(const Bytes& in) {
  keys::Signature sig{};
  if (in.size() == 64) {
    std::memcpy(sig.data(), in.data(), 64);
    return sig;
  }
  std::string t;
  for (auto c : in)
    if (!std::isspace(c)) t.push_back(static_cast<char>(c));
  if (t.size() == 128) {
    auto a = digest_from_hex(t.substr(0, 64)), b = digest_from_hex(t.substr(64));
    if (a && b) {
      std::memcpy(sig.data(), a->data(), 32);
      std::memcpy(sig.data() + 32, b->data(), 32);
      return sig;
    }
  }
  // base64 of 64 bytes: 88 characters with padding.
  if (t.size() == 88) {
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t n = 0;
    bool good = true;
    for (char c : t) {
      if (c == '=') break;
      auto pos = alphabet.find(c);
      if (pos == std::string::npos) {
        good = false;
        break;
      }
      acc = (acc << 6) | static_cast<std::uint32_t>(pos);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        if (n < 64) sig[n] = static_cast<std::uint8_t>(acc >> bits);
        ++n;
      }
    }
    if (good && n == 64) return sig;
  }
  return fail(ErrorCode::kMalformed, "a signature must be 64 raw bytes, 128 hex digits or base64");
}

struct SignSources {
  std::vector<std::string> keys;
  std::string key_id, pub, import_sig, sign_command;
  PassphraseSource pass;
  void add_options(CLI::App* cmd, bool key_required) {
    auto* k = cmd->add_option("--key", keys, "Sign with this secret key file, or a key in a PKCS#11 token (pkcs11: URI) (repeat for several)")
                  ->check(key_file_or_uri());
    if (key_required) k->required();
    pass.add_options(cmd);
  }
};

// Runs an external signer: the message on its stdin, the signature on its stdout.
Result<keys::Signature> run_sign_command(const std::string& command, const Bytes& message) {
  char tmpl[] = "/tmp/ota-sign-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) return fail(ErrorCode::kIo, std::string("cannot create a temporary file: ") + std::strerror(errno));
  const std::string path = tmpl;
  bool written = ::write(fd, message.data(), message.size()) == static_cast<ssize_t>(message.size());
  ::close(fd);
  if (!written) {
    ::unlink(path.c_str());
    return fail(ErrorCode::kIo, "cannot write the payload for the signer");
  }
  // The bytes arrive on stdin and, for signers that need a file (openssl
  // pkeyutl -rawin), at the path in $OTA_SIGN_PAYLOAD.
  const std::string full = "OTA_SIGN_PAYLOAD='" + path + "'; export OTA_SIGN_PAYLOAD; (" + command + ") < '" + path + "'";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) {
    ::unlink(path.c_str());
    return fail(ErrorCode::kIo, "cannot run the signer command");
  }
  Bytes out;
  std::uint8_t buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < 65536) out.insert(out.end(), buf, buf + n);
  int status = ::pclose(p);
  ::unlink(path.c_str());
  if (status != 0)
    return fail(ErrorCode::kIo, "the signer command failed (exit status " +
                                    std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  auto sig = parse_signature_bytes(out);
  if (!sig) return fail(sig.error().with_context("signer command output"));
  return sig;
}

// Adds the signatures the options ask for to block; returns the added key ids.
Result<std::vector<std::string>> add_signatures(const Context& ctx, const SignSources& s, ByteSpan manifest_bytes,
                                                bundle::SignatureBlock& block) {
  std::vector<std::string> added;
  const Bytes message = trust::signing_message(trust::kManifestType, manifest_bytes);
  // A key signs once: a second signature by it would not count.
  auto first_time = [&](const keys::KeyId& id) {
    for (const auto& e : block.signatures)
      if (e.key_id == id) {
        if (!ctx.quiet && !ctx.json) std::fprintf(stderr, "key %s already signed this bundle\n", to_hex(id).c_str());
        return false;
      }
    return true;
  };
  OTA_TRY_ASSIGN(auto signed_by,
                 trust::sign_with_keys(trust::kManifestType, manifest_bytes, s.keys, passphrase_of(s.pass),
                                       block.signatures,
                                       [&](const std::string&, const keys::PublicKey& k) -> Result<bool> {
                                         return first_time(k.id());
                                       }));
  for (const auto& id : signed_by) added.push_back(to_hex(id));
  if (!s.import_sig.empty() || !s.sign_command.empty()) {
    std::optional<keys::PublicKey> pub;
    if (!s.pub.empty()) {
      OTA_TRY_ASSIGN(auto k, keys::load_public(s.pub));
      pub = k;
    }
    keys::KeyId id{};
    if (!s.key_id.empty()) {
      auto parsed = keys::key_id_from_hex(s.key_id);
      if (!parsed) return fail(ErrorCode::kUsage, "--key-id takes a 64-digit key id");
      id = *parsed;
      if (pub && pub->id() != id) return fail(ErrorCode::kUsage, "--key-id does not match --pub");
    } else if (pub) {
      id = pub->id();
    } else {
      return fail(ErrorCode::kUsage, "an external signature needs --key-id (or --pub)");
    }
    Result<keys::Signature> sig = fail(ErrorCode::kInternal, "");
    if (!s.import_sig.empty()) {
      OTA_TRY_ASSIGN(auto bytes, read_file(s.import_sig));
      sig = parse_signature_bytes(bytes);
      if (!sig) return fail(sig.error().with_context(s.import_sig));
    } else {
      sig = run_sign_command(s.sign_command, message);
      if (!sig) return fail(sig.error());
    }
    if (pub && !pub->verify(message, *sig))
      return fail(ErrorCode::kBadSignature, "the external signature does not verify with " + s.pub);
    if (!pub && !ctx.quiet && !ctx.json)
      std::fprintf(stderr, "note: the external signature was not checked (no --pub); `ota verify` will check it\n");
    if (first_time(id)) {
      block.signatures.push_back({id, *sig});
      added.push_back(to_hex(id));
    }
  }
  return added;
}

// ---- build ----

struct BuildArgs {
  bundle::BuildOptions opt;
  std::string out, expires;
  SignSources sign;
  bool no_compress = false, no_full = false;
  std::string delta_layout = "blocks";
  std::string delta_compression;  // lzma (default) or zstd (the default with --delta-layout interleaved)
  int reuse_avg_bits = 15;
  std::uint64_t frame_size = std::uint64_t{1} << delta::kDefaultFrameLog;
  std::vector<std::string> encrypt_to, advisory_ids;
  std::string advisory;
};

// --security-advisory TEXT, or @FILE for the text of a file.
Result<std::string> advisory_text(const std::string& arg) {
  if (arg.empty() || arg[0] != '@') return arg;
  OTA_TRY_ASSIGN(auto bytes, read_file(arg.substr(1)));
  if (bytes.size() > manifest::kMaxAdvisoryBytes)
    return fail(ErrorCode::kUsage, "--security-advisory: " + arg.substr(1) + " is over 4096 bytes");
  std::string t(bytes.begin(), bytes.end());
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

Status run_build(const Context& ctx, BuildArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  if (!manifest::is_valid_version(a.opt.version))
    return fail(ErrorCode::kUsage, "--version '" + a.opt.version + "' is not SemVer (MAJOR.MINOR.PATCH[-PRE][+BUILD])");
  int log = 0;
  while ((std::uint64_t{1} << log) < a.frame_size && log < 63) ++log;
  if ((std::uint64_t{1} << log) != a.frame_size || log < delta::kMinFrameLog || log > delta::kMaxFrameLog)
    return fail(ErrorCode::kUsage, "--frame-size must be a power of two from 4 KiB to 1 GiB");
  a.opt.full_frame_log = a.opt.delta_frame_log = static_cast<std::uint8_t>(log);
  a.opt.include_full = !a.no_full;
  a.opt.delta_layout = a.delta_layout == "interleaved" ? delta::RecordLayout::kInterleaved : delta::RecordLayout::kBlocks;
  if (a.delta_compression == "lzma" && a.opt.delta_layout == delta::RecordLayout::kInterleaved)
    return fail(ErrorCode::kUsage,
                "--delta-compression lzma needs format version 4; --delta-layout interleaved writes versions 1-2 (zstd)");
  a.opt.delta_compression =
      a.delta_compression == "zstd" || (a.delta_compression.empty() && a.opt.delta_layout == delta::RecordLayout::kInterleaved)
          ? delta::Compression::kZstd
          : delta::Compression::kLzma;
  if (a.reuse_avg_bits < 6 || a.reuse_avg_bits > 20) return fail(ErrorCode::kUsage, "--reuse-avg-bits must be 6 to 20");
  a.opt.reuse_params.avg_bits = static_cast<std::uint8_t>(a.reuse_avg_bits);
  OTA_TRY_ASSIGN(auto created, build_time());
  a.opt.created = created;
  if (!a.expires.empty()) {
    auto e = trust::parse_time(a.expires);
    if (!e) return fail(ErrorCode::kUsage, "--expires: " + e.error().message);
    if (*e <= a.opt.created) return fail(ErrorCode::kUsage, "--expires is not after the build time");
    a.opt.expires = *e;
  }
  if (a.opt.name.empty()) {
    std::string base = a.opt.image_path.substr(a.opt.image_path.find_last_of('/') + 1);
    a.opt.name = base.empty() ? "image" : base;
  }
  a.opt.compress = !a.no_compress;
  if (a.advisory.empty() != a.advisory_ids.empty())
    return fail(ErrorCode::kUsage, "a security update needs both --security-advisory and --advisory-id");
  if (!a.advisory.empty()) {
    manifest::Security sec;
    OTA_TRY_ASSIGN(auto text, advisory_text(a.advisory));
    sec.advisory = text;
    sec.ids = a.advisory_ids;
    for (const auto& id : sec.ids)
      if (!manifest::is_valid_advisory_id(id))
        return fail(ErrorCode::kUsage, "--advisory-id '" + id + "' is not an advisory id (CVE-YYYY-NNNN, GHSA-..., DSA-...)");
    if (auto st = manifest::validate_security(sec); !st)
      return fail(ErrorCode::kUsage, "--security-advisory/--advisory-id: " + st.error().message);
    a.opt.security = std::move(sec);
  }
  if (a.encrypt_to.empty() && a.opt.encryption_block != manifest::Encryption{}.block_size)
    return fail(ErrorCode::kUsage, "--encryption-block needs --encrypt-to");
  if (const auto b = a.opt.encryption_block;
      b < manifest::kMinEncryptionBlock || b > manifest::kMaxEncryptionBlock || (b & (b - 1)))
    return fail(ErrorCode::kUsage, "--encryption-block must be a power of two from 4096 to 1048576");
  for (const auto& path : a.encrypt_to) {
    auto k = encryption::load_public(path);
    if (!k) return fail(k.error().code == ErrorCode::kIo ? k.error() : Error{ErrorCode::kUsage, "--encrypt-to " + k.error().message});
    for (const auto& r : a.opt.recipients)
      if (r == k->bytes) return fail(ErrorCode::kUsage, "--encrypt-to lists the key of " + path + " twice");
    a.opt.recipients.push_back(k->bytes);
  }
  if (a.opt.temp_dir.empty()) {
    auto slash = a.out.find_last_of('/');
    a.opt.temp_dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : a.out.substr(0, slash));
  }
  Progress progress(ctx.quiet || ctx.json, "build");
  a.opt.progress = [&](const std::string&, std::uint64_t d, std::uint64_t t) { progress.update(d, t); };
  OTA_TRY_ASSIGN(auto staged, bundle::stage(a.opt));
  bundle::SignatureBlock block;
  OTA_TRY_ASSIGN(auto added, add_signatures(ctx, a.sign, (staged)->manifest_bytes(), block));
  OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(a.out));
  OTA_TRY((staged)->write(*out, block, [&](std::uint64_t d, std::uint64_t t) { progress.update(d, t); }));
  const std::uint64_t size = (out)->position();
  OTA_TRY((out)->commit());
  progress.done();
  const auto& m = (staged)->manifest();
  if (ctx.json) {
    nlohmann::ordered_json doc;
    doc["ok"] = true;
    doc["command"] = "build";
    doc["bundle"] = {{"path", a.out}, {"size", size}};
    doc["name"] = m.name;
    doc["version"] = m.version;
    doc["security_version"] = m.security_version;
    doc["hardware"] = m.hardware;
    doc["target"] = {{"size", m.target_size}, {"hash", to_hex(m.target_hash)}};
    doc["payloads"] = nlohmann::ordered_json::array();
    for (const auto& p : m.payloads) doc["payloads"].push_back(payload_json(p));
    const auto mj = manifest_json(m);
    doc["security"] = mj["security"];
    doc["encryption"] = mj["encryption"];
    doc["signed_by"] = added;
    doc["timings"] = {{"total_s", seconds_since(t0)}};
    print_json(doc);
  } else if (!ctx.quiet) {
    std::fprintf(stderr, "wrote %s: %llu bytes, %zu payloads, %zu signatures\n", a.out.c_str(),
                 static_cast<unsigned long long>(size), m.payloads.size(), added.size());
  }
  return ok();
}

// ---- sign ----

struct SignArgs {
  std::string bundle, out, export_payload;
  std::vector<std::string> attach_roots;
  SignSources sign;
};

Status run_sign(const Context& ctx, const SignArgs& a) {
  OTA_TRY_ASSIGN(auto in, FileReader::open(a.bundle));
  OTA_TRY_ASSIGN(auto reader, bundle::BundleReader::open(*in));
  const ByteSpan manifest_bytes = (reader)->manifest_bytes();
  if (!a.export_payload.empty()) {
    const Bytes message = trust::signing_message(trust::kManifestType, manifest_bytes);
    OTA_TRY(write_file_atomic(a.export_payload, message, 0644));
    if (ctx.json) {
      nlohmann::ordered_json doc;
      doc["ok"] = true;
      doc["command"] = "sign";
      doc["payload"] = {{"path", a.export_payload}, {"size", message.size()}};
      print_json(doc);
    }
    return ok();
  }
  if (a.sign.keys.empty() && a.sign.import_sig.empty() && a.sign.sign_command.empty() && a.attach_roots.empty())
    return fail(ErrorCode::kUsage, "nothing to do: give --key, --import-signature, --sign-command or --attach-root");
  // The signer checks that the payloads match the manifest it vouches for.
  OTA_TRY_ASSIGN(auto m, (reader)->parse_unverified());
  bundle::SignatureBlock block = (reader)->signature_block();
  OTA_TRY_ASSIGN(auto added, add_signatures(ctx, a.sign, manifest_bytes, block));
  for (const auto& path : a.attach_roots) {
    OTA_TRY_ASSIGN(auto bytes, read_file(path));
    auto env = trust::parse_envelope(std::string(bytes.begin(), bytes.end()));
    if (!env) return fail(env.error().with_context(path));
    block.roots.push_back(std::move(*env));
  }
  const std::string out_path = a.out.empty() ? a.bundle : a.out;
  OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(out_path));
  std::vector<std::unique_ptr<PayloadIn>> ins;
  std::vector<ota::Reader*> ptrs;
  for (std::size_t i = 0; i < m.payloads.size(); ++i) {
    ins.push_back(std::make_unique<PayloadIn>(*reader));
    ptrs.push_back(ins.back().get());
  }
  Progress progress(ctx.quiet || ctx.json, "sign");
  OTA_TRY(bundle::write_bundle(*out, manifest_bytes, block, m, ptrs,
                               [&](std::uint64_t d, std::uint64_t t) { progress.update(d, t); }));
  OTA_TRY_ASSIGN(auto end, (reader)->next_payload());
  if (end) return fail(ErrorCode::kMalformed, "bundle: more payloads than the manifest lists");
  OTA_TRY((out)->commit());
  progress.done();
  if (ctx.json) {
    nlohmann::ordered_json doc;
    doc["ok"] = true;
    doc["command"] = "sign";
    doc["bundle"] = out_path;
    doc["added"] = added;
    doc["signatures"] = block.signatures.size();
    doc["roots"] = block.roots.size();
    print_json(doc);
  } else if (!ctx.quiet) {
    std::fprintf(stderr, "%s: %zu signature(s) now\n", out_path.c_str(), block.signatures.size());
  }
  return ok();
}

}  // namespace

void add_build_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto a = std::make_shared<BuildArgs>();
  auto* cmd = app.add_subcommand("build", "Build a bundle: manifest, the full image (zstd) and one delta per base");
  cmd->footer(
      "The bundle is unsigned unless --key is given; add signatures later with `ota sign`.\n"
      "SOURCE_DATE_EPOCH sets the creation time (reproducible builds).\n"
      "Example:\n  ota build --image fw-1.1.bin --version 1.1.0 --hw board-a --base fw-1.0.bin --key ci.key -o fw-1.1.otb");
  cmd->add_option("--image", a->opt.image_path, "The new firmware image")->required()->check(CLI::ExistingFile);
  cmd->add_option("--version", a->opt.version, "SemVer of the image")->required();
  cmd->add_option("--hw", a->opt.hardware, "A compatible hardware id (repeat)")->required();
  cmd->add_option("--base", a->opt.base_paths, "An installed image to ship a delta from (repeat)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--security-version", a->opt.security_version, "Anti-rollback counter (default 0)");
  cmd->add_option("--expires", a->expires, "Expiry, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
  cmd->add_option("--name", a->opt.name, "Artifact name (default: the image's file name)");
  cmd->add_option("--level", a->opt.level, "zstd level of the full image")->check(CLI::Range(1, 22))->capture_default_str();
  cmd->add_option("--window-log", a->opt.window_log, "zstd window of the full image, 2^N bytes (device RAM)")
      ->check(CLI::Range(10, 27))
      ->capture_default_str();
  cmd->add_option("--delta-level", a->opt.delta_level, "Compression level inside deltas (1-22, as ota diff --level)")
      ->check(CLI::Range(1, 22))
      ->capture_default_str();
  cmd->add_option("--delta-compression", a->delta_compression,
                  "Entropy stage of the deltas: lzma (default, format version 4) or zstd (version 3, or 1-2 with "
                  "--delta-layout interleaved, for devices whose patcher predates version 4)")
      ->check(CLI::IsMember({"lzma", "zstd"}));
  cmd->add_option("--delta-layout", a->delta_layout,
                  "Record layout of the deltas: blocks (default, format version 3 or 4) or interleaved (versions 1 "
                  "and 2, for devices whose patcher predates version 3; implies --delta-compression zstd)")
      ->check(CLI::IsMember({"blocks", "interleaved"}))
      ->capture_default_str();
  cmd->add_flag("--no-delta-elf-tables{false}", a->opt.delta_elf_tables,
                "Keep LZMA2 deltas at format version 4: the predictor leaves ELF tables (.eh_frame_hdr, .eh_frame, "
                "data pointers, x86-64 code addresses) alone, for devices whose patcher predates version 5");
  cmd->add_flag("--no-delta-recompress{false}", a->opt.delta_recompress,
                "Diff compressed streams (a squashfs' xz, zstd or gzip blocks) as they are, not expanded and re-encoded on the device "
                "(delta format version 6), for devices whose patcher predates version 6");
  cmd->add_flag("--no-compress", a->no_compress, "Store the full image uncompressed");
  cmd->add_flag("--no-full", a->no_full, "Ship the deltas only (devices on another base cannot install the bundle)");
  cmd->add_option("--frame-size", a->frame_size,
                  "Image bytes per independent frame of every payload (power of two; a device's resume step)")
      ->capture_default_str();
  cmd->add_option("--chunk-size", a->opt.chunk_size, "Chunk size for payload hashes (default: 256 KiB, grown to keep 4096 chunks)");
  cmd->add_flag("--reuse", a->opt.reuse,
                "Add a chunks payload: devices on no delta's base copy the parts of the image they hold and fetch the rest "
                "(needs an agent that knows payload kind chunks)");
  cmd->add_option("--reuse-min", a->opt.reuse_params.min_size, "Smallest content-defined chunk, bytes")->capture_default_str();
  cmd->add_option("--reuse-avg-bits", a->reuse_avg_bits, "Chunk boundaries once the gear hash's top N bits are zero (average chunk ~ min + 2^N)")
      ->capture_default_str();
  cmd->add_option("--reuse-max", a->opt.reuse_params.max_size, "Largest content-defined chunk, bytes")->capture_default_str();
  cmd->add_option("--reuse-level", a->opt.reuse_level, "zstd level of each chunk")->check(CLI::Range(1, 22))->capture_default_str();
  cmd->add_option("--encrypt-to", a->encrypt_to,
                  "Encrypt every payload, the content key sealed to this X25519 public key (`ota keygen --encryption`; "
                  "repeat for several devices or groups; needs an agent that knows encrypted bundles)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--encryption-block", a->opt.encryption_block,
                  "Plaintext bytes per encrypted block (power of two, 4 KiB to 1 MiB; 16 bytes of tag each)")
      ->capture_default_str();
  cmd->add_option("--sbom", a->opt.sbom_path, "Carry this SBOM (CycloneDX or SPDX 2.x JSON) as a signed payload")
      ->check(CLI::ExistingFile);
  cmd->add_option("--security-advisory", a->advisory,
                  "Mark the release as a security update with this advisory text (or @FILE); needs --advisory-id");
  cmd->add_option("--advisory-id", a->advisory_ids, "An advisory the update fixes: CVE-YYYY-NNNN, GHSA-..., DSA-... (repeat)");
  cmd->add_option("--threads", a->opt.threads, "Worker threads (default: all cores; never changes the output)");
  cmd->add_option("-o,--output", a->out, "Where to write the bundle")->required();
  a->sign.add_options(cmd, false);
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print a JSON summary on stdout");
  cmd->callback([&ctx, &exit_code, a] {
    if (a->opt.chunk_size && (a->opt.chunk_size & (a->opt.chunk_size - 1))) {
      exit_code = report(ctx, "build", Error{ErrorCode::kUsage, "--chunk-size must be a power of two"});
      return;
    }
    auto st = run_build(ctx, *a);
    exit_code = st ? 0 : report(ctx, "build", st.error());
  });
}

void add_sign_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto a = std::make_shared<SignArgs>();
  auto* cmd = app.add_subcommand("sign", "Add a signature to a bundle (nothing else changes)");
  cmd->footer(
      "HSM / KMS: --export-payload writes the exact bytes to sign (Ed25519, pure);\n"
      "--import-signature attaches a signature made elsewhere; --sign-command runs a signer\n"
      "that reads those bytes on stdin (or from the file $OTA_SIGN_PAYLOAD) and prints\n"
      "the signature (raw, hex or base64).\n"
      "Examples:\n  ota sign fw.otb --key release-2.key\n"
      "  ota sign fw.otb --export-payload fw.tbs && ota sign fw.otb --import-signature fw.sig --key-id ID\n"
      "  ota sign fw.otb --sign-command 'openssl pkeyutl -sign -rawin -inkey k.pem -in \"$OTA_SIGN_PAYLOAD\"' --pub k.pub");
  cmd->add_option("BUNDLE", a->bundle, "The bundle (rewritten in place unless -o)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->out, "Write the signed bundle here");
  a->sign.add_options(cmd, false);
  auto* exp = cmd->add_option("--export-payload", a->export_payload, "Write the bytes to sign to FILE and stop");
  auto* imp = cmd->add_option("--import-signature", a->sign.import_sig, "Attach the signature in FILE")
                  ->check(CLI::ExistingFile);
  auto* sc = cmd->add_option("--sign-command", a->sign.sign_command, "Run CMD (sh -c) as the signer");
  cmd->add_option("--key-id", a->sign.key_id, "Key id of an imported or external signature");
  cmd->add_option("--pub", a->sign.pub, "Public key to check an imported or external signature")
      ->check(CLI::ExistingFile);
  cmd->add_option("--attach-root", a->attach_roots, "Carry a root update (root.json of a newer version) for devices")
      ->check(CLI::ExistingFile);
  imp->excludes(sc);
  exp->excludes(imp)->excludes(sc);
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print a JSON summary on stdout");
  cmd->callback([&ctx, &exit_code, a] {
    auto st = run_sign(ctx, *a);
    exit_code = st ? 0 : report(ctx, "sign", st.error());
  });
}

}  // namespace ota::cli
