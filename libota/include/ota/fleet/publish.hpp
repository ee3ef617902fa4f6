// Publishing a campaign (`ota publish`): the bundle is verified, the
// campaign document built, signed by the release keys and published,
// retained, to the fleet's campaign topic (docs/protocol.md).
//
// Contract:
// - The bundle file is opened once. One pass verifies it whole (the
//   signatures under the trust root, after walking the root updates it
//   carries; the policy at `now`; every payload chunk) and hashes it: the
//   manifest's content hash names the release in the campaign, the file's
//   names the copy in the store (HASH.otb). With a store, a second pass over
//   the same open file copies it there (unless the store has it already).
// - Nothing is published before the bundle verified, the campaign directory
//   (controller key, journal) exists, the campaign's signatures meet the
//   threshold devices will check, and the publication is journaled. The
//   broker is connected only after the directory exists; the publish is read
//   back (publish_retained_checked), so an ACL-dropped publish is an error.
// - The library never prompts and never prints: passphrases come from the
//   caller's source, the connection from the caller's connect function.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/release/trust.hpp"

namespace ota::campaign {

struct PublishRequest {
  std::string bundle_path;
  std::string trust_path;             // the trust root the bundle and the campaign must satisfy
  std::string fleet, id;              // valid names (is_valid_name)
  std::string url;                    // where devices fetch the bundle; with store_dir: the base URL serving it
  std::string store_dir;              // copy the bundle into this directory as HASH.otb (empty: no copy)
  std::string campaign_dir;           // the campaign's directory (DIR/ID): controller key and journal
  std::vector<std::uint32_t> waves;   // parse_waves()
  Gates gates;
  std::int64_t expires_s = 30 * 86400;  // the campaign expires this long after now
  std::int64_t control_ttl_s = 900;
  std::uint64_t revision = 0;         // 0: one more than the revision the broker holds (1 when none)
  std::vector<trust::Envelope> root_updates;  // carried in the document for devices
  std::vector<std::string> key_paths;         // release secret keys that sign the campaign
  trust::PassphraseSource passphrase;         // for sealed key files
  trust::Time now = 0;
  std::chrono::milliseconds timeout{30000};   // for the broker to confirm the publish
  // Signed reports and commands (identity.hpp): the fleet's device registry
  // (copied into the campaign directory as registry.json; the campaign names
  // its hash) and the operator keys that may pause, resume and abort.
  // Empty registry_path: an unsigned campaign (legacy; the CLI asks for it
  // explicitly).
  std::string registry_path;
  std::vector<keys::PublicKey> operators;
  // Pacing (0: no limit on that); either set: a paced campaign whose
  // fetch sizes (the full payload, each delta by its base) come from the bundle.
  std::uint64_t devices_per_minute = 0;
  std::uint64_t bytes_per_minute = 0;
  bool revert_on_abort = false;  // Campaign::revert_on_abort (signed with the campaign)
  std::optional<Policy> policy;  // Campaign::policy: the devices' own rollout policy
  std::optional<Regression> regression;  // Campaign::regression (signed with the campaign)
};

struct Published {
  Campaign campaign;      // as signed and published
  std::string topic;      // campaign_topic(fleet, id)
  std::string directory;  // the campaign directory
};

// Connects to the broker (the caller's options and messages) and waits until connected.
using Connect = std::function<Result<std::unique_ptr<mqtt::Client>>()>;

// Publishes the campaign for request.bundle_path (see the contract above).
// Returns what was published. Errors: the trust root's (TrustStore::load);
// kIo when the bundle cannot be opened; the bundle's
// verification error with the bundle path as context (kMalformed,
// kBadSignature, kExpired, kPayloadMismatch, ...); kIo for the store
// ("--store" context) or the directory; connect's; validate()'s (names,
// URL, waves, gates);
// sign_with_keys()'s; the campaign's threshold ("campaign signatures"
// context: too few keys, or none); the registry's ("--registry" context:
// kIo, kMalformed, a registry of another fleet, no operator key); the journal's; publish_retained_checked()'s (kMqttRefused,
// kTimedOut).
Result<Published> publish(const PublishRequest& request, const Connect& connect);

}  // namespace ota::campaign
