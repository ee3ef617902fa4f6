// The steps of Agent::install (ota/device/agent.hpp), each a function that
// can be tested alone. install() runs them in this order, and the agent's
// state record moves through the life-cycle table (lifecycle.hpp) between
// them:
//   1. verify_bundle   signatures, then policy; nothing of a payload read yet
//      unlock_bundle   an encrypted bundle: the content key opened, payloads
//                      decrypted as they are read (after their hash checks)
//   2. choose_payload  resume the one in progress, else a delta from the
//                      active bank's content, else reuse (a chunks payload:
//                      copy what the banks hold, fetch the rest) when it
//                      fetches less than the full image, else the full image
//   3. persist intent  (Agent) the install record, durable before the first
//                      bank write
//   4. stream_payload  the chosen payload, chunk-checked, through a
//                      PayloadSink (patcher or full-image decoder) into the
//                      inactive bank, checkpointed at frame boundaries; a
//                      chunks payload through reuse::write_chunks instead
//                      (ota/device/reuse.hpp), checkpointed at chunk boundaries
//   5. check_target    after a power cut between 4 and 6: the bank still
//                      holds the target image
//   6. begin trial     (Agent) the target boots once, then the reboot
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/delta/sink.hpp"
#include "ota/device/storage.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/encryption.hpp"
#include "ota/release/trust.hpp"

namespace ota::agent {

struct BankInfo;

// 1. A bundle whose signatures and policy checks passed.
struct VerifiedBundle {
  std::unique_ptr<bundle::BundleReader> reader;  // positioned before the first payload
  manifest::Manifest manifest;
  Digest manifest_hash{};  // content hash of the manifest bytes: which bundle this is
};
// Opens `in` as a bundle and verifies it against `trust` with `options`. A
// newer trust root the bundle carried is saved in `state` (persist_trust)
// before anything else, even when the rest of the verification fails.
// Errors: those of BundleReader::open and verify (kBadSignature, kExpired,
// kDowngrade, ...), and the state store's.
Result<VerifiedBundle> verify_bundle(Reader& in, trust::TrustStore& trust, storage::StateStore& state,
                                     const bundle::VerifyOptions& options);

// 1b. An encrypted bundle's payloads as plaintext: opens the content key with
// this device's key (asked of key_source only when the manifest is
// encrypted) and wraps v.reader in the decrypting reader, which hands out
// each block only after its ciphertext matched the signed chunk hashes and
// its tag verified. A bundle without encryption is left as it is.
// kDecryptionKey when key_source is empty or fails, or the key is not one of
// the bundle's recipients; nothing of a payload has been read then.
Status unlock_bundle(VerifiedBundle& v, const std::function<Result<encryption::SecretKey>()>& key_source);

// 2. Which payload to install.
struct PayloadChoice {
  std::size_t index = 0;     // into manifest.payloads
  bool speculative = false;  // a delta whose base is checked while patching
};
struct ChooseInput {
  const manifest::Manifest* manifest = nullptr;
  // The payload of an install in progress (resume it), if any.
  const std::string* resuming = nullptr;
  // What the state knows of the active bank, and the bank's size.
  const std::optional<BankInfo>* active = nullptr;
  std::uint64_t active_bank_size = 0;
  // Allow a speculative delta (the bundle can be read again on a wrong base).
  bool speculate = false;
  // The hash of the active bank's first `size` bytes (hashed once, cached).
  std::function<Result<Digest>(std::uint64_t size)> active_hash;
  // The stored bytes a reuse install of chunks payload `index` would fetch
  // (reads its index and plans; ota/device/reuse.hpp). Empty: not asked.
  std::function<Result<std::uint64_t>(std::size_t index)> reuse_cost;
  // A delta not to take (it did not make its target on this device).
  const std::string* excluded = nullptr;
};
// Resuming: the payload in progress. Otherwise, with `speculate` and no
// chunks payload in the bundle, the only delta that fits the active bank when
// its hash for that size is not cached (its base is then checked while
// patching); else the delta whose base hash
// equals the active bank's; else the chunks payload when it comes before the
// full image in the bundle and reuse_cost() is below the full payload's size,
// or when there is no full image; else the full image. kNoPayload when none
// applies.
Result<PayloadChoice> choose_payload(const ChooseInput& in);

// 4. Reads payload `index` of `m` from its verified bundle into `sink`: moves the
// reader to the payload, jumps over what the sink does not need when it
// resumes (a file seeks, HTTP asks a Range) and feeds the rest, each chunk
// checked against its signed hash by the reader, without copying it.
// progress gets (payload offset, payload size); cancelled() true stops with
// kCancelled. The caller calls sink.finish().
Status stream_payload(bundle::BundleReader& reader, const manifest::Manifest& m, std::size_t index,
                      delta::PayloadSink& sink,
                      const std::function<void(std::uint64_t, std::uint64_t)>& progress = {},
                      const std::function<bool()>& cancelled = {});

// 5. The first `size` bytes of `bank` hash to `hash`, else kPayloadMismatch.
Status check_target(const storage::BlockStore& bank, std::uint64_t size, const Digest& hash);

}  // namespace ota::agent
