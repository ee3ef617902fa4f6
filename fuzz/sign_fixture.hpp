// What the signing/bundle fuzzers and their seed generator (make_sign_corpus)
// agree on: two fixed Ed25519 keys, the trust roots they make, the clock, and
// the layout of a fuzz_bundle input.
//
// Keys: A (seed "ota fuzz key A" zero-padded to 32 bytes) and B (likewise).
// Root v1 (the device's anchor): keys {A}, threshold 1, signed by A.
// Root v2 (an update a bundle may carry): keys {B}, A revoked, threshold 1,
// signed by A and B (so it chains from v1). Both expire in 2035; the fuzzers'
// clock is fixed at 2025-06-01, so every run is deterministic. Only these two
// keys can sign anything a fuzzer sees, so every validly signed input is one
// the generator made on purpose.
//
// fuzz_bundle input layout:
//   byte 0        control: bits 0-2 = k, the number of read-size bytes;
//                 bit 3 = check_expiry off;
//                 bit 4 = policy.hardware = kHardware;
//                 bit 5 = policy.installed_version "1.0.0", security floor 1;
//                 bit 6 = odd-numbered payloads: one read() then skipped;
//                 bit 7 = read() into a 100-byte buffer (else 64 KiB)
//   bytes 1..k    read sizes: the bundle Reader returns at most byte + 1
//                 bytes per read(), used in turn, cycled (k = 0: no limit)
//   the rest      the bundle
#pragma once

#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ota/release/bundle.hpp"
#include "ota/core/error.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"

namespace ota::fuzz {

inline constexpr trust::Time kCreated = 1735689600;      // 2025-01-01
inline constexpr trust::Time kNow = 1748736000;          // 2025-06-01
inline constexpr trust::Time kRootExpires = 2051222400;  // 2035-01-01
inline constexpr std::string_view kHardware = "fuzz-board";

inline constexpr std::uint8_t kReadSizesMask = 0x07;
inline constexpr std::uint8_t kNoExpiry = 0x08;
inline constexpr std::uint8_t kCheckHardware = 0x10;
inline constexpr std::uint8_t kCheckDowngrade = 0x20;
inline constexpr std::uint8_t kSkipOdd = 0x40;
inline constexpr std::uint8_t kSmallReads = 0x80;

// The fixtures are built once; a failure here is a broken build, not a finding.
template <typename T>
T must(Result<T> r) {
  if (!r) std::abort();
  return std::move(*r);
}

inline keys::SecretKey key_from_label(std::string_view label) {
  std::uint8_t seed[32] = {};
  for (std::size_t i = 0; i < label.size() && i < sizeof seed; ++i) seed[i] = static_cast<std::uint8_t>(label[i]);
  return must(keys::SecretKey::from_seed(ByteSpan(seed, sizeof seed)));
}

inline const keys::SecretKey& key_a() {
  static const keys::SecretKey k = key_from_label("ota fuzz key A");
  return k;
}
inline const keys::SecretKey& key_b() {
  static const keys::SecretKey k = key_from_label("ota fuzz key B");
  return k;
}

inline trust::SignatureEntry sign_entry(const keys::SecretKey& key, std::string_view type, ByteSpan body) {
  return {key.public_key().id(), key.sign(trust::signing_message(type, body))};
}

inline trust::Envelope sign_root(const trust::Root& root, const std::vector<const keys::SecretKey*>& signers) {
  trust::Envelope env;
  env.payload_type = std::string(trust::kRootType);
  env.payload = trust::encode_root(root);
  for (const auto* k : signers) env.signatures.push_back(sign_entry(*k, trust::kRootType, env.payload));
  return env;
}

inline trust::Root root_v1() {
  trust::Root r;
  r.version = 1;
  r.expires = kRootExpires;
  r.threshold = 1;
  r.keys.emplace(key_a().public_key().id(), key_a().public_key());
  return r;
}

inline trust::Root root_v2() {
  trust::Root r;
  r.version = 2;
  r.expires = kRootExpires;
  r.threshold = 1;
  r.keys.emplace(key_b().public_key().id(), key_b().public_key());
  r.revoked.insert(key_a().public_key().id());
  return r;
}

inline const trust::Envelope& anchor_envelope() {
  static const trust::Envelope env = sign_root(root_v1(), {&key_a()});
  return env;
}
inline const trust::Envelope& rotation_envelope() {
  static const trust::Envelope env = sign_root(root_v2(), {&key_a(), &key_b()});
  return env;
}

// The device's trust: root v1. Copy it per input (verify() walks updates).
inline const trust::TrustStore& fixed_trust() {
  static const trust::TrustStore store = must(trust::TrustStore::from_anchor(anchor_envelope()));
  return store;
}

inline bundle::VerifyOptions verify_options(std::uint8_t control) {
  bundle::VerifyOptions o;
  o.policy.now = kNow;
  o.check_expiry = (control & kNoExpiry) == 0;
  if (control & kCheckHardware) o.policy.hardware = std::string(kHardware);
  if (control & kCheckDowngrade) {
    o.policy.installed_version = "1.0.0";
    o.policy.security_floor = 1;
  }
  return o;
}

// An oracle failed: say which one, then abort, so libFuzzer reports a crash.
inline void check(bool condition, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (!condition) {
    std::fprintf(stderr, "oracle failed at %s:%d\n", file, line);
    std::abort();
  }
}

// One of the pinned ErrorCode values (error.hpp); anything else is a bug.
inline bool is_pinned(ErrorCode c) {
  const auto v = static_cast<unsigned>(c);
  return (v >= 1 && v <= 7) || (v >= 10 && v <= 14) || (v >= 20 && v <= 30);
}

inline bool one_of(ErrorCode c, std::initializer_list<ErrorCode> allowed) {
  if (!is_pinned(c)) return false;
  for (auto a : allowed)
    if (c == a) return true;
  return false;
}

inline std::string_view as_text(ByteSpan b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
inline ByteSpan as_bytes(std::string_view s) {
  return ByteSpan(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

}  // namespace ota::fuzz
