// Device identity and operator authority (docs/protocol.md, "Signed reports
// and commands"): the fleet registry of device keys, signed device reports
// (install receipts), signed operator commands, and the rules by which a
// controller drops what it must not count or obey. Pure: no I/O.
//
// Contract:
// - Each device has its own Ed25519 key. The registry lists, per fleet, each
//   device id with its public key. It is not signed itself: the
//   release-signed campaign names the BLAKE2b-256 of its exact bytes
//   (Campaign::security), so the registry a controller uses is the one the
//   release keys approved, and changing it takes a new campaign revision.
// - A report in a signed campaign is an envelope (payload type kReportType)
//   over the report's exact bytes, signed by the device key with the
//   OTA-SIG-V1 pre-authentication encoding: a report signature can never be
//   taken for a campaign, control, command or root signature. The report
//   names the device, its campaign, its sequence number (per device,
//   increasing across reboots, persisted before use) and its boot session.
// - judge_report() decides, in this order, whether a report counts: it
//   parses as an envelope (else unsigned or malformed); the device of its
//   topic is in the registry (else unregistered); its signature by that key
//   verifies (else bad signature), and only then is the report parsed; it
//   names that device; it is about this campaign or none (else other
//   campaign); its sequence number is above the highest taken for the
//   device (equal with the same signature: a duplicate, QoS 1 or a retained
//   redelivery, dropped silently; else replayed); a success carries a
//   receipt (booted slot, image hash) naming the campaign's version (else
//   bad receipt). Dropped reports never change the controller's view.
// - judge_command() decides whether an operator command is obeyed: an
//   envelope (payload type kCommandType) signed by an operator key the
//   campaign authorises (else unsigned, unauthorised or bad signature),
//   then parsed; it names this campaign and fleet (else other campaign); it
//   has not expired and is not issued in the future (beyond 5 minutes of
//   skew); its id was never applied (else replayed; the id of the last
//   applied command, which the broker keeps retained, is a duplicate).
//   Without Campaign::security (legacy), bare and signed commands are taken
//   without a signature check.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"

namespace ota::campaign {

inline constexpr std::string_view kReportType = "application/vnd.ota.device-report+json";
inline constexpr std::string_view kCommandType = "application/vnd.ota.campaign-command+json";
inline constexpr std::size_t kMaxRegistryBytes = 32u << 20;
inline constexpr std::size_t kMaxRegistryDevices = 100000;
inline constexpr std::size_t kMaxCommandBytes = 16u << 10;
inline constexpr trust::Time kCommandSkew = 300;

// ---- The fleet registry (registry.json, docs/formats.md) ----

struct Registry {
  std::string fleet;
  std::map<std::string, keys::PublicKey> devices;  // by device id
};
// Canonical text (devices sorted by id, one per line).
Bytes encode_registry(const Registry& r);
// Strict: known fields only, at most kMaxRegistryBytes and
// kMaxRegistryDevices, valid names, each keyid matching its key, no device
// twice and no key shared by two devices (kMalformed).
Result<Registry> parse_registry(ByteSpan bytes);
// Adds (or with replace, replaces) a device's key. kUsage when the id is
// already registered (without replace) or the key is another device's.
Status register_device(Registry& r, const std::string& id, const keys::PublicKey& key, bool replace);
// The security section of a campaign for this registry text and these operators.
Security security_for(ByteSpan registry_bytes, const Registry& r, std::vector<keys::PublicKey> operators);

// ---- Signed reports ----

// The envelope text of a report signed by the device key.
std::string sign_report(const Report& r, const keys::SecretKey& device_key);
// Reads a report as it arrives, signed or bare, WITHOUT checking a signature
// (observers, `ota campaign status` without a registry). kMalformed.
Result<Report> read_report_unverified(std::string_view text);

enum class Drop {
  kNone,           // counts
  kDuplicate,      // the report taken already (not an attack: not counted)
  kMalformed,
  kUnsigned,
  kBadSignature,   // forged: not the registered key's signature
  kUnregistered,
  kReplayed,       // an old sequence number
  kOtherCampaign,
  kBadReceipt,     // a success without a receipt naming the campaign's version
};
std::string_view drop_name(Drop d);

struct JudgedReport {
  Drop drop = Drop::kMalformed;
  Report report;                    // when parsed
  std::optional<trust::Envelope> envelope;
  std::string why;                  // for the log; never quotes the payload
};
// See the contract. seen: the controller's view (highest sequence number
// and signature per device).
JudgedReport judge_report(const Registry& reg, const Campaign& c, std::string_view topic_device, std::string_view text,
                          const std::map<std::string, DeviceView>& seen);
// judge_report() in two steps, the same verdicts: check_report() is
// everything that does not depend on the view (envelope, registry,
// signature, parse, device, campaign), so the controller runs it for many
// reports at once on several threads; judge_checked() then applies the
// sequence number and receipt rules, in arrival order (a no-op unless the
// check passed).
JudgedReport check_report(const Registry& reg, const Campaign& c, std::string_view topic_device, std::string_view text);
void judge_checked(JudgedReport& j, const Campaign& c, const std::map<std::string, DeviceView>& seen);

// ---- Signed operator commands ----

Bytes encode_signed_command(const Command& c);
Result<Command> parse_signed_command(ByteSpan bytes);
// The envelope text of a command signed by an operator key.
std::string sign_command(const Command& c, const keys::SecretKey& operator_key);

enum class CommandDrop {
  kNone,
  kDuplicate,     // the last applied command again (retained redelivery)
  kMalformed,
  kUnsigned,
  kUnauthorised,  // signed by a key the campaign does not authorise
  kBadSignature,  // an authorised key id over bytes it did not sign
  kReplayed,      // applied before
  kOtherCampaign,
  kExpired,       // past its expiry, or issued in the future
};
std::string_view command_drop_name(CommandDrop d);

struct JudgedCommand {
  CommandDrop drop = CommandDrop::kMalformed;
  Command command;
  std::optional<trust::Envelope> envelope;
  std::string why;
};
// See the contract. applied: ids of commands applied (or considered), oldest first.
JudgedCommand judge_command(const Campaign& c, std::string_view text, const std::vector<std::string>& applied,
                            trust::Time now);

}  // namespace ota::campaign
