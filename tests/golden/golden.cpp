// The golden fixture generator (golden.hpp). Deterministic by construction:
// keys from fixed seeds (Ed25519 signatures are deterministic), fixed times,
// images from a fixed-seed generator whose raw output the standard pins
// (std::mt19937_64), and a build path whose output does not depend on the
// number of threads.
#include "golden/golden.hpp"

#include <fstream>
#include <random>

#include "ota/core/hash.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"

namespace ota::golden {
namespace {

Result<keys::SecretKey> key(std::uint8_t n) {
  Bytes seed(32);
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(0xA5u ^ (n * 53u + i * 7u));
  return keys::SecretKey::from_seed(seed);
}

}  // namespace

Result<keys::SecretKey> fixture_key(std::uint8_t n) { return key(n); }

namespace {

// A firmware-like image: runs of code-like words with small variations.
Bytes base_image() {
  std::mt19937_64 rng(20260101);
  Bytes out(24 * 1024);
  for (std::size_t i = 0; i < out.size(); i += 8) {
    const std::uint64_t w = rng();
    for (std::size_t b = 0; b < 8; ++b) out[i + b] = static_cast<std::uint8_t>((w >> (8 * b)) & (b < 4 ? 0x3f : 0xff));
  }
  return out;
}

// A minor release of base: a few patched bytes, a moved block, an insertion.
Bytes target_image(const Bytes& base) {
  Bytes out(base);
  for (std::size_t i = 1000; i < out.size(); i += 3001) out[i] ^= 0x5a;
  std::copy(base.begin() + 4096, base.begin() + 6144, out.begin() + 12288);
  const std::string note = "golden release 2.0.0";
  out.insert(out.begin() + 20000, note.begin(), note.end());
  out.resize(24 * 1024 + 512, 0);
  return out;
}

trust::Envelope root_envelope(const trust::Root& root, const std::vector<const keys::SecretKey*>& signers) {
  trust::Envelope e;
  e.payload_type = std::string(trust::kRootType);
  e.payload = trust::encode_root(root);
  for (const auto* k : signers)
    e.signatures.push_back({k->public_key().id(), k->sign(trust::signing_message(trust::kRootType, e.payload))});
  return e;
}

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

Status write_file(const std::string& path, ByteSpan bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) return fail(ErrorCode::kIo, "cannot write " + path);
  return ok();
}

// A copy of bundle with one byte changed at offset.
Bytes flipped(const Bytes& bundle, std::uint64_t offset, std::uint8_t mask = 0x01) {
  Bytes out(bundle);
  out.at(static_cast<std::size_t>(offset)) ^= mask;
  return out;
}

}  // namespace

Result<std::vector<File>> generate(const std::string& scratch_dir) {
  auto created = trust::parse_time(kCreated);
  auto expires = trust::parse_time("2099-01-01T00:00:00Z");
  if (!created || !expires) return fail(ErrorCode::kInternal, "golden: bad time literal");
  std::vector<keys::SecretKey> k;
  for (std::uint8_t n = 0; n < 4; ++n) {
    auto s = key(n);
    if (!s) return fail(s.error());
    k.push_back(std::move(*s));
  }
  // Keys: 0 and 1 release keys of root 1; root 2 drops and revokes 0 and adds
  // 2; key 3 is the campaign's controller key.
  std::vector<File> files;

  trust::Root r1;
  r1.version = 1;
  r1.expires = *expires;
  r1.threshold = 1;
  for (int i : {0, 1}) r1.keys.emplace(k[i].public_key().id(), k[i].public_key());
  const trust::Envelope root1 = root_envelope(r1, {&k[0], &k[1]});
  trust::Root r2;
  r2.version = 2;
  r2.expires = *expires;
  r2.threshold = 1;
  for (int i : {1, 2}) r2.keys.emplace(k[i].public_key().id(), k[i].public_key());
  r2.revoked.insert(k[0].public_key().id());
  const trust::Envelope root2 = root_envelope(r2, {&k[1], &k[2]});
  files.push_back({"root-1.json", text_bytes(trust::encode_envelope(root1))});
  files.push_back({"root-2.json", text_bytes(trust::encode_envelope(root2))});

  const Bytes base = base_image(), target = target_image(base);
  files.push_back({"base.img", base});
  files.push_back({"target.img", target});
  const std::string base_path = scratch_dir + "/base.img", target_path = scratch_dir + "/target.img";
  OTA_TRY(write_file(base_path, base));
  OTA_TRY(write_file(target_path, target));

  // The release, through the build path `ota build` uses: a full payload and
  // a delta from base, signed by key 1 (trusted by both roots), carrying the
  // rotation to root 2.
  bundle::BuildOptions o;
  o.image_path = target_path;
  o.base_paths = {base_path};
  o.name = "golden-firmware";
  o.version = "2.0.0";
  o.security_version = 2;
  o.hardware = {kHardware};
  o.created = *created;
  o.expires = *expires;
  o.level = 3;
  o.delta_level = 3;
  o.full_frame_log = 14;
  o.delta_frame_log = 14;
  // The fixtures predate delta format version 3 and keep their version-1 delta:
  // devices must go on installing it (delta_golden_test.cpp pins version 3).
  o.delta_layout = delta::RecordLayout::kInterleaved;
  o.chunk_size = 4096;
  o.threads = 1;
  o.temp_dir = scratch_dir;
  auto staged = bundle::stage(o);
  if (!staged) return fail(staged.error().with_context("golden: stage"));
  const Bytes manifest_bytes = (*staged)->manifest_bytes();
  bundle::SignatureBlock block;
  block.signatures.push_back(
      {k[1].public_key().id(), k[1].sign(trust::signing_message(trust::kManifestType, manifest_bytes))});
  block.roots = {root2};
  VectorWriter out;
  OTA_TRY((*staged)->write(out, block));
  const Bytes release = std::move(out).take();
  files.push_back({"manifest.json", manifest_bytes});
  files.push_back({"release.otb", release});

  // The same release with a chunks payload (ota build --reuse, 512 B to 4 KiB
  // chunks), first in the bundle; the same key and root.
  {
    bundle::BuildOptions r = o;
    r.reuse = true;
    r.reuse_params = chunks::Params{512, 10, 4096};
    r.reuse_level = 3;
    auto rs = bundle::stage(r);
    if (!rs) return fail(rs.error().with_context("golden: stage with reuse"));
    bundle::SignatureBlock rb;
    rb.signatures.push_back(
        {k[1].public_key().id(), k[1].sign(trust::signing_message(trust::kManifestType, (*rs)->manifest_bytes()))});
    rb.roots = {root2};
    VectorWriter rout;
    OTA_TRY((*rs)->write(rout, rb));
    files.push_back({"release-reuse.otb", std::move(rout).take()});
  }

  // The same bundle tampered in each region (golden_test.cpp pins the code
  // each must be refused with).
  const manifest::Manifest& m = (*staged)->manifest();
  const bundle::Layout l = bundle::layout(manifest_bytes.size(), bundle::encode_signature_block(block).size(), m);
  if (l.members.size() != 4 || l.total_size != release.size())
    return fail(ErrorCode::kInternal, "golden: unexpected layout");
  const auto& man = l.members[0];
  const auto& sig = l.members[1];
  // A byte inside the signed manifest ("golden-firmware" -> "golden-firmwarf").
  const std::string text(manifest_bytes.begin(), manifest_bytes.end());
  const auto name_at = text.find("golden-firmware");
  if (name_at == std::string::npos) return fail(ErrorCode::kInternal, "golden: manifest without its name");
  files.push_back({"tampered-manifest.otb", flipped(release, man.data_offset + name_at + 14, 0x03)});
  // A base64 character of the signature ("sig": "..."): still well-formed.
  const Bytes sig_block = bundle::encode_signature_block(block);
  const std::string sig_text(sig_block.begin(), sig_block.end());
  const auto sig_at = sig_text.find("\"sig\": \"");
  if (sig_at == std::string::npos) return fail(ErrorCode::kInternal, "golden: signature block without a signature");
  Bytes bad_sig(release);
  auto& digit = bad_sig[static_cast<std::size_t>(sig.data_offset + sig_at + 8 + 10)];
  digit = digit == 'A' ? 'B' : 'A';
  files.push_back({"tampered-signature.otb", bad_sig});
  // A byte in the middle of each payload.
  for (std::size_t i = 2; i < l.members.size(); ++i) {
    const auto& p = l.members[i];
    const std::string kind = m.payloads[i - 2].kind == manifest::PayloadKind::kFull ? "full" : "delta";
    files.push_back({"tampered-payload-" + kind + ".otb", flipped(release, p.data_offset + p.size / 2)});
  }
  // The mode field of the first payload's tar header (0644 -> 0645).
  files.push_back({"tampered-header.otb", flipped(release, l.members[2].header_offset + 100 + 6)});
  // A byte of padding after the manifest, and one after the end of the archive.
  if (man.data_offset + man.size < sig.header_offset)
    files.push_back({"tampered-padding.otb", flipped(release, man.data_offset + man.size)});
  Bytes trailing(release);
  trailing.push_back(0);
  files.push_back({"trailing-byte.otb", trailing});
  files.push_back({"truncated.otb", Bytes(release.begin(), release.begin() + static_cast<std::ptrdiff_t>(release.size() / 2))});

  // A campaign for the release: signed by key 1 (through root 2), its
  // control by the controller key 3.
  campaign::Campaign c;
  c.id = "golden-2-0-0";
  c.fleet = "golden-fleet";
  c.created = *created;
  c.expires = *expires;
  c.manifest_hash = content_hash(manifest_bytes);
  c.version = m.version;
  c.hardware = m.hardware;
  c.url = "http://127.0.0.1:8080/release.otb";
  c.bundle_size = release.size();
  c.waves = {100, 1000, 10000};
  c.controller = k[3].public_key();
  trust::Envelope ce;
  ce.payload_type = std::string(campaign::kCampaignType);
  ce.payload = campaign::encode_campaign(c);
  ce.signatures.push_back({k[1].public_key().id(), k[1].sign(trust::signing_message(campaign::kCampaignType, ce.payload))});
  campaign::Control ctl;
  ctl.campaign = c.id;
  ctl.issued = *created;
  ctl.expires = *expires;
  ctl.state = campaign::RunState::kPaused;  // honoured at any age (a running one must be fresh)
  ctl.reason = "golden fixture";
  files.push_back({"campaign.json", text_bytes(campaign::encode_document({ce, campaign::sign_control(ctl, k[3]), {root2}}))});

  std::string sums;
  for (const auto& f : files) sums += to_hex(content_hash(f.bytes)) + "  " + f.name + "\n";
  files.push_back({"B2SUMS", text_bytes(sums)});
  return files;
}

}  // namespace ota::golden
