// Writes the seed corpora of the signing/bundle fuzzers, made with the library
// and the fixed keys of sign_fixture.hpp: a few small valid inputs each.
// Usage: make_fuzz_sign_corpus DIR, which fills DIR/fuzz_bundle,
// DIR/fuzz_manifest, DIR/fuzz_signature_block, DIR/fuzz_trust and
// DIR/fuzz_keys (the committed seeds live in fuzz/corpus/).
//
// Every bundle seed is checked the way fuzz_bundle reads it: it must verify
// under its own control byte and read to the end (except "unknown-signer",
// which must fail verification with kUnknownKey and exercises the unverified
// path). Everything is deterministic except the sealed key seed, whose salt
// and nonce are random (the fuzzer never decrypts it).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "ota/release/bundle.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/core/hash.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"
#include "sign_fixture.hpp"

using namespace ota;

namespace {

// Deterministic pseudo-random bytes (SplitMix64).
Bytes filler(std::size_t size, std::uint64_t state) {
  Bytes out(size);
  for (std::size_t i = 0; i < size; ++i) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    out[i] = static_cast<std::uint8_t>(z ^ (z >> 31));
  }
  return out;
}

struct PayloadSpec {
  std::string name;
  manifest::PayloadKind kind = manifest::PayloadKind::kFull;
  manifest::Compression compression = manifest::Compression::kZstd;
  std::size_t size = 0;
  std::uint64_t fill = 0;  // filler state; for a delta also picks its base
};

struct BundleSpec {
  std::string file;
  std::vector<std::uint8_t> prefix;  // control byte and read sizes
  std::string version = "1.2.0";
  std::uint64_t security_version = 1;
  std::vector<std::string> hardware = {std::string(fuzz::kHardware)};
  std::optional<trust::Time> expires;
  std::vector<PayloadSpec> payloads;
  std::vector<const keys::SecretKey*> signers = {&fuzz::key_a()};
  bool with_rotation = false;
  std::optional<ErrorCode> verify_fails;  // expected verify() failure
};

struct Made {
  manifest::Manifest m;
  Bytes manifest_bytes;
  bundle::SignatureBlock block;
  Bytes bundle;  // with the fuzz prefix
};

Made make_bundle(const BundleSpec& s) {
  Made out;
  manifest::Manifest& m = out.m;
  m.name = "fuzz-image";
  m.version = s.version;
  m.security_version = s.security_version;
  m.hardware = s.hardware;
  m.created = fuzz::kCreated;
  m.expires = s.expires;
  std::vector<Bytes> data;
  for (const auto& ps : s.payloads) {
    Bytes d = filler(ps.size, ps.fill);
    manifest::Payload p;
    p.name = ps.name;
    p.kind = ps.kind;
    p.compression = ps.compression;
    p.window_log = ps.compression == manifest::Compression::kNone ? 0 : 21;
    p.size = d.size();
    p.chunk_size = 4096;
    for (std::size_t at = 0; at < d.size(); at += p.chunk_size)
      p.chunks.push_back(content_hash(ByteSpan(d).subspan(at, std::min<std::size_t>(p.chunk_size, d.size() - at))));
    p.hash = manifest::chunk_tree_hash(p.chunks);
    if (ps.kind == manifest::PayloadKind::kDelta) {
      const Bytes base = filler(4096, ps.fill ^ 0xba5e);
      p.base_size = base.size();
      p.base_hash = content_hash(base);
    } else {
      m.target_size = d.size();
      m.target_hash = content_hash(d);
    }
    m.payloads.push_back(std::move(p));
    data.push_back(std::move(d));
  }
  if (!manifest::validate(m)) std::abort();
  out.manifest_bytes = manifest::encode_manifest(m);
  for (const auto* k : s.signers) out.block.signatures.push_back(fuzz::sign_entry(*k, trust::kManifestType, out.manifest_bytes));
  if (s.with_rotation) out.block.roots.push_back(fuzz::rotation_envelope());

  std::vector<MemoryReader> readers;
  readers.reserve(data.size());
  std::vector<Reader*> ptrs;
  for (const auto& d : data) ptrs.push_back(&readers.emplace_back(d));
  VectorWriter w;
  if (!w.write(s.prefix) || !bundle::write_bundle(w, out.manifest_bytes, out.block, m, ptrs)) std::abort();
  out.bundle = std::move(w).take();
  return out;
}

// Reads a seed the way fuzz_bundle does (without short reads): it must do
// what the spec says.
void check_seed(const BundleSpec& s, const Made& made) {
  const std::uint8_t control = s.prefix.at(0);
  const std::size_t k = control & fuzz::kReadSizesMask;
  MemoryReader in(ByteSpan(made.bundle).subspan(1 + k));
  auto r = bundle::BundleReader::open(in);
  if (!r) std::abort();
  trust::TrustStore store = fuzz::fixed_trust();
  auto m = (*r)->verify(store, fuzz::verify_options(control));
  if (s.verify_fails) {
    if (m || m.error().code != *s.verify_fails) std::abort();
    return;
  }
  if (!m) {
    std::fprintf(stderr, "%s: %s\n", s.file.c_str(), m.error().message.c_str());
    std::abort();
  }
  Bytes buf(4096);
  while (true) {
    auto idx = (*r)->next_payload();
    if (!idx) std::abort();
    if (!*idx) break;
    std::uint64_t total = 0;
    while (true) {
      auto n = (*r)->read(buf);
      if (!n) std::abort();
      if (*n == 0) break;
      total += *n;
    }
    if (total != m->payloads[**idx].size) std::abort();
  }
}

bool write(const std::filesystem::path& dir, const std::string& name, ByteSpan data) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = (dir / name).string();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}
bool write(const std::filesystem::path& dir, const std::string& name, std::string_view text) {
  return write(dir, name, fuzz::as_bytes(text));
}

std::vector<BundleSpec> bundle_specs() {
  using manifest::Compression;
  using manifest::PayloadKind;
  std::vector<BundleSpec> specs;
  {
    BundleSpec s;  // one zstd payload in one chunk, plain reads
    s.file = "single-full";
    s.prefix = {0x00};
    s.payloads = {{"image.zst", PayloadKind::kFull, Compression::kZstd, 3000, 1}};
    specs.push_back(s);
  }
  {
    BundleSpec s;  // three chunks; reads of 1, 7 and 255 bytes; hardware checked
    s.file = "chunked-short-reads";
    s.prefix = {0x13, 0x00, 0x06, 0xfe};
    s.payloads = {{"image.bin", PayloadKind::kFull, Compression::kNone, 9000, 2}};
    specs.push_back(s);
  }
  {
    BundleSpec s;  // a full and a delta payload, expiry, downgrade checks, 100-byte reads
    s.file = "full-and-delta";
    s.prefix = {0xa0};
    s.version = "1.2.0-rc.1+build.5";
    s.security_version = 3;
    s.hardware = {std::string(fuzz::kHardware), "other-board"};
    s.expires = 1893456000;  // 2030-01-01
    s.payloads = {{"image.zst", PayloadKind::kFull, Compression::kZstd, 5000, 3},
                  {"from-1.1.0.otad", PayloadKind::kDelta, Compression::kOtaDelta, 700, 4}};
    specs.push_back(s);
  }
  {
    BundleSpec s;  // the block carries root v2; only B (v2's key) signs; payload 1 skipped
    s.file = "rotated-root-skip";
    s.prefix = {0x40};
    s.with_rotation = true;
    s.signers = {&fuzz::key_b()};
    s.payloads = {{"image.zst", PayloadKind::kFull, Compression::kZstd, 4100, 5},
                  {"from-1.0.0.otad", PayloadKind::kDelta, Compression::kOtaDelta, 600, 6},
                  {"from-1.1.0.otad", PayloadKind::kDelta, Compression::kOtaDelta, 300, 7}};
    specs.push_back(s);
  }
  {
    BundleSpec s;  // an empty payload; expired, but expiry is not checked; A and B sign
    s.file = "empty-expired-noexpiry";
    s.prefix = {0x88};
    s.expires = 1740787200;  // 2025-03-01, before the fuzzers' clock
    s.signers = {&fuzz::key_a(), &fuzz::key_b()};
    s.payloads = {{"empty.bin", PayloadKind::kFull, Compression::kNone, 0, 8}};
    specs.push_back(s);
  }
  {
    BundleSpec s;  // signed only by B, which root v1 does not list: the unverified path
    s.file = "unknown-signer";
    s.prefix = {0x00};
    s.signers = {&fuzz::key_b()};
    s.payloads = {{"image.zst", PayloadKind::kFull, Compression::kZstd, 2000, 9}};
    s.verify_fails = ErrorCode::kUnknownKey;
    specs.push_back(s);
  }
  return specs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  bool ok = true;

  // fuzz_bundle, and the manifests and signature blocks inside the bundles.
  for (const auto& s : bundle_specs()) {
    Made made = make_bundle(s);
    check_seed(s, made);
    ok = ok && write(dir / "fuzz_bundle", s.file, made.bundle);
    if (s.file == "single-full" || s.file == "full-and-delta" || s.file == "rotated-root-skip" ||
        s.file == "empty-expired-noexpiry")
      ok = ok && write(dir / "fuzz_manifest", s.file + ".json", made.manifest_bytes);
    if (s.file == "single-full" || s.file == "rotated-root-skip" || s.file == "empty-expired-noexpiry")
      ok = ok && write(dir / "fuzz_signature_block", s.file + ".json", bundle::encode_signature_block(made.block));
  }
  ok = ok && write(dir / "fuzz_signature_block", "empty.json", bundle::encode_signature_block({}));

  // A manifest (no bundle) with an 8 GiB payload in 64 MiB chunks: its tar
  // header needs a pax size record (layout and member_header: 1536 bytes).
  {
    manifest::Manifest m;
    m.name = "fuzz-large";
    m.version = "2.0.0";
    m.hardware = {std::string(fuzz::kHardware)};
    m.created = fuzz::kCreated;
    manifest::Payload p;
    p.name = "large.bin";
    p.compression = manifest::Compression::kNone;
    p.size = 8ull << 30;
    p.chunk_size = 64u << 20;
    for (std::uint64_t i = 0; i < p.size / p.chunk_size; ++i) p.chunks.push_back(content_hash(filler(8, 100 + i)));
    p.hash = manifest::chunk_tree_hash(p.chunks);
    m.target_size = p.size;
    m.target_hash = content_hash(filler(32, 10));
    m.payloads = {p};
    if (!manifest::validate(m)) std::abort();
    ok = ok && write(dir / "fuzz_manifest", "large-8gib.json", manifest::encode_manifest(m));
  }

  // fuzz_trust: root documents, their envelopes, times.
  ok = ok && write(dir / "fuzz_trust", "root-v1.json", trust::encode_root(fuzz::root_v1())) &&
       write(dir / "fuzz_trust", "root-v2.json", trust::encode_root(fuzz::root_v2())) &&
       write(dir / "fuzz_trust", "anchor-v1.envelope.json", trust::encode_envelope(fuzz::anchor_envelope())) &&
       write(dir / "fuzz_trust", "rotation-v2.envelope.json", trust::encode_envelope(fuzz::rotation_envelope())) &&
       write(dir / "fuzz_trust", "time-date", std::string_view("2024-02-29")) &&
       write(dir / "fuzz_trust", "time-full", std::string_view("2025-06-01T12:34:56Z"));

  // fuzz_keys: public and secret key files, clear and sealed (minimum cost).
  auto clear = keys::encode_secret(fuzz::key_a(), std::nullopt);
  auto sealed = keys::encode_secret(fuzz::key_b(), "fuzz passphrase", keys::SealParams{1, 8192});
  if (!clear || !sealed) return 1;
  ok = ok && write(dir / "fuzz_keys", "a.pub", keys::encode_public(fuzz::key_a().public_key())) &&
       write(dir / "fuzz_keys", "a.key", *clear) && write(dir / "fuzz_keys", "b-sealed.key", *sealed);
  // fuzz_campaign: one seed per parser, selected by the first byte.
  {
    auto seed = [&](const std::string& name, std::uint8_t which, std::string_view body) {
      std::string s(1, static_cast<char>(which));
      s.append(body);
      return write(dir / "fuzz_campaign", name, std::string_view(s));
    };
    campaign::Campaign c;
    c.id = "fw-2.0";
    c.fleet = "meters";
    c.revision = 2;
    c.created = fuzz::kCreated;
    c.expires = fuzz::kRootExpires;
    c.manifest_hash = content_hash(filler(16, 7));
    c.version = "2.0.0";
    c.hardware = {std::string(fuzz::kHardware)};
    c.url = "https://updates.example.com/b.otb";
    c.bundle_size = 123456;
    c.waves = {100, 1000, 5000, 10000};
    c.controller = fuzz::key_b().public_key();
    trust::Envelope ce;
    ce.payload_type = std::string(campaign::kCampaignType);
    ce.payload = campaign::encode_campaign(c);
    ce.signatures.push_back(fuzz::sign_entry(fuzz::key_a(), campaign::kCampaignType, ce.payload));
    campaign::Control k{c.id, c.revision, 4, 1, campaign::RunState::kPaused, fuzz::kNow, "failure gate"};
    const Bytes cb = campaign::encode_campaign(c), kb = campaign::encode_control(k);
    ok = ok && seed("document.json", 0, campaign::encode_document({ce, campaign::sign_control(k, fuzz::key_b())})) &&
         seed("report.json", 1,
              campaign::encode_report({"meter-7", 42, "0a1b2c3d", fuzz::kNow, c.id, campaign::Phase::kRolledBack, "1.0.0",
                                       "health check failed", 42, 1000})) &&
         seed("command.json", 2, campaign::encode_command({"c0ffee00", "abort", fuzz::kNow, "bad build"})) &&
         seed("availability.json", 3, campaign::encode_availability({"meter-7", "0a1b2c3d", false})) &&
         seed("campaign.json", 4, std::string_view(reinterpret_cast<const char*>(cb.data()), cb.size())) &&
         seed("control.json", 5, std::string_view(reinterpret_cast<const char*>(kb.data()), kb.size()));
  }
  if (!ok) {
    std::perror("writing the corpus");
    return 1;
  }
  return 0;
}
