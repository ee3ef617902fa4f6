// Signatures over exact bytes, trust roots with m-of-n thresholds, rotation
// and revocation.
//
// Contract:
// - What is signed is always the exact bytes of a document, never a
//   re-serialization, wrapped with a domain-separation prefix
//   (signing_message): a manifest signature can never be replayed as a root
//   signature or the other way round.
// - A trust root (docs/formats.md, "Trust root") lists Ed25519 keys, a
//   threshold, revoked key ids, a version and an expiry. It is distributed as
//   a signed envelope (root.json): the exact root document bytes, base64, with
//   signatures.
// - Version N+1 is accepted only when a threshold of version N's keys and a
//   threshold of its own keys signed it, and its version is exactly N+1.
//   Intermediate roots may have expired; the newest one must not have.
// - Verification counts distinct trusted, unrevoked keys with a valid
//   signature; the same key twice counts once. The error, when the threshold
//   is not met, names the most specific cause: a bad signature by a trusted
//   key, then a revoked key, then an unknown key, then too few signatures.
// - JSON inside an envelope is parsed only after its signatures verify
//   (the first root of a chain is the device's provisioned anchor).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/release/keys.hpp"

namespace ota::trust {

inline constexpr std::string_view kManifestType = "application/vnd.ota.manifest+json";
inline constexpr std::string_view kRootType = "application/vnd.ota.root+json";

// "OTA-SIG-V1 <len(type)> <type> <len(body)> <body>" (DSSE's pre-auth
// encoding with ota's own prefix). These are the bytes an external signer
// signs (`ota sign --export-payload`).
Bytes signing_message(std::string_view type, ByteSpan body);

struct SignatureEntry {
  keys::KeyId key_id{};
  keys::Signature sig{};
};

// Seconds since the Unix epoch, UTC.
using Time = std::int64_t;
// Parses "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC).
Result<Time> parse_time(std::string_view text);
// Formats as "YYYY-MM-DDTHH:MM:SSZ".
std::string format_time(Time t);

// The root document (the signed payload of root.json).
struct Root {
  std::uint64_t version = 1;
  Time expires = 0;
  std::uint32_t threshold = 1;
  std::map<keys::KeyId, keys::PublicKey> keys;  // by key id
  std::set<keys::KeyId> revoked;
};

// Canonical bytes of a root document (what `ota root init/rotate` writes).
Bytes encode_root(const Root& root);
// Parses and checks a root document (strict JSON: no duplicate keys, known
// fields only, threshold between 1 and the key count, no revoked key listed).
Result<Root> parse_root(ByteSpan bytes);

// A signed document: the exact payload bytes and its signatures.
struct Envelope {
  std::string payload_type;
  Bytes payload;
  std::vector<SignatureEntry> signatures;
};
// root.json text: {"payloadType":..., "payload": base64, "signatures":[...]}.
std::string encode_envelope(const Envelope& env);
// Parses an envelope (bounded: at most 1 MiB, 256 signatures).
Result<Envelope> parse_envelope(std::string_view text);

// The result of checking one signature.
enum class SigStatus { kValid, kInvalid, kUnknownKey, kRevoked, kDuplicate };
std::string_view sig_status_name(SigStatus s);

struct SignatureCheck {
  keys::KeyId key_id{};
  SigStatus status = SigStatus::kInvalid;
};

struct ThresholdReport {
  std::vector<SignatureCheck> checks;
  std::uint32_t valid = 0;      // distinct trusted keys with a valid signature
  std::uint32_t threshold = 0;
};

// Checks signatures of message against root's keys; fills report (if given)
// and fails with the most specific code when the threshold is not met.
Status check_threshold(const Root& root, ByteSpan message, const std::vector<SignatureEntry>& sigs,
                       ThresholdReport* report = nullptr);

// ---- Signing with secret key files (ota build/sign, ota root sign, ota publish) ----

// Where the passphrase of sealed secret key files comes from: a file, an
// environment variable, a terminal; the library never prompts by itself.
// Called at most once, before the first key file is opened; nullopt when
// there is none (key files in clear). The library wipes what it returns.
using PassphraseSource = std::function<Result<std::optional<std::string>>()>;
// Asked about each key before it signs: true signs, false skips the key (it
// signed already, say), an error stops signing.
using KeyFilter = std::function<Result<bool>(const std::string& path, const keys::PublicKey& key)>;

// Loads each secret key file of key_paths in order (a sealed one opened with
// the passphrase), asks filter (when given) and appends to `into` the key's
// signature of signing_message(type, body). Returns the ids of the keys that
// signed, in order. The passphrase is wiped when signing ends, failed or not.
// Errors: the passphrase source's; load_secret's (kIo, kMalformed,
// kBadPassphrase); the filter's. Signatures appended before an error stay.
Result<std::vector<keys::KeyId>> sign_with_keys(std::string_view type, ByteSpan body,
                                                const std::vector<std::string>& key_paths,
                                                const PassphraseSource& passphrase,
                                                std::vector<SignatureEntry>& into, const KeyFilter& filter = {});

// The trust a device or a verifier holds: the newest accepted root.
class TrustStore {
 public:
  // Takes a provisioned root envelope as the anchor. Its own signatures must
  // meet its threshold. Expiry is checked at use, not here.
  static Result<TrustStore> from_anchor(const Envelope& anchor);
  static Result<TrustStore> load(const std::string& path);

  // Walks to the next version (see the contract above). kRootRejected when
  // the version is not current+1 or the signatures do not chain.
  Status update(const Envelope& next);
  // Applies every update that chains, in whatever order they come (a bundle
  // may carry versions the device already walked); returns how many did not
  // chain and were ignored. Nothing unverified is trusted or parsed.
  std::size_t update_all(std::vector<Envelope> updates);

  const Root& root() const { return root_; }
  const Envelope& envelope() const { return envelope_; }
  // kExpired when the current root expired before now.
  Status check_fresh(Time now) const;
  // Threshold check of a document of the given type against the current root.
  Status verify(std::string_view type, ByteSpan body, const std::vector<SignatureEntry>& sigs,
                ThresholdReport* report = nullptr) const;

 private:
  Root root_;
  Envelope envelope_;
};

}  // namespace ota::trust
