// Device identity and operator authority: the registry, signed reports and
// commands, and what the controller drops (ota/fleet/identity.hpp).
#include "ota/fleet/identity.hpp"

#include <algorithm>
#include <set>

#include "fleet/campaign/fields.hpp"

namespace ota::campaign {

using namespace detail;

namespace {

constexpr std::string_view kRegistryFormat = "ota-device-registry-v1";
constexpr std::string_view kCommandFormat = "ota-campaign-command-v1";

// One key, threshold one: the signature check of a device or operator document.
Status check_signed_by(const std::vector<keys::PublicKey>& keys, std::string_view type, const trust::Envelope& e) {
  trust::Root r;
  r.threshold = 1;
  for (const auto& k : keys) r.keys.emplace(k.id(), k);
  return trust::check_threshold(r, trust::signing_message(type, e.payload), e.signatures);
}

// An envelope of the given type, or why not (nullopt: it is not an envelope at all).
std::optional<trust::Envelope> envelope_of(std::string_view text, std::string_view type) {
  if (text.size() > 2 * kMaxReportBytes + 1024) return std::nullopt;
  auto e = trust::parse_envelope(text);
  if (!e || e->payload_type != type || e->payload.size() > kMaxReportBytes || e->signatures.size() > 8)
    return std::nullopt;
  return std::move(*e);
}

}  // namespace

// ---- Registry ----

Bytes encode_registry(const Registry& r) {
  // One device per line: a registry kept in git diffs line by line.
  std::string out = "{\"format\":\"" + std::string(kRegistryFormat) + "\",\"fleet\":" + json::Ordered(r.fleet).dump() +
                    ",\"devices\":[";
  bool first = true;
  for (const auto& [id, k] : r.devices) {
    json::Ordered d{{"id", id}, {"keyid", to_hex(k.id())}, {"public", to_hex(k.bytes)}};
    out += (first ? "\n" : ",\n") + d.dump();
    first = false;
  }
  out += "\n]}\n";
  return to_bytes(out);
}

Result<Registry> parse_registry(ByteSpan bytes) {
  if (bytes.size() > kMaxRegistryBytes) return fail(ErrorCode::kMalformed, "registry: larger than 32 MiB");
  OTA_TRY_ASSIGN(auto j, parse_object(as_text(bytes), kMaxRegistryBytes, "registry"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "registry"));
  OTA_TRY(o.only({"format", "fleet", "devices"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kRegistryFormat) return fail(ErrorCode::kMalformed, "registry: format is not " + std::string(kRegistryFormat));
  Registry r;
  OTA_TRY_ASSIGN(auto fleet, name_field(o, "fleet"));
  r.fleet = fleet;
  OTA_TRY_ASSIGN(auto dj, o.array("devices", kMaxRegistryDevices));
  std::set<keys::KeyId> ids;
  for (const auto& d : *dj) {
    OTA_TRY_ASSIGN(auto e, json::Object::of(d, "registry.devices[]"));
    OTA_TRY(e.only({"id", "keyid", "public"}));
    OTA_TRY_ASSIGN(auto id, name_field(e, "id"));
    keys::PublicKey k;
    OTA_TRY_ASSIGN(auto pub, e.digest("public"));
    k.bytes = pub;
    OTA_TRY_ASSIGN(auto kid, e.digest("keyid"));
    if (kid != k.id()) return fail(ErrorCode::kMalformed, "registry: device " + id + ": keyid does not match its key");
    if (!ids.insert(kid).second) return fail(ErrorCode::kMalformed, "registry: device " + id + " shares its key with another device");
    if (!r.devices.emplace(id, k).second) return fail(ErrorCode::kMalformed, "registry: device " + id + " is listed twice");
  }
  return r;
}

Status register_device(Registry& r, const std::string& id, const keys::PublicKey& key, bool replace) {
  if (!is_valid_name(id)) return fail(ErrorCode::kUsage, "device id is not a name ([A-Za-z0-9._-]{1,64})");
  for (const auto& [other, k] : r.devices)
    if (k == key && other != id) return fail(ErrorCode::kUsage, "this key is already registered for device " + other);
  if (r.devices.count(id) && !replace)
    return fail(ErrorCode::kUsage, "device " + id + " is already registered (--replace gives it a new key)");
  if (!r.devices.count(id) && r.devices.size() >= kMaxRegistryDevices)
    return fail(ErrorCode::kUsage, "the registry is full (" + std::to_string(kMaxRegistryDevices) + " devices)");
  r.devices[id] = key;
  return ok();
}

Security security_for(ByteSpan registry_bytes, const Registry& r, std::vector<keys::PublicKey> operators) {
  Security s;
  s.registry_hash = content_hash(registry_bytes);
  s.registry_devices = r.devices.size();
  s.operators = std::move(operators);
  return s;
}

// ---- Reports ----

std::string sign_report(const Report& r, const keys::SecretKey& device_key) {
  trust::Envelope e;
  e.payload_type = std::string(kReportType);
  e.payload = to_bytes(encode_report(r));
  e.signatures.push_back({device_key.public_key().id(), device_key.sign(trust::signing_message(kReportType, e.payload))});
  return trust::encode_envelope(e);
}

Result<Report> read_report_unverified(std::string_view text) {
  if (auto e = envelope_of(text, kReportType)) return parse_report(as_text(e->payload));
  return parse_report(text);
}

std::string_view drop_name(Drop d) {
  switch (d) {
    case Drop::kNone: return "none";
    case Drop::kDuplicate: return "duplicate";
    case Drop::kMalformed: return "malformed";
    case Drop::kUnsigned: return "unsigned";
    case Drop::kBadSignature: return "bad_signature";
    case Drop::kUnregistered: return "unregistered";
    case Drop::kReplayed: return "replayed";
    case Drop::kOtherCampaign: return "other_campaign";
    case Drop::kBadReceipt: return "bad_receipt";
  }
  return "malformed";
}

JudgedReport check_report(const Registry& reg, const Campaign& c, std::string_view topic_device, std::string_view text) {
  JudgedReport j;
  auto e = envelope_of(text, kReportType);
  if (!e) {
    const bool bare = text.size() <= kMaxReportBytes && parse_report(text).has_value();
    j.drop = bare ? Drop::kUnsigned : Drop::kMalformed;
    j.why = bare ? "an unsigned report" : "not a signed report";
    return j;
  }
  auto key = reg.devices.find(std::string(topic_device));
  if (key == reg.devices.end()) {
    j.drop = Drop::kUnregistered;
    j.why = "device " + std::string(topic_device) + " is not in the registry";
    return j;
  }
  if (auto st = check_signed_by({key->second}, kReportType, *e); !st) {
    j.drop = Drop::kBadSignature;
    j.why = "not signed by the registered key of " + key->first + ": " + st.error().message;
    return j;
  }
  // Only now is the report parsed.
  auto r = parse_report(as_text(e->payload));
  if (!r) {
    j.drop = Drop::kMalformed;
    j.why = r.error().message;
    return j;
  }
  j.report = std::move(*r);
  j.envelope = std::move(*e);
  if (j.report.device != key->first) {
    j.drop = Drop::kMalformed;
    j.why = "a report naming device " + j.report.device + " on the topic of " + key->first;
    return j;
  }
  if (!j.report.campaign.empty() && j.report.campaign != c.id) {
    j.drop = Drop::kOtherCampaign;
    j.why = "a report about campaign " + j.report.campaign;
    return j;
  }
  j.drop = Drop::kNone;
  return j;
}

void judge_checked(JudgedReport& j, const Campaign& c, const std::map<std::string, DeviceView>& seen) {
  if (j.drop != Drop::kNone) return;
  const std::string& device = j.report.device;
  if (auto it = seen.find(device); it != seen.end() && j.report.seq <= it->second.seq) {
    const bool same = j.report.seq == it->second.seq && it->second.sig && !j.envelope->signatures.empty() &&
                      *it->second.sig == j.envelope->signatures.front().sig;
    j.drop = same ? Drop::kDuplicate : Drop::kReplayed;
    j.why = "sequence number " + std::to_string(j.report.seq) + " of " + device + ", " +
            std::to_string(it->second.seq) + " taken already";
    return;
  }
  if (j.report.phase == Phase::kSucceeded &&
      (j.report.version != c.version || j.report.slot.empty() || !j.report.image_hash)) {
    j.drop = Drop::kBadReceipt;
    j.why = "a success without a receipt for " + c.version + " (slot, image hash)";
  }
}

JudgedReport judge_report(const Registry& reg, const Campaign& c, std::string_view topic_device, std::string_view text,
                          const std::map<std::string, DeviceView>& seen) {
  JudgedReport j = check_report(reg, c, topic_device, text);
  judge_checked(j, c, seen);
  return j;
}

// ---- Commands ----

Bytes encode_signed_command(const Command& c) {
  json::Ordered j;
  j["format"] = kCommandFormat;
  j["id"] = c.id;
  j["fleet"] = c.fleet;
  j["campaign"] = c.campaign;
  j["action"] = c.action;
  j["issued"] = trust::format_time(c.time);
  j["expires"] = trust::format_time(c.expires);
  j["reason"] = c.reason;
  return to_bytes(j.dump());
}

Result<Command> parse_signed_command(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j, parse_object(as_text(bytes), kMaxCommandBytes, "command"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "command"));
  OTA_TRY(o.only({"format", "id", "fleet", "campaign", "action", "issued", "expires", "reason"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kCommandFormat) return fail(ErrorCode::kMalformed, "command: format is not " + std::string(kCommandFormat));
  Command c;
  OTA_TRY_ASSIGN(auto id, name_field(o, "id"));
  c.id = id;
  OTA_TRY_ASSIGN(auto fleet, name_field(o, "fleet"));
  c.fleet = fleet;
  OTA_TRY_ASSIGN(auto camp, name_field(o, "campaign"));
  c.campaign = camp;
  OTA_TRY_ASSIGN(auto action, o.string("action", 16));
  if (action != "pause" && action != "resume" && action != "abort")
    return fail(ErrorCode::kMalformed, "command.action is not pause, resume or abort");
  c.action = action;
  OTA_TRY_ASSIGN(auto issued, time_field(o, "issued"));
  c.time = issued;
  OTA_TRY_ASSIGN(auto expires, time_field(o, "expires"));
  if (expires <= issued) return fail(ErrorCode::kMalformed, "command: expires is not after issued");
  c.expires = expires;
  OTA_TRY_ASSIGN(auto reason, o.string("reason", 1024));
  c.reason = reason;
  return c;
}

std::string sign_command(const Command& c, const keys::SecretKey& operator_key) {
  trust::Envelope e;
  e.payload_type = std::string(kCommandType);
  e.payload = encode_signed_command(c);
  e.signatures.push_back({operator_key.public_key().id(), operator_key.sign(trust::signing_message(kCommandType, e.payload))});
  return trust::encode_envelope(e);
}

std::string_view command_drop_name(CommandDrop d) {
  switch (d) {
    case CommandDrop::kNone: return "none";
    case CommandDrop::kDuplicate: return "duplicate";
    case CommandDrop::kMalformed: return "malformed";
    case CommandDrop::kUnsigned: return "unsigned";
    case CommandDrop::kUnauthorised: return "unauthorised";
    case CommandDrop::kBadSignature: return "bad_signature";
    case CommandDrop::kReplayed: return "replayed";
    case CommandDrop::kOtherCampaign: return "other_campaign";
    case CommandDrop::kExpired: return "expired";
  }
  return "malformed";
}

JudgedCommand judge_command(const Campaign& c, std::string_view text, const std::vector<std::string>& applied,
                            trust::Time now) {
  JudgedCommand j;
  auto e = envelope_of(text, kCommandType);
  if (!c.security) {
    // Legacy: bare commands, or signed ones taken unchecked.
    auto k = e ? parse_signed_command(e->payload) : parse_command(text);
    if (!k) {
      j.why = k.error().message;
      return j;
    }
    j.command = std::move(*k);
    j.envelope = std::move(e);
  } else {
    if (!e) {
      const bool bare = text.size() <= kMaxReportBytes && parse_command(text).has_value();
      j.drop = bare ? CommandDrop::kUnsigned : CommandDrop::kMalformed;
      j.why = bare ? "an unsigned command" : "not a signed command";
      return j;
    }
    if (auto st = check_signed_by(c.security->operators, kCommandType, *e); !st) {
      j.drop = st.error().code == ErrorCode::kBadSignature ? CommandDrop::kBadSignature : CommandDrop::kUnauthorised;
      j.why = "not signed by an operator key the campaign authorises: " + st.error().message;
      return j;
    }
    auto k = parse_signed_command(e->payload);
    if (!k) {
      j.why = k.error().message;
      return j;
    }
    j.command = std::move(*k);
    j.envelope = std::move(*e);
    if (j.command.campaign != c.id || j.command.fleet != c.fleet) {
      j.drop = CommandDrop::kOtherCampaign;
      j.why = "a command for campaign " + j.command.fleet + "/" + j.command.campaign;
      return j;
    }
    if (now >= j.command.expires || j.command.time > now + kCommandSkew) {
      j.drop = CommandDrop::kExpired;
      j.why = "a command valid from " + trust::format_time(j.command.time) + " to " + trust::format_time(j.command.expires);
      return j;
    }
  }
  if (!applied.empty() && applied.back() == j.command.id) {
    j.drop = CommandDrop::kDuplicate;
    j.why = "command " + j.command.id + " applied already";
    return j;
  }
  if (std::find(applied.begin(), applied.end(), j.command.id) != applied.end()) {
    j.drop = CommandDrop::kReplayed;
    j.why = "command " + j.command.id + " was applied before";
    return j;
  }
  j.drop = CommandDrop::kNone;
  return j;
}

}  // namespace ota::campaign
