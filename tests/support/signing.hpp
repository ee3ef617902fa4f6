// Shared fixtures for the signing and bundle suites: deterministic keys,
// signed root envelopes, hand-built manifests and in-memory bundles, and one
// function that reads a bundle the way a device does (open, verify, every
// payload to its end).
//
// Header-only on purpose: only ota_sign_tests uses it. Helpers throw
// std::runtime_error on setup failures (GoogleTest reports the exception as a
// failure of the test that called them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ota/release/bundle.hpp"
#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"

namespace ota::test {

// ---- small conversions ----

inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string to_text(ByteSpan b) { return std::string(b.begin(), b.end()); }

// The code of a Result/Status, kOk on success.
template <typename R>
ErrorCode code_of(const R& r) {
  return r ? ErrorCode::kOk : r.error().code;
}
template <typename R>
std::string message_of(const R& r) {
  return r ? std::string() : r.error().message;
}

// A time from "YYYY-MM-DD[THH:MM:SSZ]"; throws on a bad literal.
inline trust::Time at(std::string_view text) {
  auto t = trust::parse_time(text);
  if (!t) throw std::runtime_error("bad time literal in a test: " + std::string(text));
  return *t;
}

// ---- keys ----

// The 32-byte seed of test key n: distinct for every n, same on every run.
inline Bytes test_seed(std::uint8_t n) {
  Bytes seed(32);
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(n * 37u + i * 11u + 1u);
  return seed;
}

inline keys::SecretKey test_key(std::uint8_t n) {
  auto k = keys::SecretKey::from_seed(test_seed(n));
  if (!k) throw std::runtime_error("SecretKey::from_seed failed: " + k.error().message);
  return std::move(*k);
}

// Keys 0..n-1, built once per fixture.
class Keyring {
 public:
  explicit Keyring(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) keys_.push_back(test_key(static_cast<std::uint8_t>(i)));
  }
  const keys::SecretKey& operator[](std::size_t i) const { return keys_.at(i); }
  const keys::SecretKey* ptr(std::size_t i) const { return &keys_.at(i); }
  std::vector<const keys::SecretKey*> ptrs(std::initializer_list<std::size_t> idx) const {
    std::vector<const keys::SecretKey*> out;
    for (auto i : idx) out.push_back(ptr(i));
    return out;
  }
  keys::KeyId id(std::size_t i) const { return keys_.at(i).public_key().id(); }

 private:
  std::vector<keys::SecretKey> keys_;
};

using Signers = std::vector<const keys::SecretKey*>;

inline trust::SignatureEntry sign_entry(const keys::SecretKey& k, std::string_view type, ByteSpan body) {
  return {k.public_key().id(), k.sign(trust::signing_message(type, body))};
}

inline std::vector<trust::SignatureEntry> sign_all(const Signers& signers, std::string_view type, ByteSpan body) {
  std::vector<trust::SignatureEntry> out;
  for (const auto* k : signers) out.push_back(sign_entry(*k, type, body));
  return out;
}

// ---- trust roots ----

inline trust::Root make_root(std::uint64_t version, trust::Time expires, std::uint32_t threshold,
                             const Signers& keys, std::vector<keys::KeyId> revoked = {}) {
  trust::Root r;
  r.version = version;
  r.expires = expires;
  r.threshold = threshold;
  for (const auto* k : keys) r.keys.emplace(k->public_key().id(), k->public_key());
  for (const auto& id : revoked) r.revoked.insert(id);
  return r;
}

// An envelope carrying the canonical bytes of root, signed by signers.
inline trust::Envelope root_envelope(const trust::Root& root, const Signers& signers) {
  trust::Envelope env;
  env.payload_type = std::string(trust::kRootType);
  env.payload = trust::encode_root(root);
  env.signatures = sign_all(signers, trust::kRootType, env.payload);
  return env;
}

inline trust::TrustStore store_from(const trust::Envelope& anchor) {
  auto s = trust::TrustStore::from_anchor(anchor);
  if (!s) throw std::runtime_error("TrustStore::from_anchor failed: " + s.error().message);
  return std::move(*s);
}

// ---- manifests ----

// The hash a payload entry carries for these stored bytes: the hash of their
// chunk hashes (manifest::chunk_tree_hash).
inline Digest payload_hash(ByteSpan stored, std::uint32_t chunk_size) {
  std::vector<Digest> chunks;
  for (std::size_t off = 0; off < stored.size(); off += chunk_size)
    chunks.push_back(content_hash(stored.subspan(off, std::min<std::size_t>(chunk_size, stored.size() - off))));
  return manifest::chunk_tree_hash(chunks);
}

// A payload entry describing exactly these stored bytes.
inline manifest::Payload payload_for(std::string name, ByteSpan stored, std::uint32_t chunk_size,
                                     manifest::PayloadKind kind = manifest::PayloadKind::kFull,
                                     manifest::Compression compression = manifest::Compression::kNone) {
  manifest::Payload p;
  p.name = std::move(name);
  p.kind = kind;
  p.compression = compression;
  p.size = stored.size();
  p.chunk_size = chunk_size;
  for (std::size_t off = 0; off < stored.size(); off += chunk_size)
    p.chunks.push_back(content_hash(stored.subspan(off, std::min<std::size_t>(chunk_size, stored.size() - off))));
  p.hash = manifest::chunk_tree_hash(p.chunks);
  return p;
}

// A valid manifest with one uncompressed full payload (the image itself).
inline manifest::Manifest simple_manifest(const Bytes& image, std::uint32_t chunk_size = 4096) {
  manifest::Manifest m;
  m.name = "demo-firmware";
  m.version = "1.2.3";
  m.security_version = 4;
  m.hardware = {"board-a", "board-b"};
  m.created = at("2026-01-02T03:04:05Z");
  m.expires = at("2027-01-01");
  m.target_size = image.size();
  m.target_hash = content_hash(image);
  m.payloads.push_back(payload_for("full.img", image, chunk_size));
  return m;
}

// ---- bundles ----

struct MemBundle {
  manifest::Manifest m;
  Bytes manifest_bytes;
  bundle::SignatureBlock block;
  std::vector<Bytes> payloads;
  Bytes bytes;  // the whole container
};

// Writes a bundle in memory with write_bundle. manifest_bytes defaults to the
// canonical encoding of m; the signers sign those exact bytes.
inline MemBundle write_mem_bundle(manifest::Manifest m, std::vector<Bytes> payloads, const Signers& signers,
                                  std::vector<trust::Envelope> roots = {},
                                  std::optional<Bytes> manifest_bytes = std::nullopt) {
  MemBundle b;
  b.m = std::move(m);
  b.manifest_bytes = manifest_bytes ? std::move(*manifest_bytes) : manifest::encode_manifest(b.m);
  b.block.signatures = sign_all(signers, trust::kManifestType, b.manifest_bytes);
  b.block.roots = std::move(roots);
  b.payloads = std::move(payloads);
  std::vector<std::unique_ptr<MemoryReader>> readers;
  std::vector<Reader*> ptrs;
  for (const auto& p : b.payloads) {
    readers.push_back(std::make_unique<MemoryReader>(p));
    ptrs.push_back(readers.back().get());
  }
  VectorWriter out;
  auto st = bundle::write_bundle(out, b.manifest_bytes, b.block, b.m, ptrs);
  if (!st) throw std::runtime_error("write_bundle failed: " + st.error().message);
  b.bytes = std::move(out).take();
  return b;
}

// What a device does with a bundle: open, verify, then every payload read to
// its end (so every chunk hash, padding and end-of-archive byte is checked).
// payloads_out (optional) receives the bytes handed out per payload.
inline Status read_bundle(ByteSpan bytes, trust::TrustStore& store, const bundle::VerifyOptions& opts,
                          std::vector<Bytes>* payloads_out = nullptr, std::size_t buffer_size = 1000) {
  MemoryReader in(bytes);
  auto reader = bundle::BundleReader::open(in);
  if (!reader) return fail(reader.error());
  auto m = (*reader)->verify(store, opts);
  if (!m) return fail(m.error());
  Bytes buf(buffer_size);
  while (true) {
    auto idx = (*reader)->next_payload();
    if (!idx) return fail(idx.error());
    if (!*idx) break;
    if (payloads_out) payloads_out->emplace_back();
    while (true) {
      auto n = (*reader)->read(buf);
      if (!n) return fail(n.error());
      if (*n == 0) break;
      if (payloads_out) payloads_out->back().insert(payloads_out->back().end(), buf.begin(), buf.begin() + *n);
    }
  }
  if ((*reader)->offset() != bytes.size())
    return fail(ErrorCode::kInternal, "test: the reader finished before the end of the bundle");
  return ok();
}

}  // namespace ota::test
