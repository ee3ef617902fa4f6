// ota keygen, ota root {init,sign,rotate,verify,show}
#include <sys/stat.h>

#include <set>

#include "cli.hpp"
#include "ota/release/encryption.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"

namespace ota::cli {

namespace {

std::string text_of(const Bytes& b) { return std::string(b.begin(), b.end()); }

Result<trust::Envelope> load_envelope(const std::string& path) {
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  auto env = trust::parse_envelope(text_of(bytes));
  if (!env) return fail(env.error().with_context(path));
  return env;
}

Status write_text(const std::string& path, const std::string& text) {
  return write_file_atomic(path, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), 0644);
}

nlohmann::ordered_json root_json(const trust::Root& r) {
  nlohmann::ordered_json j;
  j["version"] = r.version;
  j["expires"] = trust::format_time(r.expires);
  j["threshold"] = r.threshold;
  j["keys"] = nlohmann::ordered_json::array();
  for (const auto& [id, k] : r.keys) j["keys"].push_back(to_hex(id));
  j["revoked"] = nlohmann::ordered_json::array();
  for (const auto& id : r.revoked) j["revoked"].push_back(to_hex(id));
  return j;
}

// ---- keygen ----

struct KeygenArgs {
  std::string out;
  PassphraseSource pass;
  bool force = false;
  bool encryption = false;
};

// What keygen prints: the key id, or the --json summary.
void print_keygen(const Context& ctx, const KeygenArgs& a, const std::string& id, const char* type, bool sealed) {
  if (!ctx.json) {
    std::printf("%s\n", id.c_str());
    return;
  }
  nlohmann::ordered_json doc;
  doc["ok"] = true;
  doc["command"] = "keygen";
  doc["keyid"] = id;
  doc["type"] = type;
  doc["public_key_file"] = a.out + ".pub";
  doc["secret_key_file"] = a.out + ".key";
  doc["sealed"] = sealed;
  print_json(doc);
}

// An X25519 key pair for encrypted bundles: NAME.pub for `ota build
// --encrypt-to`, NAME.key for the device (never sealed: a device has no one
// to type a passphrase).
Status run_keygen_encryption(const Context& ctx, const KeygenArgs& a) {
  if (!a.pass.file.empty() || !a.pass.env.empty())
    return fail(ErrorCode::kUsage, "--encryption keys are not sealed with a passphrase (a device reads them unattended)");
  OTA_TRY_ASSIGN(auto key, encryption::SecretKey::generate());
  OTA_TRY(encryption::write_key_pair(a.out, key));
  print_keygen(ctx, a, key.public_key().id_hex(), "x25519", false);
  return ok();
}

Status run_keygen(const Context& ctx, const KeygenArgs& a) {
  struct stat st {};
  if (!a.force && (::stat((a.out + ".key").c_str(), &st) == 0 || ::stat((a.out + ".pub").c_str(), &st) == 0))
    return fail(ErrorCode::kUsage, a.out + ".key or " + a.out + ".pub exists (use --force to replace it)");
  if (a.encryption) return run_keygen_encryption(ctx, a);
  OTA_TRY_ASSIGN(auto pass, read_passphrase(a.pass));
  OTA_TRY_ASSIGN(auto key, keys::SecretKey::generate());
  std::optional<std::string_view> pv;
  if (pass) pv = *pass;
  auto st2 = keys::write_key_pair(a.out, key, pv);
  if (pass) keys::wipe((pass)->data(), (pass)->size());
  if (!st2) return fail(st2.error());
  print_keygen(ctx, a, key.public_key().id_hex(), "ed25519", pv.has_value());
  return ok();
}

// ---- root ----

struct RootArgs {
  std::vector<std::string> pubs;
  std::vector<std::string> secret_keys;
  std::vector<std::string> revoke;
  std::vector<std::string> chain;
  std::string from, file, trust_path, out, expires, previous;
  std::uint32_t threshold = 0;
  PassphraseSource pass;
};

Result<std::map<keys::KeyId, keys::PublicKey>> load_pubs(const std::vector<std::string>& paths) {
  std::map<keys::KeyId, keys::PublicKey> out;
  for (const auto& p : paths) {
    OTA_TRY_ASSIGN(auto k, keys::load_public(p));
    if (!out.emplace(k.id(), k).second) return fail(ErrorCode::kUsage, "key " + p + " is given twice");
  }
  return out;
}

Status write_unsigned_root(const Context& ctx, const std::string& command, const trust::Root& r, const std::string& out) {
  trust::Envelope env{std::string(trust::kRootType), trust::encode_root(r), {}};
  OTA_TRY(write_text(out, trust::encode_envelope(env)));
  if (ctx.json) {
    nlohmann::ordered_json doc;
    doc["ok"] = true;
    doc["command"] = command;
    doc["output"] = out;
    doc["root"] = root_json(r);
    doc["signatures"] = 0;
    print_json(doc);
  } else if (!ctx.quiet) {
    std::fprintf(stderr, "wrote %s: root v%llu, %zu keys, threshold %u, unsigned; sign it with `ota root sign %s --key ...`\n",
                 out.c_str(), static_cast<unsigned long long>(r.version), r.keys.size(), r.threshold, out.c_str());
  }
  return ok();
}

Status run_root_init(const Context& ctx, const RootArgs& a) {
  trust::Root r;
  OTA_TRY_ASSIGN(auto k, load_pubs(a.pubs));
  r.keys = std::move(k);
  auto exp = trust::parse_time(a.expires);
  if (!exp) return fail(ErrorCode::kUsage, "--expires: " + exp.error().message);
  r.expires = *exp;
  if (a.threshold < 1 || a.threshold > r.keys.size())
    return fail(ErrorCode::kUsage, "--threshold must be between 1 and the number of keys (" +
                                       std::to_string(r.keys.size()) + ")");
  r.threshold = a.threshold;
  return write_unsigned_root(ctx, "root init", r, a.out);
}

Status run_root_rotate(const Context& ctx, const RootArgs& a) {
  OTA_TRY_ASSIGN(auto env, load_envelope(a.from));
  OTA_TRY_ASSIGN(auto cur, trust::TrustStore::from_anchor(env));
  trust::Root r;
  r.version = cur.root().version + 1;
  r.revoked = cur.root().revoked;
  for (const auto& id_hex : a.revoke) {
    auto id = keys::key_id_from_hex(id_hex);
    if (!id) return fail(ErrorCode::kUsage, "--revoke takes a 64-digit key id");
    r.revoked.insert(*id);
  }
  if (a.pubs.empty()) {
    for (const auto& [id, key] : cur.root().keys)
      if (!r.revoked.count(id)) r.keys.emplace(id, key);
  } else {
    OTA_TRY_ASSIGN(auto k, load_pubs(a.pubs));
    r.keys = std::move(k);
  }
  for (const auto& id : r.revoked)
    if (r.keys.count(id)) return fail(ErrorCode::kUsage, "key " + to_hex(id) + " is both kept and revoked");
  auto exp = trust::parse_time(a.expires);
  if (!exp) return fail(ErrorCode::kUsage, "--expires: " + exp.error().message);
  r.expires = *exp;
  r.threshold = a.threshold ? a.threshold : std::min<std::uint32_t>(cur.root().threshold, static_cast<std::uint32_t>(r.keys.size()));
  if (r.threshold < 1 || r.threshold > r.keys.size())
    return fail(ErrorCode::kUsage, "--threshold must be between 1 and the number of keys (" +
                                       std::to_string(r.keys.size()) + ")");
  return write_unsigned_root(ctx, "root rotate", r, a.out);
}

Status run_root_sign(const Context& ctx, const RootArgs& a) {
  OTA_TRY_ASSIGN(auto env, load_envelope(a.file));
  if (env.payload_type != trust::kRootType) return fail(ErrorCode::kMalformed, a.file + " is not a signed root");
  // The signer vouches for the document: it must parse.
  auto r = trust::parse_root(env.payload);
  if (!r) return fail(r.error().with_context(a.file));
  // Read before --previous, so that a missing passphrase is reported first.
  OTA_TRY_ASSIGN(auto pass, read_passphrase(a.pass));
  // A rotation (version N+1) must be signed by a threshold of version N's keys
  // too, and a key N+1 revokes may be one of them: with --previous (version
  // N), such a key signs as one of N's keys.
  std::optional<trust::Root> previous;
  if (!a.previous.empty()) {
    OTA_TRY_ASSIGN(auto penv, load_envelope(a.previous));
    if (penv.payload_type != trust::kRootType) return fail(ErrorCode::kMalformed, a.previous + " is not a signed root");
    auto p = trust::parse_root(penv.payload);
    if (!p) return fail(p.error().with_context(a.previous));
    if (p->version + 1 != r->version)
      return fail(ErrorCode::kUsage, "--previous " + a.previous + " is root v" + std::to_string(p->version) + ", but " +
                                         a.file + " is v" + std::to_string(r->version) + " (expected v" +
                                         std::to_string(r->version - 1) + ")");
    previous = std::move(*p);
  }
  // Each key: refused when this root revokes it (unless it signs as one of
  // --previous's keys), skipped when it signed already.
  auto may_sign = [&](const std::string& path, const keys::PublicKey& key) -> Result<bool> {
    const auto id = key.id();
    if (r->revoked.count(id)) {
      if (!previous)
        return fail(ErrorCode::kUsage, "key " + to_hex(id) + " (" + path +
                                           ") is revoked by this root; its signature would not count (to sign a "
                                           "rotation as one of the previous root's keys, give it with --previous)");
      if (!previous->keys.count(id))
        return fail(ErrorCode::kUsage, "key " + to_hex(id) + " (" + path + ") is revoked by this root and not in " +
                                           a.previous + "; its signature would not count");
      if (!ctx.quiet && !ctx.json)
        std::fprintf(stderr, "%s: key %s is revoked by v%llu; it signs as one of v%llu's keys\n", a.file.c_str(),
                     to_hex(id).c_str(), static_cast<unsigned long long>(r->version),
                     static_cast<unsigned long long>(previous->version));
    }
    bool present = false;
    for (auto& s : env.signatures) present = present || s.key_id == id;
    if (present) {
      if (!ctx.quiet && !ctx.json) std::fprintf(stderr, "%s: key %s already signed\n", a.file.c_str(), to_hex(id).c_str());
      return false;
    }
    return true;
  };
  OTA_TRY_ASSIGN(auto signed_by, trust::sign_with_keys(trust::kRootType, env.payload, a.secret_keys,
                                                       [&pass] { return Result<std::optional<std::string>>(std::move(pass)); },
                                                       env.signatures, may_sign));
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (const auto& id : signed_by) added.push_back(to_hex(id));
  const std::string out = a.out.empty() ? a.file : a.out;
  OTA_TRY(write_text(out, trust::encode_envelope(env)));
  if (ctx.json) {
    nlohmann::ordered_json doc;
    doc["ok"] = true;
    doc["command"] = "root sign";
    doc["output"] = out;
    doc["added"] = added;
    doc["signatures"] = env.signatures.size();
    print_json(doc);
  }
  return ok();
}

// Verifies FILE: as an anchor on its own, or as the end of a chain from --trust.
Status run_root_verify(const Context& ctx, const RootArgs& a) {
  OTA_TRY_ASSIGN(auto target, load_envelope(a.file));
  OTA_TRY_ASSIGN(auto now, time_now_or(""));
  Result<trust::TrustStore> store = fail(ErrorCode::kInternal, "");
  if (a.trust_path.empty()) {
    store = trust::TrustStore::from_anchor(target);
    if (!store) return fail(store.error());
  } else {
    store = trust::TrustStore::load(a.trust_path);
    if (!store) return fail(store.error());
    for (const auto& c : a.chain) {
      OTA_TRY_ASSIGN(auto env, load_envelope(c));
      OTA_TRY_CTX(store->update(env), c);
    }
    OTA_TRY_CTX(store->update(target), a.file);
  }
  OTA_TRY(store->check_fresh(now));
  if (ctx.json) {
    nlohmann::ordered_json doc;
    doc["ok"] = true;
    doc["command"] = "root verify";
    doc["root"] = root_json(store->root());
    print_json(doc);
  } else if (!ctx.quiet) {
    std::printf("%s: valid root v%llu\n", a.file.c_str(), static_cast<unsigned long long>(store->root().version));
  }
  return ok();
}

Status run_root_show(const Context& ctx, const RootArgs& a) {
  OTA_TRY_ASSIGN(auto env, load_envelope(a.file));
  auto r = trust::parse_root(env.payload);
  if (!r) return fail(r.error().with_context(a.file));
  trust::ThresholdReport rep;
  auto st = trust::check_threshold(*r, trust::signing_message(trust::kRootType, env.payload), env.signatures, &rep);
  nlohmann::ordered_json doc;
  doc["ok"] = true;
  doc["command"] = "root show";
  doc["root"] = root_json(*r);
  doc["self_signed"] = static_cast<bool>(st);
  doc["signatures"] = nlohmann::ordered_json::array();
  for (const auto& c : rep.checks)
    doc["signatures"].push_back({{"keyid", to_hex(c.key_id)}, {"status", std::string(trust::sig_status_name(c.status))}});
  if (ctx.json) {
    print_json(doc);
  } else {
    std::printf("root v%llu, expires %s, threshold %u of %zu keys, %zu revoked\n",
                static_cast<unsigned long long>(r->version), trust::format_time(r->expires).c_str(), r->threshold,
                r->keys.size(), r->revoked.size());
    for (const auto& [id, k] : r->keys) std::printf("  key     %s\n", to_hex(id).c_str());
    for (const auto& id : r->revoked) std::printf("  revoked %s\n", to_hex(id).c_str());
    for (const auto& c : rep.checks)
      std::printf("  signature by %s: %s\n", to_hex(c.key_id).c_str(), std::string(trust::sig_status_name(c.status)).c_str());
    std::printf("  signed by a threshold of its own keys: %s\n", st ? "yes" : "no");
  }
  return ok();
}

}  // namespace

void add_keygen_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto a = std::make_shared<KeygenArgs>();
  auto* cmd = app.add_subcommand("keygen", "Make an Ed25519 signing key pair (or, with --encryption, an X25519 one): NAME.key (secret, 0600) and NAME.pub");
  cmd->footer("Prints the key id (BLAKE2b-256 of the public key).\nExample:\n  ota keygen -o release-1 --passphrase-env OTA_PASSPHRASE");
  cmd->add_option("-o,--output", a->out, "Base name of the key files")->required();
  a->pass.add_options(cmd);
  cmd->add_flag("--force", a->force, "Replace existing key files");
  cmd->add_flag("--encryption", a->encryption,
                "An X25519 key pair for encrypted bundles: NAME.pub for ota build --encrypt-to, NAME.key for the device");
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print a JSON summary on stdout");
  cmd->callback([&ctx, &exit_code, a] {
    auto st = run_keygen(ctx, *a);
    exit_code = st ? 0 : report(ctx, "keygen", st.error());
  });
}

void add_root_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto* root = app.add_subcommand("root", "Make, sign, rotate and check trust roots");
  root->footer("Example:\n  ota root init --key a.pub --key b.pub --threshold 2 --expires 2030-01-01 -o root.json");
  root->require_subcommand(1);
  auto add_common = [&ctx](CLI::App* c) {
    c->add_flag("-q,--quiet", ctx.quiet, "No progress output");
    c->add_flag("--json", ctx.json, "Print a JSON summary on stdout");
  };
  auto wire = [&ctx, &exit_code](CLI::App* c, std::shared_ptr<RootArgs> a, Status (*fn)(const Context&, const RootArgs&),
                                 std::string name) {
    c->callback([&ctx, &exit_code, a, fn, name] {
      auto st = fn(ctx, *a);
      exit_code = st ? 0 : report(ctx, name, st.error());
    });
  };
  {
    auto a = std::make_shared<RootArgs>();
    auto* c = root->add_subcommand("init", "Write root v1 (unsigned) listing the keys and the threshold");
    c->add_option("--key", a->pubs, "A public key file, or a pkcs11: URI (repeat)")->required()->check(key_file_or_uri());
    c->footer("Example:\n  ota root init --key release-1.pub --key release-2.pub --key release-3.pub --threshold 2 \\\n      --expires 2030-01-01 -o root.json");
    c->add_option("--threshold", a->threshold, "Signatures required (m of n)")->required();
    c->add_option("--expires", a->expires, "Expiry, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")->required();
    c->add_option("-o,--output", a->out, "Where to write root.json")->required();
    add_common(c);
    wire(c, a, run_root_init, "root init");
  }
  {
    auto a = std::make_shared<RootArgs>();
    auto* c = root->add_subcommand("sign", "Add signatures to a root (each --key once)");
    c->add_option("ROOT", a->file, "root.json")->required()->check(CLI::ExistingFile);
    c->footer("Example:\n  ota root sign root.json --key release-1.key --key release-2.key");
    c->add_option("--key", a->secret_keys, "A secret key file, or a pkcs11: URI (repeat)")->required()->check(key_file_or_uri());
    c->add_option("-o,--output", a->out, "Write here instead of in place");
    c->add_option("--previous", a->previous,
                  "The previous root (version N-1) of a rotation: a key this root revokes may then sign as one of its keys")
        ->check(CLI::ExistingFile);
    a->pass.add_options(c);
    add_common(c);
    wire(c, a, run_root_sign, "root sign");
  }
  {
    auto a = std::make_shared<RootArgs>();
    auto* c = root->add_subcommand(
        "rotate", "Write version N+1 of a root (unsigned); it must be signed by a threshold of the old and the new keys");
    c->footer("Example:\n  ota root rotate --from root.json --revoke KEYID --expires 2031-01-01 -o root-v2.json");
    c->add_option("--from", a->from, "The current root.json")->required()->check(CLI::ExistingFile);
    c->add_option("--key", a->pubs, "The complete new key set (repeat); default: the current keys minus revoked");
    c->add_option("--revoke", a->revoke, "Revoke a key id (repeat)");
    c->add_option("--threshold", a->threshold, "Signatures required (default: unchanged)");
    c->add_option("--expires", a->expires, "Expiry of the new version")->required();
    c->add_option("-o,--output", a->out, "Where to write the new root")->required();
    add_common(c);
    wire(c, a, run_root_rotate, "root rotate");
  }
  {
    auto a = std::make_shared<RootArgs>();
    auto* c = root->add_subcommand("verify", "Check a root: self-signed, or chained from --trust through --chain");
    c->add_option("ROOT", a->file, "root.json")->required()->check(CLI::ExistingFile);
    c->footer("Example:\n  ota root verify root-v3.json --trust root.json --chain root-v2.json");
    c->add_option("--trust", a->trust_path, "The root the chain starts from")->check(CLI::ExistingFile);
    c->add_option("--chain", a->chain, "Intermediate versions, in order")->check(CLI::ExistingFile);
    add_common(c);
    wire(c, a, run_root_verify, "root verify");
  }
  {
    auto a = std::make_shared<RootArgs>();
    auto* c = root->add_subcommand("show", "Print a root's keys, threshold, expiry and signatures");
    c->footer("Example:\n  ota root show root.json");
    c->add_option("ROOT", a->file, "root.json")->required()->check(CLI::ExistingFile);
    add_common(c);
    wire(c, a, run_root_show, "root show");
  }
}

}  // namespace ota::cli
