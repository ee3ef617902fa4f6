// campaign::publish (ota/fleet/publish.hpp) on the golden release through the
// in-process broker: what is published, the copy in the store, the revision
// after the one the broker holds, and nothing published for a bundle or keys
// that do not verify.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "golden/fixtures.hpp"
#include "ota/core/hash.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/publish.hpp"
#include "support/fake_mqtt.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

struct Publisher {
  test::TempDir dir;
  test::FakeBroker broker;
  int connects = 0;

  Publisher() {
    for (std::uint8_t n : {std::uint8_t{0}, std::uint8_t{1}}) {
      auto k = golden::fixture_key(n);
      if (!k || !keys::write_key_pair(dir.file("release-" + std::to_string(n)), *k, std::nullopt))
        throw std::runtime_error("cannot write the fixture keys");
    }
    ::mkdir(dir.file("store").c_str(), 0755);
  }

  campaign::PublishRequest request(const std::string& bundle = "release.otb") {
    campaign::PublishRequest r;
    r.bundle_path = golden::path(bundle);
    r.trust_path = golden::path("root-1.json");
    r.fleet = "meters";
    r.id = "golden";
    r.url = "http://updates.example.com/bundles";
    r.store_dir = dir.file("store");
    r.campaign_dir = dir.file("campaigns/golden");
    r.waves = {100, 10000};
    r.key_paths = {dir.file("release-1.key")};
    r.now = test::at(golden::kNow);
    r.timeout = std::chrono::seconds(5);
    return r;
  }

  campaign::Connect connect() {
    return [this]() -> Result<std::unique_ptr<mqtt::Client>> {
      ++connects;
      return broker.connect(mqtt::Options{});
    };
  }

  // The retained document on the campaign topic, verified the way a device does.
  Result<campaign::Verified> held() {
    auto m = broker.retained_matching(campaign::campaign_topic("meters", "golden"));
    if (m.size() != 1) return fail(ErrorCode::kInternal, "no retained campaign");
    OTA_TRY_ASSIGN(auto d, campaign::parse_document(m[0].payload));
    const Bytes b = golden::file("root-1.json");
    OTA_TRY_ASSIGN(auto env, trust::parse_envelope(std::string(b.begin(), b.end())));
    OTA_TRY_ASSIGN(auto store, trust::TrustStore::from_anchor(env));
    store.update_all(d.roots);
    return campaign::verify_document(store, d, test::at(golden::kNow));
  }
};

TEST(Publish, PublishesASignedCampaignForTheVerifiedBundle) {
  Publisher p;
  auto out = campaign::publish(p.request(), p.connect());
  ASSERT_TRUE(out) << out.error().message;
  const Bytes bundle = golden::file("release.otb");
  const std::string stored = to_hex(content_hash(bundle)) + ".otb";
  const auto& c = out->campaign;
  EXPECT_EQ(c.revision, 1u);
  EXPECT_EQ(c.version, "2.0.0");
  EXPECT_EQ(c.manifest_hash, content_hash(golden::file("manifest.json")));
  EXPECT_EQ(c.bundle_size, bundle.size());
  EXPECT_EQ(c.url, "http://updates.example.com/bundles/" + stored);
  EXPECT_EQ(c.created, test::at(golden::kNow));
  EXPECT_EQ(out->topic, campaign::campaign_topic("meters", "golden"));
  EXPECT_EQ(out->directory, p.dir.file("campaigns/golden"));
  EXPECT_TRUE(test::read_bytes(p.dir.file("store/" + stored)) == bundle) << "the store holds the bundle, named by its hash";
  EXPECT_EQ(p.connects, 1);
  auto v = p.held();
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->campaign.manifest_hash, c.manifest_hash);
  EXPECT_EQ(v->control.state, campaign::RunState::kRunning);

  // Published again without a revision: one more than the broker holds.
  auto again = campaign::publish(p.request(), p.connect());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->campaign.revision, 2u);
  auto r3 = p.request();
  r3.revision = 7;
  auto seventh = campaign::publish(r3, p.connect());
  ASSERT_TRUE(seventh) << seventh.error().message;
  EXPECT_EQ(seventh->campaign.revision, 7u);
}

// Nothing is published, nor the broker even connected, for a bundle that does not verify.
TEST(Publish, ABundleThatDoesNotVerifyIsNeverPublished) {
  Publisher p;
  auto out = campaign::publish(p.request("tampered-payload-full.otb"), p.connect());
  EXPECT_EQ(test::code_of(out), ErrorCode::kPayloadMismatch);
  EXPECT_NE(test::message_of(out).find("tampered-payload-full.otb"), std::string::npos) << test::message_of(out);
  EXPECT_EQ(p.connects, 0);
  EXPECT_TRUE(p.dir.list() == std::vector<std::string>({"release-0.key", "release-0.pub", "release-1.key",
                                                         "release-1.pub", "store"}));
}

// Key 0 is revoked by root 2, which the bundle carries: its signature does not count.
TEST(Publish, KeysThatDoNotMeetTheThresholdPublishNothing) {
  Publisher p;
  auto r = p.request();
  r.key_paths = {p.dir.file("release-0.key")};
  auto out = campaign::publish(r, p.connect());
  EXPECT_EQ(test::code_of(out), ErrorCode::kKeyRevoked) << test::message_of(out);
  EXPECT_NE(test::message_of(out).find("campaign signatures"), std::string::npos);
  EXPECT_TRUE(p.broker.retained_matching("#").empty());
}

}  // namespace
}  // namespace ota
