// libFuzzer target: arbitrary bytes as a release manifest (manifest.json).
//
// Oracles beyond "no crash, no sanitizer report":
// - a failure is kMalformed or kUnsupported;
// - an accepted manifest passes validate(), and its canonical encoding
//   re-parses to a manifest with the same encoding (encode(parse(encode(m)))
//   == encode(m));
// - its version is valid SemVer and compares consistently (equal to itself,
//   antisymmetric against a few fixed versions);
// - check_policy fails only with kExpired, kIncompatibleHardware or kDowngrade;
// - the bundle layout of the manifest agrees with the tar headers the writer
//   and the reader render for its members (member_header).
#include <cstddef>
#include <cstdint>

#include "ota/release/bundle.hpp"
#include "ota/release/manifest.hpp"
#include "sign_fixture.hpp"

namespace {

using namespace ota;
using fuzz::check;

int sign(int v) { return (v > 0) - (v < 0); }

void check_versions(const std::string& v) {
  check(manifest::is_valid_version(v));
  check(manifest::compare_versions(v, v) == 0);
  static const char* const kOthers[] = {"0.0.0", "1.0.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7",
                                        "1.0.0-x.7.z.92", "2.0.0+build.1", "10.20.30"};
  for (const char* other : kOthers) {
    const int a = manifest::compare_versions(v, other), b = manifest::compare_versions(other, v);
    check(sign(a) == -sign(b));
  }
}

void check_policy(const manifest::Manifest& m) {
  manifest::Policy p;
  p.now = fuzz::kNow;
  p.hardware = std::string(fuzz::kHardware);
  p.installed_version = "1.0.0";
  p.security_floor = 1;
  Status st = manifest::check_policy(m, p);
  if (!st)
    check(fuzz::one_of(st.error().code, {ErrorCode::kExpired, ErrorCode::kIncompatibleHardware, ErrorCode::kDowngrade}));
  // No constraint but the clock: only expiry can fail.
  manifest::Policy none;
  none.now = fuzz::kNow;
  Status st2 = manifest::check_policy(m, none);
  check(st2 || st2.error().code == ErrorCode::kExpired);
  check(static_cast<bool>(st2) == (!m.expires || *m.expires > fuzz::kNow));
}

void check_layout(const manifest::Manifest& m, std::size_t manifest_size) {
  const bundle::Layout l = bundle::layout(manifest_size, 1000, m);
  check(l.members.size() == m.payloads.size() + 2);
  std::uint64_t at = 0;
  for (const auto& member : l.members) {
    check(member.header_offset == at && member.header_offset % 512 == 0);
    auto h = bundle::member_header(member.path, member.size, m.created);
    // The bundle writer emits exactly these header bytes and the reader
    // expects them, so the layout (used for HTTP Range requests) must agree.
    check(h.has_value());
    check(member.data_offset - member.header_offset == h->size());
    at = member.data_offset + (member.size + 511) / 512 * 512;
  }
  check(l.end_offset == at && l.total_size == at + 1024);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto m = manifest::parse_manifest(ByteSpan(data, size));
  if (!m) {
    check(fuzz::one_of(m.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
    return 0;
  }
  check(static_cast<bool>(manifest::validate(*m)));
  check_versions(m->version);
  check_policy(*m);
  const Bytes encoded = manifest::encode_manifest(*m);
  check_layout(*m, encoded.size());
  // (Re-encoding indents: a compact manifest near the size limit may not fit
  // again. Fuzz inputs are far smaller; stay exact about what is checked.)
  if (encoded.size() > manifest::kMaxManifestBytes) return 0;
  auto again = manifest::parse_manifest(encoded);
  check(again.has_value());
  check(manifest::encode_manifest(*again) == encoded);
  return 0;
}
