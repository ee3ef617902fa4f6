// SBOMs and security advisories: the well-formedness check of CycloneDX and
// SPDX documents, the sbom payload and the security field of a manifest
// (built, signed, parsed back), and the campaign's copy of the advisory.
#include <gtest/gtest.h>

#include <string>

#include "ota/fleet/campaign.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/sbom.hpp"
#include "support/device_sim.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::code_of;

std::string data(const std::string& name) {
  auto b = read_file(std::string(OTA_SOURCE_DIR) + "/tests/data/sbom/" + name);
  EXPECT_TRUE(b);
  return b ? test::to_text(*b) : std::string();
}

TEST(Sbom, CycloneDxAndSpdxAreSummarised) {
  auto c = sbom::check_sbom(test::to_bytes(data("fw.cdx.json")));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->format, manifest::SbomFormat::kCycloneDx);
  EXPECT_EQ(c->spec_version, "1.5");
  EXPECT_EQ(c->name, "board-fw");
  ASSERT_EQ(c->components.size(), 3u);
  EXPECT_EQ(c->components[1].name, "openssl");
  EXPECT_EQ(c->components[1].version, "3.0.15");

  auto s = sbom::check_sbom(test::to_bytes(data("fw.spdx.json")));
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->format, manifest::SbomFormat::kSpdx);
  EXPECT_EQ(s->spec_version, "SPDX-2.3");
  EXPECT_EQ(s->name, "board-fw-1.1.0");
  ASSERT_EQ(s->components.size(), 2u);
  EXPECT_EQ(s->components[0].version, "6.1.115");
}

TEST(Sbom, AnythingElseIsRefusedWithoutQuotingIt) {
  const std::string cdx = data("fw.cdx.json"), spdx = data("fw.spdx.json");
  auto edit = [](std::string t, const std::string& from, const std::string& to) {
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  const std::vector<std::pair<std::string, ErrorCode>> cases = {
      {"", ErrorCode::kMalformed},
      {"[]", ErrorCode::kMalformed},
      {"{\"name\": \"x\"}", ErrorCode::kMalformed},
      {cdx.substr(0, cdx.size() / 2), ErrorCode::kMalformed},
      {edit(cdx, "\"CycloneDX\"", "\"CycloneDY\""), ErrorCode::kMalformed},
      {edit(cdx, "\"1.5\"", "\"2.0\""), ErrorCode::kUnsupported},
      {edit(cdx, "\"name\": \"busybox\"", "\"nom\": \"busybox\""), ErrorCode::kMalformed},
      {edit(cdx, "\"components\": [", "\"components\": [7, "), ErrorCode::kMalformed},
      {edit(spdx, "SPDXRef-DOCUMENT", "SPDXRef-OTHER"), ErrorCode::kMalformed},
      {edit(spdx, "SPDX-2.3", "SPDX-3.0"), ErrorCode::kUnsupported},
      {edit(spdx, "\"creationInfo\"", "\"creation\""), ErrorCode::kMalformed},
      {std::string(100, '[') + std::string(100, ']'), ErrorCode::kMalformed},
  };
  for (const auto& [text, code] : cases) {
    auto r = sbom::check_sbom(test::to_bytes(text));
    EXPECT_EQ(code_of(r), code) << text.substr(0, 80);
    if (!r && text.size() > 20) {
      EXPECT_EQ(r.error().message.find(text.substr(0, 20)), std::string::npos);
    }
  }
  EXPECT_EQ(code_of(sbom::check_sbom(Bytes(manifest::kMaxSbomBytes + 1, ' '))), ErrorCode::kLimitExceeded);
}

TEST(AdvisoryIds, FollowTheirSchemes) {
  for (const char* id : {"CVE-2026-1234", "CVE-2024-123456", "GHSA-abcd-efgh-ijkl", "DSA-5555-1", "RHSA-2026:0001", "OSV-2026-1"})
    EXPECT_TRUE(manifest::is_valid_advisory_id(id)) << id;
  for (const char* id : {"", "CV", "CVE-26-1234", "CVE-2026-12", "CVE-2026-12a4", "cve 2026", "-CVE", "1CVE-2026-1234",
                         "CVE-2026-1234/x"})
    EXPECT_FALSE(manifest::is_valid_advisory_id(id)) << id;
}

class SbomBundle : public testing::Test {
 protected:
  void SetUp() override {
    image_ = test::structured_bytes(32 * 1024, 81);
    test::write_bytes(dir_.file("new.img"), image_);
    test::write_bytes(dir_.file("fw.cdx.json"), test::to_bytes(data("fw.cdx.json")));
  }
  test::Keyring keys_{1};
  test::TempDir dir_;
  Bytes image_;
};

TEST_F(SbomBundle, TheSbomAndTheAdvisoryAreSignedWithTheManifest) {
  auto o = test::small_bundle(dir_.file("new.img"), {}, "1.1.0", {"board"});
  o.sbom_path = dir_.file("fw.cdx.json");
  o.security = manifest::Security{"Fixes a heap overflow in the TLS stack.\nUpdate at once.", {"CVE-2026-1234", "GHSA-abcd-efgh-ijkl"}};
  auto staged = bundle::stage(o);
  ASSERT_TRUE(staged) << staged.error().message;
  const auto& m = (*staged)->manifest();
  ASSERT_EQ(m.payloads.size(), 2u);
  EXPECT_EQ(m.payloads[1].kind, manifest::PayloadKind::kSbom);
  EXPECT_EQ(m.payloads[1].name, "sbom.cdx.json");
  EXPECT_EQ(m.payloads[1].sbom_format, manifest::SbomFormat::kCycloneDx);
  auto back = manifest::parse_manifest((*staged)->manifest_bytes());
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->security);
  EXPECT_EQ(back->security->ids, o.security->ids);
  EXPECT_EQ(back->security->advisory, o.security->advisory);
  EXPECT_EQ(back->payloads[1].sbom_format, manifest::SbomFormat::kCycloneDx);

  // A malformed SBOM is refused at build time, naming the file.
  test::write_bytes(dir_.file("bad.json"), test::to_bytes("{\"bomFormat\": \"CycloneDX\"}"));
  o.sbom_path = dir_.file("bad.json");
  auto refused = bundle::stage(o);
  EXPECT_EQ(code_of(refused), ErrorCode::kMalformed);
  EXPECT_NE(test::message_of(refused).find("bad.json"), std::string::npos);

  // A bad advisory is refused.
  o.sbom_path.clear();
  o.security = manifest::Security{"text", {"CVE-20-1"}};
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kMalformed);
  o.security = manifest::Security{"bell\a", {"CVE-2026-1234"}};
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kMalformed);
  o.security = manifest::Security{"text", {"CVE-2026-1234", "CVE-2026-1234"}};
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kMalformed);
  o.security = manifest::Security{std::string("caf\xc3", 4), {"CVE-2026-1234"}};  // cut UTF-8
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kMalformed);
}

TEST(SbomManifest, AnSbomIsNeverAnInstallablePayload) {
  manifest::Manifest m = test::simple_manifest(Bytes(10, 1));
  manifest::Payload s = test::payload_for("sbom.spdx.json", Bytes(100, 1), 4096, manifest::PayloadKind::kSbom);
  s.sbom_format = manifest::SbomFormat::kSpdx;
  const manifest::Payload full = m.payloads[0];
  m.payloads = {s};
  EXPECT_EQ(code_of(manifest::validate(m)), ErrorCode::kMalformed) << "only an sbom: nothing to install";
  m.payloads = {full, s};
  ASSERT_TRUE(manifest::validate(m));
  auto x = m;
  x.payloads[1].compression = manifest::Compression::kZstd;
  EXPECT_EQ(code_of(manifest::validate(x)), ErrorCode::kMalformed);
  x = m;
  x.payloads.push_back(s);
  x.payloads[2].name = "sbom2.json";
  EXPECT_EQ(code_of(manifest::validate(x)), ErrorCode::kMalformed) << "two sboms";
  x = m;
  x.payloads[0].sbom_format = manifest::SbomFormat::kSpdx;
  EXPECT_EQ(code_of(manifest::validate(x)), ErrorCode::kMalformed) << "a format on a full payload";
  // An agent that predates the kind refuses it by name (kUnsupported); this
  // one parses it back.
  auto back = manifest::parse_manifest(manifest::encode_manifest(m));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->payloads[1].kind, manifest::PayloadKind::kSbom);
}

}  // namespace
}  // namespace ota
