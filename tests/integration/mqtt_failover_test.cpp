// ota::mqtt with several brokers (the nodes of a cluster; mqtt.hpp,
// "Failover"): URL lists, and a client that moves to the next of two real
// mosquittos when the one it is on dies, renews its subscriptions there and
// sends what it queued meanwhile.
#include "integration/mqtt_helpers.hpp"

namespace ota::mqtt {
namespace {

TEST(MqttUrls, AListBecomesTheFirstBrokerAndItsFailover) {
  auto one = parse_broker_urls("mqtt://a.example:1884");
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->host, "a.example");
  EXPECT_EQ(one->port, 1884);
  EXPECT_TRUE(one->failover.empty());
  auto two = parse_broker_urls("mqtts://a.example,mqtts://[::1]:18883");
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(two->host, "a.example");
  EXPECT_EQ(two->port, 8883);
  EXPECT_TRUE(two->tls);
  EXPECT_EQ(two->failover, (std::vector<Endpoint>{{"::1", 18883}}));
  auto listed = parse_broker_urls(std::vector<std::string>{"mqtt://h:1", "mqtt://h:2", "mqtt://i:1"});
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->failover, (std::vector<Endpoint>{{"h", 2}, {"i", 1}}));
  std::string many;
  for (int i = 0; i <= static_cast<int>(kMaxBrokers); ++i) many += (i ? "," : "") + std::string("mqtt://h:") + std::to_string(i + 1);
  for (const std::string bad : {"mqtt://a,mqtts://b", "mqtt://a:1,mqtt://a:1", "mqtt://a,", ",mqtt://a", many.c_str(),
                                "mqtt://a,mqtt://u:secret@b"}) {
    auto r = parse_broker_urls(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kUsage) << bad;
    EXPECT_EQ(r.error().message.find("secret"), std::string::npos) << r.error().message;
  }
}

TEST(MqttPasswordWarning, AnyNetworkHostInTheListIsWarnedAbout) {
  auto o = parse_broker_urls("mqtt://127.0.0.1:1883,mqtt://broker.example:1883");
  ASSERT_TRUE(o);
  o->username = "u";
  o->password = "p";
  auto w = insecure_password_warning(*o);
  ASSERT_TRUE(w);
  EXPECT_NE(w->find("broker.example"), std::string::npos);
  auto local = parse_broker_urls("mqtt://127.0.0.1:1883,mqtt://localhost:1884");
  ASSERT_TRUE(local);
  local->username = "u";
  local->password = "p";
  EXPECT_FALSE(insecure_password_warning(*local));
}

TEST(MqttFailover, AClientMovesToTheNextBrokerWhenItsOwnDiesAndBackWhenThatOneDies) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/a");
  std::filesystem::create_directories(dir.path() + "/b");
  Mosquitto a(dir.path() + "/a"), b(dir.path() + "/b");
  const std::string at_a = "127.0.0.1:" + std::to_string(a.port()), at_b = "127.0.0.1:" + std::to_string(b.port());
  Options o = anon(a, "failover-client");
  o.failover = {{"127.0.0.1", b.port()}};
  o.failover_after_s = 1;
  auto c = must_connect(o);
  auto up = next_of_kind(*c, Event::Kind::kConnected, 10s);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->reason, 0);
  EXPECT_EQ(up->broker, at_a);
  ASSERT_TRUE(c->subscribe("ota/f/campaigns/+", 1));

  a.kill9();
  ASSERT_TRUE(next_of_kind(*c, Event::Kind::kDisconnected, 5s));
  // Queued while no broker is reachable, sent to the next one.
  auto queued = c->publish(msg("ota/f/devices/d/state", "queued"));
  ASSERT_TRUE(queued) << queued.error().message;
  const auto lost = std::chrono::steady_clock::now();
  auto moved = next_of_kind(*c, Event::Kind::kConnected, 15s);
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->reason, 0);
  EXPECT_EQ(moved->broker, at_b);
  EXPECT_LT(std::chrono::steady_clock::now() - lost, 10s);
  auto acked = next_of_kind(*c, Event::Kind::kPublished, 10s);
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->mid, *queued);
  // The subscription was renewed on b.
  auto other = connected_client(anon(b, "failover-publisher"));
  ASSERT_TRUE(publish_confirmed(*other, msg("ota/f/campaigns/c1", "on-b"), 5s));
  auto got = next_message(*c, 5s);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->message.payload, "on-b");
  other->stop();

  // Round robin: a comes back, b dies, the client returns to a.
  a.restart();
  b.kill9();
  auto back = next_of_kind(*c, Event::Kind::kConnected, 15s);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->broker, at_a);
  c->stop();
}

TEST(MqttFailover, AFirstBrokerThatIsDownFromTheStartIsSkipped) {
  TempDir dir;
  Mosquitto b(dir.path());
  Options o = anon(b, "skips-the-first");
  const int dead = test::free_loopback_port();
  o.failover = {{o.host, o.port}};
  o.port = dead;
  o.failover_after_s = 1;
  auto c = must_connect(o);
  auto up = next_of_kind(*c, Event::Kind::kConnected, 15s);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->broker, "127.0.0.1:" + std::to_string(b.port()));
  EXPECT_TRUE(c->connected());
  c->stop();
}

}  // namespace
}  // namespace ota::mqtt
