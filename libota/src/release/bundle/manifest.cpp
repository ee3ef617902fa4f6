#include "ota/release/manifest.hpp"

#include <algorithm>
#include <set>

#include "core/json.hpp"

namespace ota::manifest {

namespace {

constexpr std::uint64_t kMaxSize = (1ull << 63) - 1;
constexpr trust::Time kMaxCreated = 077777777777;

bool safe_name(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max || s == "." || s == "..") return false;
  for (char c : s) {
    bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-' || c == '+';
    if (!okc) return false;
  }
  return true;
}

bool printable(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

bool is_pow2(std::uint64_t v) { return v && !(v & (v - 1)); }

// Splits "a.b.c" into identifiers.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

bool numeric(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool ident_ok(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-')) return false;
  return true;
}

struct Parts {
  std::vector<std::string_view> core, pre;
};

std::optional<Parts> parse_semver(std::string_view v) {
  if (v.empty() || v.size() > 128) return std::nullopt;
  auto plus = v.find('+');
  if (plus != std::string_view::npos) {
    for (auto id : split(v.substr(plus + 1), '.'))
      if (!ident_ok(id)) return std::nullopt;
    v = v.substr(0, plus);
  }
  Parts p;
  auto dash = v.find('-');
  if (dash != std::string_view::npos) {
    p.pre = split(v.substr(dash + 1), '.');
    for (auto id : p.pre)
      if (!ident_ok(id) || (numeric(id) && id.size() > 1 && id[0] == '0')) return std::nullopt;
    v = v.substr(0, dash);
  }
  p.core = split(v, '.');
  if (p.core.size() != 3) return std::nullopt;
  for (auto n : p.core)
    if (!numeric(n) || (n.size() > 1 && n[0] == '0') || n.size() > 19) return std::nullopt;
  return p;
}

int cmp_numeric(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  int c = a.compare(b);
  return c < 0 ? -1 : c > 0;
}

// Valid UTF-8 without control characters (newline and tab allowed).
bool advisory_text_ok(std::string_view s) {
  if (s.empty() || s.size() > kMaxAdvisoryBytes) return false;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (c >= 0xf8) n = 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = c & (0xff >> (n + 1));
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const std::uint32_t least = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp >= 0x80 && cp < 0xa0) return false;  // C1 controls
    i += n;
  }
  return true;
}

}  // namespace

std::string_view sbom_format_name(SbomFormat f) {
  switch (f) {
    case SbomFormat::kCycloneDx: return "cyclonedx";
    case SbomFormat::kSpdx: return "spdx";
    case SbomFormat::kNone: break;
  }
  return "none";
}

std::uint64_t encrypted_size(std::uint64_t plain, std::uint32_t block) {
  const std::uint64_t blocks = plain == 0 ? 1 : (plain + block - 1) / block;
  return plain + kBlockTagBytes * blocks;
}

std::optional<std::uint64_t> decrypted_size(std::uint64_t cipher, std::uint32_t block) {
  if (block == 0 || cipher < kBlockTagBytes) return std::nullopt;
  const std::uint64_t stride = std::uint64_t{block} + kBlockTagBytes;
  const std::uint64_t blocks = (cipher + stride - 1) / stride;
  const std::uint64_t last = cipher - (blocks - 1) * stride;
  if (last < kBlockTagBytes || (last == kBlockTagBytes && blocks > 1)) return std::nullopt;
  return cipher - kBlockTagBytes * blocks;
}

bool is_valid_advisory_id(std::string_view id) {
  if (id.size() < 3 || id.size() > 64) return false;
  if (!((id[0] >= 'A' && id[0] <= 'Z') || (id[0] >= 'a' && id[0] <= 'z'))) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == ':' || c == '-'))
      return false;
  if (id.rfind("CVE-", 0) == 0) {
    const auto parts = split(id, '-');
    return parts.size() == 3 && parts[1].size() == 4 && numeric(parts[1]) && parts[2].size() >= 4 &&
           parts[2].size() <= 19 && numeric(parts[2]);
  }
  return true;
}

std::string_view kind_name(PayloadKind k) {
  switch (k) {
    case PayloadKind::kFull: return "full";
    case PayloadKind::kDelta: return "delta";
    case PayloadKind::kChunks: return "chunks";
    case PayloadKind::kSbom: return "sbom";
  }
  return "unknown";
}

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kZstd: return "zstd";
    case Compression::kOtaDelta: return "ota-delta";
    case Compression::kOtaChunks: return "ota-chunks";
  }
  return "none";
}

bool is_valid_version(std::string_view v) { return parse_semver(v).has_value(); }

int compare_versions(std::string_view a, std::string_view b) {
  auto pa = parse_semver(a), pb = parse_semver(b);
  if (!pa || !pb) return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
  for (int i = 0; i < 3; ++i)
    if (int c = cmp_numeric(pa->core[i], pb->core[i])) return c;
  if (pa->pre.empty() || pb->pre.empty()) return pa->pre.empty() == pb->pre.empty() ? 0 : (pa->pre.empty() ? 1 : -1);
  for (std::size_t i = 0; i < pa->pre.size() && i < pb->pre.size(); ++i) {
    auto x = pa->pre[i], y = pb->pre[i];
    bool nx = numeric(x), ny = numeric(y);
    int c = 0;
    if (nx && ny) c = cmp_numeric(x, y);
    else if (nx != ny) c = nx ? -1 : 1;
    else c = x.compare(y) < 0 ? -1 : (x == y ? 0 : 1);
    if (c) return c;
  }
  if (pa->pre.size() == pb->pre.size()) return 0;
  return pa->pre.size() < pb->pre.size() ? -1 : 1;
}

Digest chunk_tree_hash(const std::vector<Digest>& chunks) {
  Hasher h;
  for (const auto& c : chunks) h.update(ByteSpan(c.data(), c.size()));
  return h.finish();
}

std::uint32_t default_chunk_size(std::uint64_t stored_size) {
  std::uint64_t c = 256u << 10;
  while ((stored_size + c - 1) / c > 4096 && c < (64u << 20)) c <<= 1;
  return static_cast<std::uint32_t>(c);
}

Status validate_security(const Security& sec) {
  auto bad = [](std::string msg) { return fail(ErrorCode::kMalformed, "manifest: " + msg); };
  if (!advisory_text_ok(sec.advisory))
    return bad("security.advisory must be 1 to 4096 bytes of UTF-8 text without control characters");
  if (sec.ids.empty() || sec.ids.size() > kMaxAdvisoryIds)
    return bad("security.ids lists 1 to " + std::to_string(kMaxAdvisoryIds) + " advisory ids");
  std::set<std::string> ids;
  for (const auto& id : sec.ids) {
    if (!is_valid_advisory_id(id))
      return bad("security.ids: '" + (printable(id, 64) ? id : std::string("?")) +
                 "' is not an advisory id (CVE-YYYY-NNNN, GHSA-..., 3 to 64 of [A-Za-z0-9._:-])");
    if (!ids.insert(id).second) return bad("security.ids lists " + id + " twice");
  }
  return ok();
}

Status validate(const Manifest& m) {
  auto bad = [](std::string msg) { return fail(ErrorCode::kMalformed, "manifest: " + msg); };
  if (!printable(m.name, 128)) return bad("name must be 1 to 128 printable ASCII characters");
  if (!is_valid_version(m.version)) return bad("version is not SemVer 2.0.0 (MAJOR.MINOR.PATCH[-PRE][+BUILD])");
  if (m.security_version > kMaxSize) return bad("security_version is too large");
  if (m.hardware.empty()) return bad("no compatible hardware id");
  if (m.hardware.size() > kMaxHardware) return bad("more than " + std::to_string(kMaxHardware) + " hardware ids");
  std::set<std::string> hw;
  for (const auto& h : m.hardware) {
    if (!printable(h, 128)) return bad("hardware ids are 1 to 128 printable ASCII characters");
    if (!hw.insert(h).second) return bad("hardware id listed twice");
  }
  if (m.created < 0 || (m.expires && *m.expires < 0)) return bad("time before 1970");
  // Tar headers carry created as 11 octal digits (until the year 2242).
  if (m.created > kMaxCreated) return bad("created is after the year 2242");
  if (m.target_size > kMaxSize) return bad("target size is too large");
  if (m.payloads.empty()) return bad("no payload");
  if (m.payloads.size() > kMaxPayloads) return bad("more than " + std::to_string(kMaxPayloads) + " payloads");
  if (m.security) OTA_TRY(validate_security(*m.security));
  if (m.encryption) {
    const auto& e = *m.encryption;
    if (!is_pow2(e.block_size) || e.block_size < kMinEncryptionBlock || e.block_size > kMaxEncryptionBlock)
      return bad("encryption.block_size must be a power of two from 4 KiB to 1 MiB");
    if (e.recipients.empty() || e.recipients.size() > kMaxRecipients)
      return bad("encryption lists 1 to " + std::to_string(kMaxRecipients) + " recipients");
    std::set<Digest> ids;
    for (const auto& r : e.recipients)
      if (!ids.insert(r.key_id).second) return bad("encryption lists a recipient twice");
  }
  std::set<std::string> names;
  std::set<Digest> bases;
  int full = 0, chunked = 0, sboms = 0;
  for (const auto& p : m.payloads) {
    const std::string where = "payload " + (safe_name(p.name, 64) ? p.name : std::string("?")) + ": ";
    if (!safe_name(p.name, 64)) return bad("payload names are 1 to 64 characters of [A-Za-z0-9._+-]");
    if (!names.insert(p.name).second) return bad(where + "name listed twice");
    if (p.size > kMaxSize) return bad(where + "size is too large");
    if (!is_pow2(p.chunk_size) || p.chunk_size < 4096 || p.chunk_size > (64u << 20))
      return bad(where + "chunk_size must be a power of two from 4 KiB to 64 MiB");
    const std::uint64_t expect = (p.size + p.chunk_size - 1) / p.chunk_size;
    if (p.chunks.size() != expect)
      return bad(where + std::to_string(p.chunks.size()) + " chunk hashes for " + std::to_string(expect) + " chunks");
    if (p.window_log > 31) return bad(where + "window_log over 31");
    if (p.hash != chunk_tree_hash(p.chunks)) return bad(where + "hash is not the hash of its chunk hashes");
    if (m.encryption) {
      const auto plain = decrypted_size(p.size, m.encryption->block_size);
      if (!plain || *plain != p.plain_size)
        return bad(where + "plain size " + std::to_string(p.plain_size) + " does not match the encrypted size " +
                   std::to_string(p.size));
    } else if (p.plain_size != 0 || p.plain_hash != Digest{}) {
      return bad(where + "only an encrypted payload has a plain size and hash");
    }
    if ((p.kind == PayloadKind::kSbom) != (p.sbom_format != SbomFormat::kNone))
      return bad(where + "only an sbom payload, and every one, has a format");
    if (p.kind == PayloadKind::kSbom) {
      ++sboms;
      if (p.compression != Compression::kNone) return bad(where + "an sbom is stored (compression none)");
      if (p.base_size != 0 || p.base_hash != Digest{}) return bad(where + "an sbom has no base");
      if (readable_size(m, p) > kMaxSbomBytes || p.window_log != 0)
        return bad(where + "an sbom is at most 16 MiB, with window_log 0");
    } else if (p.kind == PayloadKind::kFull) {
      ++full;
      if (p.compression != Compression::kNone && p.compression != Compression::kZstd)
        return bad(where + "a full payload is stored or zstd");
      if (p.base_size != 0 || p.base_hash != Digest{}) return bad(where + "a full payload has no base");
    } else if (p.kind == PayloadKind::kChunks) {
      ++chunked;
      if (p.compression != Compression::kOtaChunks) return bad(where + "a chunks payload must be ota-chunks");
      if (p.base_size != 0 || p.base_hash != Digest{}) return bad(where + "a chunks payload has no base");
      if (p.index_size < 32 || p.index_size > readable_size(m, p) || p.index_size > 32 + 73 * (std::uint64_t{1} << 20))
        return bad(where + "index size out of range");
    } else {
      if (p.compression != Compression::kOtaDelta) return bad(where + "a delta payload must be an ota delta");
      if (p.base_size > kMaxSize) return bad(where + "base size is too large");
      if (!bases.insert(p.base_hash).second) return bad(where + "two deltas from the same base");
    }
  }
  if (full > 1) return bad("more than one full payload");
  if (chunked > 1) return bad("more than one chunks payload");
  if (sboms > 1) return bad("more than one sbom payload");
  if (full + chunked == 0 && std::none_of(m.payloads.begin(), m.payloads.end(),
                                          [](const Payload& p) { return p.kind == PayloadKind::kDelta; }))
    return bad("no payload installs the image (only an sbom)");
  for (const auto& p : m.payloads)
    if (p.kind != PayloadKind::kChunks && (p.index_size != 0 || p.index_hash != Digest{}))
      return bad("payload " + p.name + ": only a chunks payload has an index");
  return ok();
}

Bytes encode_manifest(const Manifest& m) {
  json::Ordered doc;
  doc["format"] = kFormat;
  doc["name"] = m.name;
  doc["version"] = m.version;
  doc["security_version"] = m.security_version;
  doc["hardware"] = m.hardware;
  doc["created"] = trust::format_time(m.created);
  if (m.expires) doc["expires"] = trust::format_time(*m.expires);
  if (m.security) doc["security"] = {{"advisory", m.security->advisory}, {"ids", m.security->ids}};
  doc["hash"] = "blake2b-256";
  doc["target"] = {{"size", m.target_size}, {"hash", to_hex(m.target_hash)}};
  if (m.encryption) {
    json::Ordered ej;
    ej["cipher"] = "xchacha20poly1305-ietf";
    ej["block_size"] = m.encryption->block_size;
    ej["recipients"] = json::Ordered::array();
    for (const auto& r : m.encryption->recipients)
      ej["recipients"].push_back(
          {{"keyid", to_hex(r.key_id)}, {"sealed_key", to_hex(ByteSpan(r.sealed_key.data(), r.sealed_key.size()))}});
    doc["encryption"] = std::move(ej);
  }
  doc["payloads"] = json::Ordered::array();
  for (const auto& p : m.payloads) {
    json::Ordered pj;
    pj["name"] = p.name;
    pj["kind"] = kind_name(p.kind);
    if (p.kind == PayloadKind::kSbom) pj["format"] = sbom_format_name(p.sbom_format);
    if (p.kind == PayloadKind::kDelta) pj["base"] = {{"size", p.base_size}, {"hash", to_hex(p.base_hash)}};
    if (p.kind == PayloadKind::kChunks) pj["index"] = {{"size", p.index_size}, {"hash", to_hex(p.index_hash)}};
    pj["compression"] = compression_name(p.compression);
    pj["window_log"] = p.window_log;
    pj["size"] = p.size;
    pj["hash"] = to_hex(p.hash);
    if (m.encryption) pj["plain"] = {{"size", p.plain_size}, {"hash", to_hex(p.plain_hash)}};
    pj["chunk_size"] = p.chunk_size;
    pj["chunks"] = json::Ordered::array();
    for (const auto& c : p.chunks) pj["chunks"].push_back(to_hex(c));
    doc["payloads"].push_back(std::move(pj));
  }
  std::string text = doc.dump(2) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<Manifest> parse_manifest(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j,
                 json::parse_strict(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), kMaxManifestBytes, "manifest"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "manifest"));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kFormat) {
    if (format.rfind("ota-manifest-v", 0) == 0)
      return fail(ErrorCode::kUnsupported, "manifest: format " + format + " is not supported by this build");
    return fail(ErrorCode::kMalformed, "manifest: format is not " + std::string(kFormat));
  }
  OTA_TRY(o.only({"format", "name", "version", "security_version", "hardware", "created", "expires", "security",
                   "hash", "target", "encryption", "payloads"}));
  Manifest m;
  OTA_TRY_ASSIGN(auto name, o.string("name", 128));
  m.name = name;
  OTA_TRY_ASSIGN(auto version, o.string("version", 128));
  m.version = version;
  OTA_TRY_ASSIGN(auto sv, o.u64("security_version"));
  m.security_version = sv;
  OTA_TRY_ASSIGN(auto hw, o.array("hardware", kMaxHardware));
  for (const auto& h : *hw) {
    OTA_TRY_ASSIGN(auto s, json::as_string(h, "manifest.hardware[]", 128));
    m.hardware.push_back(s);
  }
  OTA_TRY_ASSIGN(auto created, o.string("created", 32));
  auto ct = trust::parse_time(created);
  if (!ct) return fail(ct.error().with_context("manifest.created"));
  m.created = *ct;
  if (o.has("expires")) {
    OTA_TRY_ASSIGN(auto e, o.string("expires", 32));
    auto et = trust::parse_time(e);
    if (!et) return fail(et.error().with_context("manifest.expires"));
    m.expires = *et;
  }
  if (o.has("security")) {
    OTA_TRY_ASSIGN(auto sj, o.object("security"));
    OTA_TRY_ASSIGN(auto so, json::Object::of(*sj, "manifest.security"));
    OTA_TRY(so.only({"advisory", "ids"}));
    Security sec;
    OTA_TRY_ASSIGN(auto adv, so.string("advisory", kMaxAdvisoryBytes));
    sec.advisory = adv;
    OTA_TRY_ASSIGN(auto ids, so.array("ids", kMaxAdvisoryIds));
    for (const auto& id : *ids) {
      OTA_TRY_ASSIGN(auto v, json::as_string(id, "manifest.security.ids[]", 64));
      sec.ids.push_back(v);
    }
    m.security = std::move(sec);
  }
  if (o.has("encryption")) {
    OTA_TRY_ASSIGN(auto ej, o.object("encryption"));
    OTA_TRY_ASSIGN(auto eo, json::Object::of(*ej, "manifest.encryption"));
    OTA_TRY(eo.only({"cipher", "block_size", "recipients"}));
    OTA_TRY_ASSIGN(auto cipher, eo.string("cipher", 32));
    if (cipher != "xchacha20poly1305-ietf")
      return fail(ErrorCode::kUnsupported, "manifest: encryption cipher is not xchacha20poly1305-ietf");
    Encryption e;
    OTA_TRY_ASSIGN(auto bs, eo.u64("block_size", kMaxEncryptionBlock));
    e.block_size = static_cast<std::uint32_t>(bs);
    OTA_TRY_ASSIGN(auto rs, eo.array("recipients", kMaxRecipients));
    for (const auto& rj : *rs) {
      OTA_TRY_ASSIGN(auto ro, json::Object::of(rj, "manifest.encryption.recipients[]"));
      OTA_TRY(ro.only({"keyid", "sealed_key"}));
      Recipient r;
      OTA_TRY_ASSIGN(auto id, ro.digest("keyid"));
      r.key_id = id;
      OTA_TRY_ASSIGN(auto sealed, ro.string("sealed_key", 2 * kSealedKeyBytes));
      if (sealed.size() != 2 * kSealedKeyBytes)
        return fail(ErrorCode::kMalformed, "manifest: a sealed key is not 80 bytes of hex");
      for (std::size_t i = 0; i < kSealedKeyBytes; ++i) {
        auto nib = [](char c) -> int {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          return -1;
        };
        const int hi = nib(sealed[2 * i]), lo = nib(sealed[2 * i + 1]);
        if (hi < 0 || lo < 0) return fail(ErrorCode::kMalformed, "manifest: a sealed key is not 80 bytes of hex");
        r.sealed_key[i] = static_cast<std::uint8_t>(hi << 4 | lo);
      }
      e.recipients.push_back(r);
    }
    m.encryption = std::move(e);
  }
  OTA_TRY_ASSIGN(auto hash, o.string("hash", 32));
  if (hash != "blake2b-256") return fail(ErrorCode::kUnsupported, "manifest: hash algorithm is not blake2b-256");
  OTA_TRY_ASSIGN(auto tj, o.object("target"));
  OTA_TRY_ASSIGN(auto to, json::Object::of(*tj, "manifest.target"));
  OTA_TRY(to.only({"size", "hash"}));
  OTA_TRY_ASSIGN(auto tsize, to.u64("size"));
  m.target_size = tsize;
  OTA_TRY_ASSIGN(auto thash, to.digest("hash"));
  m.target_hash = thash;

  OTA_TRY_ASSIGN(auto payloads, o.array("payloads", kMaxPayloads));
  for (const auto& pj : *payloads) {
    OTA_TRY_ASSIGN(auto po, json::Object::of(pj, "manifest.payloads[]"));
    OTA_TRY(po.only({"name", "kind", "format", "base", "index", "compression", "window_log", "size", "hash", "plain",
                     "chunk_size", "chunks"}));
    Payload p;
    OTA_TRY_ASSIGN(auto pname, po.string("name", 64));
    p.name = pname;
    OTA_TRY_ASSIGN(auto kind, po.string("kind", 16));
    if (kind == "full") p.kind = PayloadKind::kFull;
    else if (kind == "delta") p.kind = PayloadKind::kDelta;
    else if (kind == "chunks") p.kind = PayloadKind::kChunks;
    else if (kind == "sbom") p.kind = PayloadKind::kSbom;
    else return fail(ErrorCode::kUnsupported, "manifest: payload kind is not full, delta, chunks or sbom");
    if (p.kind == PayloadKind::kSbom) {
      OTA_TRY_ASSIGN(auto f, po.string("format", 16));
      if (f == "cyclonedx") p.sbom_format = SbomFormat::kCycloneDx;
      else if (f == "spdx") p.sbom_format = SbomFormat::kSpdx;
      else return fail(ErrorCode::kUnsupported, "manifest: sbom format is not cyclonedx or spdx");
    } else if (po.has("format")) {
      return fail(ErrorCode::kMalformed, "manifest: only an sbom payload has a format");
    }
    if (p.kind == PayloadKind::kDelta) {
      OTA_TRY_ASSIGN(auto bj, po.object("base"));
      OTA_TRY_ASSIGN(auto bo, json::Object::of(*bj, "manifest.payloads[].base"));
      OTA_TRY(bo.only({"size", "hash"}));
      OTA_TRY_ASSIGN(auto bs, bo.u64("size"));
      OTA_TRY_ASSIGN(auto bh, bo.digest("hash"));
      p.base_size = bs;
      p.base_hash = bh;
    } else if (po.has("base")) {
      return fail(ErrorCode::kMalformed, "manifest: only a delta payload has a base");
    }
    if (p.kind == PayloadKind::kChunks) {
      OTA_TRY_ASSIGN(auto ij, po.object("index"));
      OTA_TRY_ASSIGN(auto io, json::Object::of(*ij, "manifest.payloads[].index"));
      OTA_TRY(io.only({"size", "hash"}));
      OTA_TRY_ASSIGN(auto is, io.u64("size"));
      OTA_TRY_ASSIGN(auto ih, io.digest("hash"));
      p.index_size = is;
      p.index_hash = ih;
    } else if (po.has("index")) {
      return fail(ErrorCode::kMalformed, "manifest: only a chunks payload has an index");
    }
    OTA_TRY_ASSIGN(auto comp, po.string("compression", 16));
    if (comp == "none") p.compression = Compression::kNone;
    else if (comp == "zstd") p.compression = Compression::kZstd;
    else if (comp == "ota-delta") p.compression = Compression::kOtaDelta;
    else if (comp == "ota-chunks") p.compression = Compression::kOtaChunks;
    else return fail(ErrorCode::kUnsupported, "manifest: unknown payload compression");
    OTA_TRY_ASSIGN(auto wl, po.u64("window_log", 31));
    p.window_log = static_cast<std::uint8_t>(wl);
    OTA_TRY_ASSIGN(auto size, po.u64("size"));
    p.size = size;
    OTA_TRY_ASSIGN(auto ph, po.digest("hash"));
    p.hash = ph;
    if (po.has("plain") != m.encryption.has_value())
      return fail(ErrorCode::kMalformed, "manifest: a payload has plain size and hash exactly when encrypted");
    if (m.encryption) {
      OTA_TRY_ASSIGN(auto plj, po.object("plain"));
      OTA_TRY_ASSIGN(auto plo, json::Object::of(*plj, "manifest.payloads[].plain"));
      OTA_TRY(plo.only({"size", "hash"}));
      OTA_TRY_ASSIGN(auto ps, plo.u64("size"));
      OTA_TRY_ASSIGN(auto phh, plo.digest("hash"));
      p.plain_size = ps;
      p.plain_hash = phh;
    }
    OTA_TRY_ASSIGN(auto cs, po.u64("chunk_size", 64u << 20));
    p.chunk_size = static_cast<std::uint32_t>(cs);
    OTA_TRY_ASSIGN(auto chunks, po.array("chunks", kMaxChunksPerPayload));
    p.chunks.reserve((chunks)->size());
    for (const auto& c : *chunks) {
      OTA_TRY_ASSIGN(auto d, json::as_digest(c, "manifest.payloads[].chunks[]"));
      p.chunks.push_back(d);
    }
    m.payloads.push_back(std::move(p));
  }
  OTA_TRY(validate(m));
  return m;
}

Status check_policy(const Manifest& m, const Policy& p) {
  if (m.expires && *m.expires <= p.now)
    return fail(ErrorCode::kExpired, "the manifest expired at " + trust::format_time(*m.expires));
  if (p.hardware) {
    bool found = false;
    for (const auto& h : m.hardware) found = found || h == *p.hardware;
    if (!found) return fail(ErrorCode::kIncompatibleHardware, "the bundle is not for hardware '" + *p.hardware + "'");
  }
  if (p.security_floor && m.security_version < *p.security_floor)
    return fail(ErrorCode::kDowngrade, "security version " + std::to_string(m.security_version) +
                                           " is below the device's floor " + std::to_string(*p.security_floor));
  if (p.installed_version && compare_versions(m.version, *p.installed_version) <= 0)
    return fail(ErrorCode::kDowngrade, "version " + m.version + " is not newer than the installed " +
                                           *p.installed_version);
  return ok();
}

}  // namespace ota::manifest
