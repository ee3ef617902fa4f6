// libFuzzer target: an arbitrary bundle through the streaming BundleReader,
// the way a device reads one: open(), verify() against the fixed trust store
// (root v1 with key A; see sign_fixture.hpp for the keys and the input
// layout), then every payload via next_payload()/read() to the end of file.
// The Reader returns short reads whose sizes come from the input. When
// verify() fails, the manifest is parsed unverified (as `ota inspect` and
// `ota sign` do) and the payloads are read against it (bundle.hpp: each chunk
// is still checked against that manifest), so mutated manifests still reach
// the payload and tar checks.
//
// Oracles beyond "no crash, no sanitizer report":
// - failures carry the documented codes (open: kMalformed; verify: signature,
//   manifest and policy codes; payloads: kMalformed or kPayloadMismatch);
// - verify() succeeds only if a key of the (possibly rotated) root, so A or
//   B, really signed the manifest bytes, and returns exactly what
//   parse_manifest makes of them, which passes the policy;
// - every byte read() hands out belongs to a chunk that hashes to the
//   manifest's chunk hash, payloads come in manifest order, a fully read
//   payload has exactly the manifest's size (and, verified, its hash), and
//   the end is reported only at the end of the input.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ota/release/bundle.hpp"
#include "ota/core/hash.hpp"
#include "sign_fixture.hpp"

namespace {

using namespace ota;
using fuzz::check;

// A Reader over the input that returns short reads: at most the next size of
// a cycled list (empty: whatever is asked).
class ShortReader final : public Reader {
 public:
  ShortReader(ByteSpan data, ByteSpan sizes) : data_(data), sizes_(sizes) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    std::size_t n = std::min(out.size(), data_.size() - pos_);
    if (!sizes_.empty()) n = std::min<std::size_t>(n, std::size_t{sizes_[turn_++ % sizes_.size()]} + 1);
    std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  std::size_t position() const { return pos_; }
  std::size_t size() const { return data_.size(); }

 private:
  ByteSpan data_;
  ByteSpan sizes_;
  std::size_t pos_ = 0;
  std::size_t turn_ = 0;
};

bool payload_error(ErrorCode c) { return fuzz::one_of(c, {ErrorCode::kMalformed, ErrorCode::kPayloadMismatch}); }

// Reads the payloads to the end; checks what comes out against m.
void read_payloads(bundle::BundleReader& r, const manifest::Manifest& m, std::uint8_t control, bool verified,
                   const ShortReader& in) {
  Bytes buf((control & fuzz::kSmallReads) ? 100 : 64 * 1024);
  std::size_t expected_index = 0;
  while (true) {
    auto idx = r.next_payload();
    if (!idx) {
      check(payload_error(idx.error().code));
      return;
    }
    if (!*idx) {
      check(expected_index == m.payloads.size());
      // The end is reported only at the end of the input.
      check(in.position() == in.size() && r.offset() == in.size());
      auto again = r.next_payload();
      check(again.has_value() && !*again);
      return;
    }
    check(**idx == expected_index && expected_index < m.payloads.size());
    const manifest::Payload& p = m.payloads[expected_index++];
    const bool skip = (control & fuzz::kSkipOdd) && (expected_index % 2 == 0);

    Bytes chunk;  // what was handed out of the current chunk so far
    std::size_t chunk_index = 0;
    std::uint64_t total = 0;
    while (true) {
      auto n = r.read(buf);
      if (!n) {
        check(payload_error(n.error().code));
        return;
      }
      if (*n == 0) break;
      total += *n;
      check(total <= p.size);
      // Bytes come out of a chunk that has already been checked: each full
      // chunk (and the last, short one) must hash to the manifest's value.
      std::size_t used = 0;
      while (used < *n) {
        const std::uint64_t chunk_len = std::min<std::uint64_t>(p.chunk_size, p.size - std::uint64_t{chunk_index} * p.chunk_size);
        const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(*n - used, chunk_len - chunk.size()));
        chunk.insert(chunk.end(), buf.begin() + static_cast<std::ptrdiff_t>(used),
                     buf.begin() + static_cast<std::ptrdiff_t>(used + take));
        used += take;
        if (chunk.size() == chunk_len) {
          check(chunk_index < p.chunks.size() && content_hash(chunk) == p.chunks[chunk_index]);
          ++chunk_index;
          chunk.clear();
        }
      }
      if (skip) break;
    }
    if (skip && total < p.size) continue;
    check(total == p.size && chunk.empty() && chunk_index == p.chunks.size());
    // Honest signers only (the seeds): a verified payload is the one signed.
    if (verified) check(manifest::chunk_tree_hash(p.chunks) == p.hash);
  }
}

bool signed_by_trusted_key(const trust::TrustStore& store, ByteSpan manifest_bytes,
                           const std::vector<trust::SignatureEntry>& sigs) {
  const Bytes message = trust::signing_message(trust::kManifestType, manifest_bytes);
  for (const auto& s : sigs) {
    auto it = store.root().keys.find(s.key_id);
    if (it == store.root().keys.end() || store.root().revoked.count(s.key_id)) continue;
    if (s.key_id != fuzz::key_a().public_key().id() && s.key_id != fuzz::key_b().public_key().id()) continue;
    if (it->second.verify(message, s.sig)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const ByteSpan in(data, size);
  const std::uint8_t control = in[0];
  const std::size_t k = std::min<std::size_t>(control & fuzz::kReadSizesMask, in.size() - 1);
  ShortReader reader(in.subspan(1 + k), in.subspan(1, k));

  auto opened = bundle::BundleReader::open(reader);
  if (!opened) {
    check(fuzz::one_of(opened.error().code, {ErrorCode::kMalformed}));
    return 0;
  }
  bundle::BundleReader& r = **opened;
  check(r.manifest_bytes().size() <= manifest::kMaxManifestBytes);
  check(r.offset() == reader.position() && r.offset() % 512 == 0);

  trust::TrustStore store = fuzz::fixed_trust();
  const bundle::VerifyOptions opts = fuzz::verify_options(control);
  trust::ThresholdReport report;
  auto m = r.verify(store, opts, &report);
  if (m) {
    check(signed_by_trusted_key(store, r.manifest_bytes(), r.signature_block().signatures));
    check(report.valid >= 1 && report.valid >= report.threshold);
    auto parsed = manifest::parse_manifest(r.manifest_bytes());
    check(parsed.has_value() && manifest::encode_manifest(*parsed) == manifest::encode_manifest(*m));
    manifest::Policy policy = opts.policy;
    if (!opts.check_expiry) policy.now = std::numeric_limits<trust::Time>::min();
    check(static_cast<bool>(manifest::check_policy(*m, policy)));
    read_payloads(r, *m, control, /*verified=*/true, reader);
    return 0;
  }
  check(fuzz::one_of(m.error().code,
                     {ErrorCode::kMalformed, ErrorCode::kUnsupported, ErrorCode::kBadSignature,
                      ErrorCode::kTooFewSignatures, ErrorCode::kUnknownKey, ErrorCode::kKeyRevoked,
                      ErrorCode::kExpired, ErrorCode::kIncompatibleHardware, ErrorCode::kDowngrade}));

  auto unverified = r.parse_unverified();
  if (!unverified) {
    check(fuzz::one_of(unverified.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
    return 0;
  }
  read_payloads(r, *unverified, control, /*verified=*/false, reader);
  return 0;
}
