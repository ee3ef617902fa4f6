// libFuzzer target: arbitrary bytes as a signed root envelope (root.json), as
// a root document (its payload) and as a UTC time, all three on every input.
// An envelope that parses is also offered to the fixed trust store (root v1,
// see sign_fixture.hpp) as an update and as an anchor of its own.
//
// Oracles beyond "no crash, no sanitizer report":
// - failures carry the documented codes: kMalformed (kUnsupported for a key
//   type) from the parsers, only kRootRejected from TrustStore::update;
// - an accepted root satisfies its invariants (version >= 1, threshold
//   between 1 and the key count, key ids are the keys' hashes, no key both
//   listed and revoked) and round-trips: encode(parse(encode(r))) == encode(r);
// - an accepted envelope round-trips through encode_envelope;
// - check_threshold's report agrees with its result;
// - the trust store accepts an update only when key A (the only key of root
//   v1) really signed it and its version is 2;
// - parse_time(format_time(t)) == t, and the date part is the input's.
#include <cstddef>
#include <cstdint>

#include "ota/release/trust.hpp"
#include "sign_fixture.hpp"

namespace {

using namespace ota;
using fuzz::check;

void run_time(std::string_view text) {
  auto t = trust::parse_time(text);
  if (!t) {
    check(fuzz::one_of(t.error().code, {ErrorCode::kMalformed}));
    return;
  }
  check(*t >= 0);
  const std::string formatted = trust::format_time(*t);
  check(formatted.size() == 20 && formatted.compare(0, 10, text.substr(0, 10)) == 0);
  auto back = trust::parse_time(formatted);
  check(back.has_value() && *back == *t);
  if (text.size() == 10) check(*t % 86400 == 0);
}

void run_root(ByteSpan bytes) {
  auto r = trust::parse_root(bytes);
  if (!r) {
    check(fuzz::one_of(r.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
    return;
  }
  check(r->version >= 1);
  check(r->threshold >= 1 && r->threshold <= r->keys.size());
  for (const auto& [id, key] : r->keys) {
    check(id == key.id());
    check(r->revoked.count(id) == 0);
  }
  const Bytes encoded = trust::encode_root(*r);
  auto again = trust::parse_root(encoded);
  check(again.has_value());
  check(trust::encode_root(*again) == encoded);
  check(again->version == r->version && again->expires == r->expires && again->threshold == r->threshold &&
        again->keys == r->keys && again->revoked == r->revoked);
}

bool same_signatures(const std::vector<trust::SignatureEntry>& a, const std::vector<trust::SignatureEntry>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].key_id != b[i].key_id || a[i].sig != b[i].sig) return false;
  return true;
}

bool signed_by(const keys::PublicKey& key, const trust::Envelope& env) {
  const Bytes message = trust::signing_message(trust::kRootType, env.payload);
  for (const auto& s : env.signatures)
    if (s.key_id == key.id() && key.verify(message, s.sig)) return true;
  return false;
}

void run_threshold(const trust::Envelope& env) {
  const trust::Root& root = fuzz::fixed_trust().root();
  trust::ThresholdReport report;
  Status st = trust::check_threshold(root, trust::signing_message(env.payload_type, env.payload), env.signatures,
                                     &report);
  check(report.checks.size() == env.signatures.size());
  check(report.threshold == root.threshold);
  std::uint32_t valid = 0;
  for (const auto& c : report.checks) valid += c.status == trust::SigStatus::kValid;
  check(valid == report.valid);
  check(static_cast<bool>(st) == (report.valid >= report.threshold));
  if (!st)
    check(fuzz::one_of(st.error().code, {ErrorCode::kBadSignature, ErrorCode::kTooFewSignatures,
                                         ErrorCode::kUnknownKey, ErrorCode::kKeyRevoked}));
}

void run_envelope(std::string_view text) {
  auto env = trust::parse_envelope(text);
  if (!env) {
    check(fuzz::one_of(env.error().code, {ErrorCode::kMalformed}));
    return;
  }
  const std::string encoded = trust::encode_envelope(*env);
  auto again = trust::parse_envelope(encoded);
  check(again.has_value());
  check(again->payload_type == env->payload_type && again->payload == env->payload &&
        same_signatures(again->signatures, env->signatures));
  check(trust::encode_envelope(*again) == encoded);

  run_threshold(*env);

  // As an update of the device's root v1.
  trust::TrustStore store = fuzz::fixed_trust();
  Status st = store.update(*env);
  if (st) {
    check(store.root().version == 2);
    check(signed_by(fuzz::key_a().public_key(), *env));
  } else {
    check(fuzz::one_of(st.error().code, {ErrorCode::kRootRejected}));
    check(store.root().version == 1);
  }

  // As an anchor: self-signed by its own threshold.
  auto anchor = trust::TrustStore::from_anchor(*env);
  if (anchor) {
    check(env->payload_type == trust::kRootType);
    auto root = trust::parse_root(env->payload);
    check(root.has_value() && trust::encode_root(*root) == trust::encode_root(anchor->root()));
  } else {
    check(fuzz::one_of(anchor.error().code,
                       {ErrorCode::kMalformed, ErrorCode::kUnsupported, ErrorCode::kBadSignature,
                        ErrorCode::kTooFewSignatures, ErrorCode::kUnknownKey, ErrorCode::kKeyRevoked}));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan in(data, size);
  run_time(fuzz::as_text(in));
  run_root(in);
  run_envelope(fuzz::as_text(in));
  return 0;
}
