// ota::mqtt (libmosquitto) against a real mosquitto on loopback ports
// (tests/support/mosquitto.hpp): URLs, acknowledgements, retained documents,
// reconnection after a broker crash, last wills, MQTT 3.1.1 fallback and the
// incoming limits.
#include "integration/mqtt_helpers.hpp"

namespace ota::mqtt {
namespace {

// ---- URL parsing ---------------------------------------------------------

TEST(MqttUrl, ParsesSchemesHostsAndPorts) {
  auto a = parse_broker_url("mqtt://broker.example");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "broker.example");
  EXPECT_EQ(a->port, 1883);
  EXPECT_FALSE(a->tls);
  auto b = parse_broker_url("mqtts://10.0.0.1:18883");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "10.0.0.1");
  EXPECT_EQ(b->port, 18883);
  EXPECT_TRUE(b->tls);
  auto c = parse_broker_url("mqtts://[::1]");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 8883);
  Options base;
  base.username = "release";
  auto d = parse_broker_url("mqtt://h:1/", base);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->username, "release");
  for (const char* bad : {"http://h", "mqtt://", "mqtt://h:", "mqtt://h:0", "mqtt://h:65536", "mqtt://h:12x",
                          "mqtt://h/path", "mqtts://[::1", "h:1883"}) {
    auto r = parse_broker_url(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kUsage) << bad;
  }
}

// A password in the URL is refused and never shown (security review, issue 14).
TEST(MqttUrl, CredentialsInTheUrlAreRefusedAndNeverEchoed) {
  for (const char* url : {"mqtt://release:Sesame-9f3b@broker.example", "mqtts://u:Sesame-9f3b@10.0.0.1:8883",
                          "mqtt://u:Sesame/9f3b@h:1883", "mqtt://Sesame-9f3b@h", "mqtt://u:Sesame-9f3b@h/x@y"}) {
    auto r = parse_broker_url(url);
    ASSERT_FALSE(r) << url;
    EXPECT_EQ(r.error().code, ErrorCode::kUsage) << url;
    EXPECT_EQ(r.error().message.find("Sesame"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("***@"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("--password-file"), std::string::npos) << r.error().message;
  }
}

// ---- the plain-text password warning --------------------------------------

Options with_password(std::string host, bool tls = false) {
  Options o;
  o.host = std::move(host);
  o.username = "release";
  o.password = "Sesame-9f3b";
  o.tls = tls;
  return o;
}

TEST(MqttPasswordWarning, PasswordWithoutTlsToANetworkHostIsWarnedAbout) {
  for (const char* host : {"broker.example", "10.0.0.1", "192.168.1.20", "::ffff:10.0.0.1", "2001:db8::1",
                           "localhost.example.com", "128.0.0.1"}) {
    auto w = insecure_password_warning(with_password(host));
    ASSERT_TRUE(w) << host;
    EXPECT_NE(w->find(host), std::string::npos) << *w;
    EXPECT_NE(w->find("without TLS"), std::string::npos) << *w;
    EXPECT_EQ(w->find("Sesame"), std::string::npos) << *w;
  }
}

TEST(MqttPasswordWarning, NoWarningWithTlsWithoutPasswordOrOnLoopback) {
  EXPECT_FALSE(insecure_password_warning(with_password("broker.example", /*tls=*/true)));
  Options ca = with_password("broker.example");
  ca.ca_file = "/etc/ota/ca.crt";  // a TLS file means TLS (Options::tls)
  EXPECT_FALSE(insecure_password_warning(ca));
  Options none = with_password("broker.example");
  none.password.clear();
  EXPECT_FALSE(insecure_password_warning(none));
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "localhost.", "a.localhost",
                           "::ffff:127.0.0.1"})
    EXPECT_FALSE(insecure_password_warning(with_password(host))) << host;
}

// ---- anonymous broker ----------------------------------------------------

TEST(Mqtt, PublishQos1IsAcknowledgedAndDeliveredWithProperties) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto sub = connected_client(anon(broker));
  ASSERT_TRUE(sub->subscribe("ota/f/devices/+/state", 1));
  auto pub = connected_client(anon(broker));
  Message m = msg("ota/f/devices/d1/state", std::string("idle\0bytes", 10));
  m.expiry_s = 120;
  m.user_properties = {{"schema", "ota-state/1"}, {"from", "d1"}};
  auto st = publish_confirmed(*pub, m, 5s);
  ASSERT_TRUE(st) << st.error().message;

  auto e = next_message(*sub, 5s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message.topic, m.topic);
  EXPECT_EQ(e->message.payload, m.payload);
  EXPECT_EQ(e->message.qos, 1);
  EXPECT_FALSE(e->retained);
  EXPECT_GT(e->message.expiry_s, 100u);
  EXPECT_LE(e->message.expiry_s, 120u);
  EXPECT_EQ(e->message.user_properties, m.user_properties);

  // publish() itself returns an id that names a kPublished event.
  auto mid = pub->publish(msg("ota/f/devices/d1/state", "x"));
  ASSERT_TRUE(mid);
  auto ack = next_of_kind(*pub, Event::Kind::kPublished, 5s);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->mid, *mid);
  EXPECT_EQ(ack->reason, 0);
}

TEST(Mqtt, ConnectsInTheBackgroundWhenTheBrokerComesUpLater) {
  TempDir dir;
  Mosquitto broker(dir.path());
  Options o = anon(broker);
  broker.stop();
  auto c = must_connect(o);  // returns at once
  EXPECT_FALSE(c->connected());
  auto early = wait_connected(*c, 300ms);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, ErrorCode::kTimedOut);
  broker.restart();
  auto st = wait_connected(*c, 8s);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(c->connected());
}

TEST(Mqtt, RetainedDocumentIsReadBack) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto pub = connected_client(anon(broker));
  auto st = publish_retained_checked(*pub, msg("ota/f/campaigns/c1", R"({"campaign":"c1","rev":1})"), 5s);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_FALSE(pub->subscribed("ota/f/campaigns/c1"));  // the read-back subscription is gone

  auto other = connected_client(anon(broker));
  auto got = read_retained(*other, "ota/f/campaigns/c1", 5s);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, R"({"campaign":"c1","rev":1})");

  auto none = read_retained(*other, "ota/f/campaigns/none", 300ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  // A subscription the caller holds survives read_retained, and the retained
  // document is also left for the caller.
  ASSERT_TRUE(other->subscribe("ota/f/campaigns/c1", 1));
  auto first = next_message(*other, 5s);
  ASSERT_TRUE(first);
  auto again = read_retained(*other, "ota/f/campaigns/c1", 5s);
  ASSERT_TRUE(again && again->has_value());
  EXPECT_TRUE(other->subscribed("ota/f/campaigns/c1"));
  auto left = next_message(*other, 2s);
  ASSERT_TRUE(left);
  EXPECT_EQ(left->message.payload, R"({"campaign":"c1","rev":1})");
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/campaigns/c1", "live"), 5s));
  auto live = next_message(*other, 5s);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->message.payload, "live");
}

TEST(Mqtt, HelpersRequeueEventsThatAreNotTheirs) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto a = connected_client(anon(broker));
  ASSERT_TRUE(a->subscribe("ota/f/campaigns/+/commands", 1));
  auto b = connected_client(anon(broker));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(publish_confirmed(*b, msg("ota/f/campaigns/c1/commands", "cmd" + std::to_string(i)), 5s));
  std::this_thread::sleep_for(200ms);  // all three are queued in a

  // Each helper takes a's queued messages on its way and must put them back.
  ASSERT_TRUE(publish_confirmed(*a, msg("ota/f/devices/a/state", "s"), 5s));
  ASSERT_TRUE(publish_retained_checked(*a, msg("ota/f/campaigns/c2", "doc"), 5s));
  auto r = read_retained(*a, "ota/f/campaigns/c2", 5s);
  ASSERT_TRUE(r && r->has_value());
  ASSERT_TRUE(wait_connected(*a, 1s));
  // In order, none lost (a kConnected event the connection raced with
  // connected_client() may come first: it is not a helper's to take).
  for (int i = 0; i < 3; ++i) {
    auto e = a->next(1s);
    while (e && e->kind == Event::Kind::kConnected) e = a->next(1s);
    ASSERT_TRUE(e) << i;
    ASSERT_EQ(e->kind, Event::Kind::kMessage) << i;
    EXPECT_EQ(e->message.payload, "cmd" + std::to_string(i));
  }
}

TEST(Mqtt, SubscriptionRenewedAfterBrokerCrashAndRestart) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto pub = connected_client(anon(broker));
  auto sub = connected_client(anon(broker));
  ASSERT_TRUE(publish_retained_checked(*pub, msg("ota/f/campaigns/c1", "rev-1"), 5s));
  // Wait for an autosave (autosave_interval 1) after the publish.
  const auto published = std::filesystem::file_time_type::clock::now();
  bool saved = false;
  for (int i = 0; i < 50 && !saved; ++i) {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(broker.db_file(), ec);
    saved = !ec && t > published;
    if (!saved) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(saved) << "no autosave of " << broker.db_file();

  ASSERT_TRUE(sub->subscribe("ota/f/campaigns/+", 1));
  auto first = next_message(*sub, 5s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message.payload, "rev-1");
  EXPECT_TRUE(first->retained);

  broker.kill9();
  auto down = next_of_kind(*sub, Event::Kind::kDisconnected, 5s);
  ASSERT_TRUE(down);
  EXPECT_FALSE(sub->connected());
  ASSERT_TRUE(next_of_kind(*pub, Event::Kind::kDisconnected, 5s));
  // A QoS 1 publish while offline is queued and sent on reconnection.
  auto queued = pub->publish(msg("ota/f/devices/p/state", "queued"));
  ASSERT_TRUE(queued) << queued.error().message;
  auto dropped = pub->publish([] { Message m = msg("ota/f/devices/p/state", "qos0"); m.qos = 0; return m; }());
  ASSERT_FALSE(dropped);
  EXPECT_EQ(dropped.error().code, ErrorCode::kMqtt);
  broker.restart();

  auto up = next_of_kind(*sub, Event::Kind::kConnected, 10s);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->reason, 0);
  // The renewed subscription brings the persisted retained document again.
  auto again = next_message(*sub, 5s);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message.payload, "rev-1");
  EXPECT_TRUE(again->retained);

  // The publisher reconnects too and sends what it queued.
  auto acked = next_of_kind(*pub, Event::Kind::kPublished, 10s);
  ASSERT_TRUE(acked);
  EXPECT_EQ(acked->mid, *queued);
  EXPECT_LT(acked->reason, 0x80);
  // A new publish reaches the subscriber.
  ASSERT_TRUE(wait_connected(*pub, 10s));
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/campaigns/c1", "rev-2", true), 5s));
  auto live = next_message(*sub, 5s);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->message.payload, "rev-2");
  EXPECT_FALSE(live->retained);
}

Message will_message(const std::string& device) {
  Message w = msg("ota/f/devices/" + device + "/status", "offline");
  w.qos = 1;
  w.expiry_s = 600;
  w.user_properties = {{"reason", "connection lost"}};
  return w;
}

TEST(Mqtt, LastWillPublishedWhenTheConnectionDies) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto observer = connected_client(anon(broker));
  ASSERT_TRUE(observer->subscribe("ota/f/devices/+/status", 1));

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A device whose process dies: no DISCONNECT, the socket just closes.
    ::close(ready[0]);
    Options o = anon(broker, "will-device-1");
    o.will = will_message("d1");
    auto c = connect(o);
    if (!c || !wait_connected(**c, 5s)) ::_exit(3);
    const char ok = 'k';
    if (::write(ready[1], &ok, 1) != 1) ::_exit(4);
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  const auto n = ::read(ready[0], &byte, 1);
  ::close(ready[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(n, 1) << "child exit status " << WEXITSTATUS(status);

  auto e = next_message(*observer, 5s);
  ASSERT_TRUE(e) << broker.log();
  EXPECT_EQ(e->message.topic, "ota/f/devices/d1/status");
  EXPECT_EQ(e->message.payload, "offline");
  EXPECT_EQ(e->message.user_properties, will_message("d1").user_properties);
  EXPECT_GT(e->message.expiry_s, 500u);
}

TEST(Mqtt, NoLastWillAfterStop) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto observer = connected_client(anon(broker));
  ASSERT_TRUE(observer->subscribe("ota/f/devices/+/status", 1));
  Options o = anon(broker, "will-device-2");
  o.will = will_message("d2");
  auto c = connected_client(o);
  c->stop();
  EXPECT_FALSE(c->connected());
  c.reset();
  EXPECT_FALSE(next_message(*observer, 1500ms));
  EXPECT_NE(broker.log().find("will-device-2"), std::string::npos);
}

// Observed behaviour of mosquitto 2.0.11: a second connection with the same
// client id takes the session over; the broker closes the first connection
// without a DISCONNECT (no reason 0x8E: the client sees a lost connection)
// and publishes its will (MQTT 5, clean start).
TEST(Mqtt, SessionTakeoverPublishesTheOldConnectionsWill) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto observer = connected_client(anon(broker));
  ASSERT_TRUE(observer->subscribe("ota/f/devices/+/status", 1));
  Options o = anon(broker, "same-id");
  o.will = will_message("d3");
  auto first = connected_client(o);
  Options o2 = anon(broker, "same-id");
  auto second = connected_client(o2);
  auto down = next_of_kind(*first, Event::Kind::kDisconnected, 5s);
  ASSERT_TRUE(down);
  EXPECT_NE(down->reason, 0);
  first->stop();  // else it reconnects in a second and takes the session back
  auto e = next_message(*observer, 2s);
  ASSERT_TRUE(e) << broker.log();
  EXPECT_EQ(e->message.topic, "ota/f/devices/d3/status");
  EXPECT_EQ(e->message.payload, "offline");
  EXPECT_NE(broker.log().find("already connected, closing old connection"), std::string::npos);
  EXPECT_TRUE(second->connected());
}

// ---- a broker that speaks MQTT 3.1.1 only --------------------------------

// Answers CONNECT: protocol level 5 with a 3.1.1 "unacceptable protocol
// version" CONNACK (as a 3.1.1-only broker does), level 4 with success.
class V311OnlyBroker {
 public:
  V311OnlyBroker() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("fake broker: cannot listen");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~V311OnlyBroker() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<int> levels() {
    std::lock_guard lock(mu_);
    return levels_;
  }

 private:
  static bool read_n(int fd, unsigned char* buf, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return false;
      const auto r = ::read(fd, buf + got, n - got);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }
  void run() {
    std::vector<int> open;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      unsigned char h[2];
      std::vector<unsigned char> body;
      if (read_n(c, h, 2) && h[0] == 0x10 && h[1] < 0x80) {
        body.resize(h[1]);
        if (read_n(c, body.data(), body.size()) && body.size() > 6) {
          const int level = body[6];
          {
            std::lock_guard lock(mu_);
            levels_.push_back(level);
          }
          const unsigned char connack[4] = {0x20, 0x02, 0x00, static_cast<unsigned char>(level == 4 ? 0 : 1)};
          if (::write(c, connack, 4) != 4) {
          }
          if (level == 4) {
            open.push_back(c);  // keep it open (keepalive 30 s > the test)
            continue;
          }
        }
      }
      ::close(c);
    }
    for (int c : open) ::close(c);
  }
  int fd_ = -1;
  int port_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<int> levels_;
  std::thread thread_;
};

TEST(Mqtt, FallsBackToMqtt311WhenTheBrokerRefusesMqtt5) {
  V311OnlyBroker broker;
  Options o;
  o.port = broker.port();
  Message w = will_message("d4");  // will properties must not break 3.1.1
  o.will = w;
  auto c = must_connect(o);
  auto st = wait_connected(*c, 5s);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(c->connected());
  const auto levels = broker.levels();
  ASSERT_GE(levels.size(), 2u);
  EXPECT_EQ(levels.front(), 5);
  EXPECT_EQ(levels.back(), 4);
  c->stop();
}

// ---- incoming limits (security review, issue 14) --------------------------

// A retained message above max_payload never reaches the queue; the normal
// one next to it does. The client's CONNECT carries a Maximum Packet Size, so
// mosquitto does not even send the large one (nothing is counted as
// dropped by the client).
TEST(Mqtt, OversizedRetainedMessageIsSkippedAndANormalOneStillArrives) {
  TempDir dir;
  Mosquitto broker(dir.path());
  auto pub = connected_client(anon(broker));
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/campaigns/big", std::string(300u << 10, 'x'), true), 5s));
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/campaigns/small", "normal", true), 5s));

  Options o = anon(broker);
  o.max_payload = 64u << 10;
  auto sub = connected_client(o);
  ASSERT_TRUE(sub->subscribe("ota/f/campaigns/+", 1));
  std::vector<std::string> topics;
  while (auto e = next_message(*sub, 1500ms)) topics.push_back(e->message.topic);
  EXPECT_EQ(topics, std::vector<std::string>{"ota/f/campaigns/small"});
  EXPECT_EQ(sub->dropped().oversized, 0u) << "the broker sent a packet above the client's Maximum Packet Size";
  EXPECT_TRUE(sub->connected());

  // A live message below the limit is delivered, a live one above it is not.
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/campaigns/small", "normal 2", true), 5s));
  auto e = next_message(*sub, 5s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message.payload, "normal 2");
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/campaigns/big", std::string(300u << 10, 'y'), true), 5s));
  EXPECT_FALSE(next_message(*sub, 1000ms));
}

// A subscriber that does not take its events: messages beyond
// max_queued_events (or max_queued_bytes) are dropped and counted, the
// acknowledgements of its own publishes are not.
TEST(Mqtt, EventQueueIsBoundedButKeepsControlEvents) {
  TempDir dir;
  Mosquitto broker(dir.path());
  Options o = anon(broker);
  o.max_queued_events = 5;
  auto sub = connected_client(o);
  ASSERT_TRUE(sub->subscribe("ota/f/devices/+/state", 1));
  auto pub = connected_client(anon(broker));
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/devices/d" + std::to_string(i) + "/state", "s"), 5s));
  // The publisher's acknowledgements do not mean the subscriber has them yet.
  for (int i = 0; i < 500 && sub->dropped().overflow < 15; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(sub->dropped().overflow, 15u);  // 20 sent, 5 kept
  // Its own publish, with the queue full of messages: the kPublished event
  // is queued all the same (publish_confirmed finds it).
  auto own = publish_confirmed(*sub, msg("ota/f/other", "mine"), 5s);
  ASSERT_TRUE(own) << own.error().message;
  int messages = 0;
  while (auto e = next_message(*sub, 1000ms)) ++messages;
  EXPECT_EQ(messages, 5);
  EXPECT_EQ(sub->dropped().overflow, 15u);
  // Drained: messages are queued again.
  ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/devices/d1/state", "again"), 5s));
  auto e = next_message(*sub, 5s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message.payload, "again");

  // The byte bound: three 1000-byte payloads do not fit in 2500 bytes.
  Options b = anon(broker);
  b.max_queued_bytes = 2500;
  auto small = connected_client(b);
  ASSERT_TRUE(small->subscribe("ota/f/devices/+/state", 1));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(publish_confirmed(*pub, msg("ota/f/devices/b/state", std::string(1000, 'b')), 5s));
  for (int i = 0; i < 500 && small->dropped().overflow < 1; ++i) std::this_thread::sleep_for(10ms);
  messages = 0;
  while (auto m = next_message(*small, 500ms)) ++messages;
  EXPECT_EQ(messages, 2);
  EXPECT_EQ(small->dropped().overflow, 1u);
}

}  // namespace
}  // namespace ota::mqtt
