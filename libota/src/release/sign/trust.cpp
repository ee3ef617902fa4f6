#include "ota/release/trust.hpp"

#include <cstdio>

#include "core/json.hpp"
#include "release/sign/signatures.hpp"

namespace ota::trust {

namespace {
constexpr std::string_view kRootFormat = "ota-root-v1";
constexpr std::size_t kMaxEnvelope = 1u << 20;
constexpr std::size_t kMaxRootBytes = 256u << 10;
constexpr std::size_t kMaxSignatures = 256;
constexpr std::size_t kMaxRootKeys = 256;

std::string short_id(const keys::KeyId& id) { return to_hex(ByteSpan(id.data(), 8)); }

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil): in 64 bits, where timegm() and gmtime_r() go through a
// time_t that is 32 bits on 32-bit ARM (Debian armhf), so that expiry dates
// after 2038 parse and print there too.
Time days_from_civil(Time y, Time m, Time d) {
  y -= m <= 2 ? 1 : 0;
  const Time era = (y >= 0 ? y : y - 399) / 400;
  const Time yoe = y - era * 400;
  const Time doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const Time doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace

Bytes signing_message(std::string_view type, ByteSpan body) {
  std::string head = "OTA-SIG-V1 " + std::to_string(type.size()) + " " + std::string(type) + " " +
                     std::to_string(body.size()) + " ";
  Bytes out(head.begin(), head.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Result<Time> parse_time(std::string_view text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  auto digits = [&](std::size_t pos, std::size_t n, int& out) {
    if (pos + n > text.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    out = v;
    return true;
  };
  bool okay = digits(0, 4, y) && text.size() >= 10 && text[4] == '-' && digits(5, 2, mo) && text[7] == '-' &&
              digits(8, 2, d);
  if (okay && text.size() != 10) {
    okay = text.size() == 20 && text[10] == 'T' && digits(11, 2, h) && text[13] == ':' && digits(14, 2, mi) &&
           text[16] == ':' && digits(17, 2, s) && text[19] == 'Z';
  }
  std::string quoted(1, '\'');
  quoted.append(text.substr(0, 32));
  quoted.push_back('\'');
  if (!okay || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 || y < 1970)
    return fail(ErrorCode::kMalformed, quoted + " is not a UTC time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
  const Time t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  if (format_time(t).substr(0, 10) != std::string(text.substr(0, 10)))
    return fail(ErrorCode::kMalformed, quoted + " is not a calendar date");
  return t;
}

std::string format_time(Time t) {
  const Time days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  const Time secs = t - days * 86400;
  // civil_from_days (the inverse of days_from_civil above).
  const Time z = days + 719468;
  const Time era = (z >= 0 ? z : z - 146096) / 146097;
  const Time doe = z - era * 146097;
  const Time yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const Time doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const Time mp = (5 * doy + 2) / 153;
  const Time d = doy - (153 * mp + 2) / 5 + 1;
  const Time m = mp < 10 ? mp + 3 : mp - 9;
  const Time y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[128];  // room for any 64-bit year (GCC's -Wformat-truncation counts every field at 20 digits)
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", static_cast<long long>(y),
                static_cast<long long>(m), static_cast<long long>(d), static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  return buf;
}

Bytes encode_root(const Root& root) {
  json::Ordered doc;
  doc["format"] = kRootFormat;
  doc["version"] = root.version;
  doc["expires"] = format_time(root.expires);
  doc["threshold"] = root.threshold;
  doc["keys"] = json::Ordered::array();
  for (const auto& [id, key] : root.keys)
    doc["keys"].push_back({{"keyid", to_hex(id)},
                           {"type", "ed25519"},
                           {"public", to_hex(ByteSpan(key.bytes.data(), key.bytes.size()))}});
  doc["revoked"] = json::Ordered::array();
  for (const auto& id : root.revoked) doc["revoked"].push_back(to_hex(id));
  std::string text = doc.dump(2) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<Root> parse_root(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j,
                 json::parse_strict(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), kMaxRootBytes, "root"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "root"));
  OTA_TRY(o.only({"format", "version", "expires", "threshold", "keys", "revoked"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kRootFormat) return fail(ErrorCode::kMalformed, "root: format is not " + std::string(kRootFormat));
  Root r;
  OTA_TRY_ASSIGN(auto version, o.u64("version"));
  if (version == 0) return fail(ErrorCode::kMalformed, "root: version starts at 1");
  r.version = version;
  OTA_TRY_ASSIGN(auto expires, o.string("expires", 32));
  auto t = parse_time(expires);
  if (!t) return fail(t.error().with_context("root.expires"));
  r.expires = *t;
  auto keys = o.array("keys", kMaxRootKeys);
  if (!keys) return fail(keys.error());
  for (const auto& kj : **keys) {
    OTA_TRY_ASSIGN(auto ko, json::Object::of(kj, "root.keys[]"));
    OTA_TRY(ko.only({"keyid", "type", "public"}));
    OTA_TRY_ASSIGN(auto type, ko.string("type", 32));
    if (type != "ed25519") return fail(ErrorCode::kUnsupported, "root: key type is not ed25519");
    OTA_TRY_ASSIGN(auto pub, ko.digest("public"));
    keys::PublicKey k;
    k.bytes = pub;
    OTA_TRY_ASSIGN(auto id, ko.digest("keyid"));
    if (id != k.id()) return fail(ErrorCode::kMalformed, "root: keyid " + short_id(id) + " does not match its key");
    if (!r.keys.emplace(id, k).second)
      return fail(ErrorCode::kMalformed, "root: key " + short_id(id) + " is listed twice");
  }
  OTA_TRY_ASSIGN(auto revoked, o.array("revoked", kMaxRootKeys * 16));
  for (const auto& rj : *revoked) {
    OTA_TRY_ASSIGN(auto id, json::as_digest(rj, "root.revoked[]"));
    if (r.keys.count(id)) return fail(ErrorCode::kMalformed, "root: key " + short_id(id) + " is both listed and revoked");
    if (!r.revoked.insert(id).second)
      return fail(ErrorCode::kMalformed, "root: key " + short_id(id) + " is revoked twice");
  }
  OTA_TRY_ASSIGN(auto threshold, o.u64("threshold", kMaxRootKeys));
  if (threshold < 1 || threshold > r.keys.size())
    return fail(ErrorCode::kMalformed, "root: threshold " + std::to_string(threshold) + " is not between 1 and the " +
                                           std::to_string(r.keys.size()) + " keys");
  r.threshold = static_cast<std::uint32_t>(threshold);
  return r;
}

std::string encode_envelope(const Envelope& env) {
  json::Ordered doc;
  doc["payloadType"] = env.payload_type;
  doc["payload"] = json::base64_encode(env.payload);
  doc["signatures"] = detail::encode_signatures(env.signatures);
  return doc.dump(2) + "\n";
}

namespace detail {
json::Ordered encode_signatures(const std::vector<SignatureEntry>& sigs) {
  json::Ordered arr = json::Ordered::array();
  for (const auto& s : sigs) arr.push_back({{"keyid", to_hex(s.key_id)}, {"sig", json::base64_encode(s.sig)}});
  return arr;
}

Result<std::vector<SignatureEntry>> parse_signatures(const json::Json& arr, std::string_view what) {
  std::vector<SignatureEntry> out;
  for (const auto& sj : arr) {
    OTA_TRY_ASSIGN(auto so, json::Object::of(sj, std::string(what) + "[]"));
    OTA_TRY(so.only({"keyid", "sig"}));
    SignatureEntry e;
    OTA_TRY_ASSIGN(auto id, so.digest("keyid"));
    e.key_id = id;
    OTA_TRY_ASSIGN(auto sig, so.string("sig", 100));
    auto raw = json::base64_decode(sig, 64);
    if (!raw || raw->size() != 64)
      return fail(ErrorCode::kMalformed, std::string(what) + "[].sig is not a base64 Ed25519 signature");
    std::copy(raw->begin(), raw->end(), e.sig.begin());
    out.push_back(e);
  }
  return out;
}
}  // namespace detail

Result<Envelope> parse_envelope(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, json::parse_strict(text, kMaxEnvelope, "signed root"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "signed root"));
  OTA_TRY(o.only({"payloadType", "payload", "signatures"}));
  Envelope env;
  OTA_TRY_ASSIGN(auto type, o.string("payloadType", 128));
  env.payload_type = type;
  OTA_TRY_ASSIGN(auto payload, o.string("payload", kMaxEnvelope));
  auto raw = json::base64_decode(payload, kMaxRootBytes);
  if (!raw) return fail(ErrorCode::kMalformed, "signed root: payload is not base64 (or is too large)");
  env.payload = std::move(*raw);
  OTA_TRY_ASSIGN(auto sigs, o.array("signatures", kMaxSignatures));
  OTA_TRY_ASSIGN(auto parsed, detail::parse_signatures(*sigs, "signed root.signatures"));
  env.signatures = std::move(parsed);
  return env;
}

std::string_view sig_status_name(SigStatus s) {
  switch (s) {
    case SigStatus::kValid: return "valid";
    case SigStatus::kInvalid: return "invalid";
    case SigStatus::kUnknownKey: return "unknown_key";
    case SigStatus::kRevoked: return "revoked";
    case SigStatus::kDuplicate: return "duplicate";
  }
  return "invalid";
}

Status check_threshold(const Root& root, ByteSpan message, const std::vector<SignatureEntry>& sigs,
                       ThresholdReport* report) {
  ThresholdReport local;
  ThresholdReport& r = report ? *report : local;
  r = {};
  r.threshold = root.threshold;
  std::set<keys::KeyId> counted;  // keys with a valid signature so far
  bool any_invalid = false, any_revoked = false, any_unknown = false;
  for (const auto& s : sigs) {
    SignatureCheck c{s.key_id, SigStatus::kInvalid};
    if (root.revoked.count(s.key_id)) {
      c.status = SigStatus::kRevoked;
      any_revoked = true;
    } else if (auto it = root.keys.find(s.key_id); it == root.keys.end()) {
      c.status = SigStatus::kUnknownKey;
      any_unknown = true;
    } else if (counted.count(s.key_id)) {
      c.status = SigStatus::kDuplicate;  // the key already counts once
    } else if (it->second.verify(message, s.sig)) {
      c.status = SigStatus::kValid;
      counted.insert(s.key_id);
      ++r.valid;
    } else {
      any_invalid = true;
    }
    r.checks.push_back(c);
  }
  if (r.valid >= r.threshold) return ok();
  std::string counts = std::to_string(r.valid) + " valid of " + std::to_string(r.threshold) + " required";
  if (any_invalid) return fail(ErrorCode::kBadSignature, "a signature by a trusted key does not verify (" + counts + ")");
  if (any_revoked) return fail(ErrorCode::kKeyRevoked, "signed by a revoked key (" + counts + ")");
  if (any_unknown) return fail(ErrorCode::kUnknownKey, "signed by a key the trust root does not list (" + counts + ")");
  if (sigs.empty()) return fail(ErrorCode::kTooFewSignatures, "not signed (0 of " + std::to_string(r.threshold) + " required signatures)");
  return fail(ErrorCode::kTooFewSignatures, "too few signatures: " + counts);
}

Result<TrustStore> TrustStore::from_anchor(const Envelope& anchor) {
  if (anchor.payload_type != kRootType)
    return fail(ErrorCode::kMalformed, "trust root: payload type is not " + std::string(kRootType));
  auto root = parse_root(anchor.payload);
  if (!root) return fail(root.error().with_context("trust root"));
  auto st = check_threshold(*root, signing_message(kRootType, anchor.payload), anchor.signatures);
  if (!st) return fail(st.error().with_context("trust root v" + std::to_string(root->version) + " is not signed by its own keys"));
  TrustStore t;
  t.root_ = std::move(*root);
  t.envelope_ = anchor;
  return t;
}

Result<TrustStore> TrustStore::load(const std::string& path) {
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  auto env = parse_envelope(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!env) return fail(env.error().with_context(path));
  auto t = from_anchor(*env);
  if (!t) return fail(t.error().with_context(path));
  return t;
}

Status TrustStore::update(const Envelope& next) {
  if (next.payload_type != kRootType)
    return fail(ErrorCode::kRootRejected, "root update: payload type is not " + std::string(kRootType));
  const Bytes message = signing_message(kRootType, next.payload);
  // The current root's keys must vouch for the new bytes before they are parsed.
  if (auto st = check_threshold(root_, message, next.signatures); !st)
    return fail(ErrorCode::kRootRejected, "root update is not signed by a threshold of root v" +
                                               std::to_string(root_.version) + "'s keys: " + st.error().message);
  auto root = parse_root(next.payload);
  if (!root) return fail(ErrorCode::kRootRejected, "root update: " + root.error().message);
  if (root->version != root_.version + 1)
    return fail(ErrorCode::kRootRejected, "root update has version " + std::to_string(root->version) + ", expected " +
                                               std::to_string(root_.version + 1));
  if (auto st = check_threshold(*root, message, next.signatures); !st)
    return fail(ErrorCode::kRootRejected, "root v" + std::to_string(root->version) +
                                               " is not signed by a threshold of its own keys: " + st.error().message);
  root_ = std::move(*root);
  envelope_ = next;
  return ok();
}

std::size_t TrustStore::update_all(std::vector<Envelope> updates) {
  // Nothing is parsed before its signatures verify, so the order is found by
  // trying: each pass accepts the update that chains from the current root.
  bool progress = true;
  while (progress && !updates.empty()) {
    progress = false;
    for (auto it = updates.begin(); it != updates.end();) {
      if (update(*it)) {
        it = updates.erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
  }
  return updates.size();
}

Status TrustStore::check_fresh(Time now) const {
  if (root_.expires <= now)
    return fail(ErrorCode::kExpired, "trust root v" + std::to_string(root_.version) + " expired at " +
                                         format_time(root_.expires));
  return ok();
}

Status TrustStore::verify(std::string_view type, ByteSpan body, const std::vector<SignatureEntry>& sigs,
                          ThresholdReport* report) const {
  return check_threshold(root_, signing_message(type, body), sigs, report);
}

}  // namespace ota::trust
