#include "ota/fleet/publish.hpp"

#include <unistd.h>

#include <algorithm>

#include "ota/core/hash.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/release/verify.hpp"

namespace ota::campaign {

namespace {

// Reads a Source front to back and hashes every byte it hands out (skip()
// reads too, so the digest covers the whole source).
class HashingSourceReader final : public ota::Reader {
 public:
  explicit HashingSourceReader(const Source& src) : src_(src) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), src_.size() - pos_));
    if (n == 0) return std::size_t{0};
    OTA_TRY(src_.read_at(pos_, out.first(n)));
    hash_.update(ByteSpan(out.data(), n));
    pos_ += n;
    return n;
  }
  std::uint64_t position() const { return pos_; }
  // The digest of everything read; call once, at the end.
  Digest digest() { return hash_.finish(); }

 private:
  const Source& src_;
  std::uint64_t pos_ = 0;
  Hasher hash_;
};

// Copies the bundle into the store as HASH.otb, unless it is there already;
// the copy must hash to what was verified.
Result<std::string> store_bundle(const Source& src, const std::string& store, const Digest& hash) {
  const std::string name = to_hex(hash) + ".otb";
  const std::string dest = store + "/" + name;
  if (::access(dest.c_str(), F_OK) == 0) return name;
  HashingSourceReader in(src);
  OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(dest, 0644));
  OTA_TRY_ASSIGN(auto n, copy(in, *out));
  (void)n;
  if (in.digest() != hash) return fail(ErrorCode::kIo, "the bundle changed while it was published");
  OTA_TRY((out)->commit());
  return name;
}

// The revision after the one the broker holds (1 when it holds none that verifies).
Result<std::uint64_t> next_revision(mqtt::Client& client, const trust::TrustStore& trust, const std::string& fleet,
                                    const std::string& id, trust::Time now) {
  OTA_TRY_ASSIGN(auto held, mqtt::read_retained(client, campaign_topic(fleet, id), std::chrono::milliseconds(1500)));
  std::uint64_t revision = 1;
  if (held) {
    auto d = parse_document(*held);
    if (d) {
      auto old = verify_document(trust, *d, now);
      if (old) revision = old->campaign.revision + 1;
    }
  }
  return revision;
}

}  // namespace

Result<Published> publish(const PublishRequest& r, const Connect& connect) {
  // The bundle must verify before anyone is told to fetch it.
  OTA_TRY_ASSIGN(auto trust, trust::TrustStore::load(r.trust_path));
  auto src = FileSource::open(r.bundle_path);
  if (!src) return fail(src.error().with_context(r.bundle_path));
  HashingSourceReader in(**src);
  bundle::VerifyOptions vo;
  vo.policy.now = r.now;
  const auto verified = bundle::verify_bundle(in, trust, vo);
  if (verified.error) return fail(verified.error->with_context(r.bundle_path));
  // The manifest's content hash names the release; the file's names the copy in the store.
  const std::uint64_t size = in.position();
  const Digest file_hash = in.digest();

  std::string url = r.url;
  if (!r.store_dir.empty()) {
    auto name = store_bundle(**src, r.store_dir, file_hash);
    if (!name) return fail(name.error().with_context("--store"));
    url = r.url + (r.url.empty() || r.url.back() != '/' ? "/" : "") + *name;
  }

  std::optional<Security> security;
  Bytes registry_bytes;
  if (!r.registry_path.empty()) {
    auto bytes = read_file(r.registry_path);
    if (!bytes) return fail(bytes.error().with_context("--registry"));
    auto reg = parse_registry(*bytes);
    if (!reg) return fail(reg.error().with_context("--registry " + r.registry_path));
    if (reg->fleet != r.fleet)
      return fail(ErrorCode::kUsage, "--registry: " + r.registry_path + " is the registry of fleet " + reg->fleet);
    if (r.operators.empty()) return fail(ErrorCode::kUsage, "--registry: a signed campaign needs at least one operator key");
    security = security_for(*bytes, *reg, r.operators);
    registry_bytes = std::move(*bytes);
  }

  OTA_TRY_ASSIGN(auto controller, prepare_directory(r.campaign_dir));
  if (security) {
    // The controller counts reports against this copy; the campaign pins its hash.
    OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(r.campaign_dir + "/" + kRegistryFile, 0644));
    OTA_TRY(out->write(registry_bytes));
    OTA_TRY(out->commit());
  }
  OTA_TRY_ASSIGN(auto client, connect());

  Campaign c;
  c.id = r.id;
  c.fleet = r.fleet;
  c.revision = r.revision;
  if (c.revision == 0) {
    // A republication: the next revision after the one the broker holds.
    OTA_TRY_ASSIGN(c.revision, next_revision(*client, trust, r.fleet, r.id, r.now));
  }
  c.created = r.now;
  c.expires = r.now + r.expires_s;
  c.manifest_hash = verified.manifest_hash;
  c.version = verified.manifest->version;
  c.hardware = verified.manifest->hardware;
  c.url = url;
  c.bundle_size = size;
  c.waves = r.waves;
  c.gates = r.gates;
  c.controller = controller;
  c.control_ttl_s = r.control_ttl_s;
  c.security = security;
  if (r.devices_per_minute || r.bytes_per_minute) {
    Pace pace;
    pace.devices_per_minute = r.devices_per_minute;
    pace.bytes_per_minute = r.bytes_per_minute;
    for (const auto& pl : verified.manifest->payloads) {
      if (pl.kind == manifest::PayloadKind::kFull && pace.full_size == 0) pace.full_size = pl.size;
      if (pl.kind == manifest::PayloadKind::kDelta) pace.deltas.emplace_back(pl.base_hash, pl.size);
    }
    c.pace = std::move(pace);
  }
  c.revert_on_abort = r.revert_on_abort;
  c.advisory = verified.manifest->security;
  c.policy = r.policy;
  c.regression = r.regression;
  OTA_TRY(validate(c));

  trust::Envelope env;
  env.payload_type = std::string(kCampaignType);
  env.payload = encode_campaign(c);
  OTA_TRY(trust::sign_with_keys(kCampaignType, env.payload, r.key_paths, r.passphrase, env.signatures));
  // What devices will check: the threshold under the trust root.
  OTA_TRY_CTX(trust.verify(kCampaignType, env.payload, env.signatures), "campaign signatures");

  OTA_TRY_ASSIGN(auto control, initial_control(r.campaign_dir, c, r.now));
  const std::string doc = encode_document({env, control, r.root_updates});
  OTA_TRY(journal_publication(r.campaign_dir, doc, r.now));
  mqtt::Message m{campaign_topic(r.fleet, r.id), doc, 1, true, 0, {}};
  OTA_TRY(mqtt::publish_retained_checked(*client, m, r.timeout));
  client->stop();
  return Published{std::move(c), m.topic, r.campaign_dir};
}

}  // namespace ota::campaign
