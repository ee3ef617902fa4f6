// libFuzzer target: arbitrary bytes as a bundle's signature block
// (signatures.json), the part of a bundle no signature covers.
//
// Oracles beyond "no crash, no sanitizer report":
// - a failure is kMalformed;
// - an accepted block round-trips: encode(parse(encode(b))) == encode(b),
//   with the same signatures and root envelopes;
// - walking its root updates from the fixed trust store (root v1, see
//   sign_fixture.hpp) moves the version by exactly the number of updates it
//   did not ignore, and only when key A really signed the first of them.
#include <cstddef>
#include <cstdint>

#include "ota/release/bundle.hpp"
#include "sign_fixture.hpp"

namespace {

using namespace ota;
using fuzz::check;

bool same(const std::vector<trust::SignatureEntry>& a, const std::vector<trust::SignatureEntry>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].key_id != b[i].key_id || a[i].sig != b[i].sig) return false;
  return true;
}

bool same(const bundle::SignatureBlock& a, const bundle::SignatureBlock& b) {
  if (!same(a.signatures, b.signatures) || a.roots.size() != b.roots.size()) return false;
  for (std::size_t i = 0; i < a.roots.size(); ++i)
    if (a.roots[i].payload_type != b.roots[i].payload_type || a.roots[i].payload != b.roots[i].payload ||
        !same(a.roots[i].signatures, b.roots[i].signatures))
      return false;
  return true;
}

bool any_signed_by_a(const std::vector<trust::Envelope>& roots) {
  const keys::PublicKey& a = fuzz::key_a().public_key();
  for (const auto& env : roots) {
    const Bytes message = trust::signing_message(trust::kRootType, env.payload);
    for (const auto& s : env.signatures)
      if (s.key_id == a.id() && a.verify(message, s.sig)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto block = bundle::parse_signature_block(ByteSpan(data, size));
  if (!block) {
    check(fuzz::one_of(block.error().code, {ErrorCode::kMalformed}));
    return 0;
  }
  const Bytes encoded = bundle::encode_signature_block(*block);
  // (Re-encoding indents: a compact block near the size limit may not fit
  // again. Fuzz inputs are far smaller; stay exact about what is checked.)
  if (encoded.size() > bundle::kMaxSignatureBlockBytes) return 0;
  auto again = bundle::parse_signature_block(encoded);
  check(again.has_value());
  check(same(*block, *again));
  check(bundle::encode_signature_block(*again) == encoded);

  trust::TrustStore store = fuzz::fixed_trust();
  const std::size_t ignored = store.update_all(block->roots);
  check(ignored <= block->roots.size());
  check(store.root().version == 1 + (block->roots.size() - ignored));
  if (ignored < block->roots.size()) check(any_signed_by_a(block->roots));
  return 0;
}
