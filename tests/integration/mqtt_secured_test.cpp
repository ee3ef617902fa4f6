// ota::mqtt against a real mosquitto with the secured example configuration
// of examples/mosquitto: passwords, ACL, session takeover, TLS client
// certificates.
#include "integration/mqtt_helpers.hpp"

namespace ota::mqtt {
namespace {

// ---- the secured example configuration (examples/mosquitto) ---------------

class SecuredMqtt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MosquittoOptions mo;
    mo.secured = true;
    mo.fleet = "fleet1";
    mo.devices = {"dev-001", "dev-002"};
    broker_ = new Mosquitto(dir_->path(), mo);
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete dir_;
  }

  static Options as(const std::string& user) {
    Options o;
    o.port = broker_->port();
    o.username = user;
    o.password = broker_->password(user);
    o.connect_timeout_s = 5;
    return o;
  }
  static Options tls_as(const std::string& user) {
    Options o = as(user);
    o.port = broker_->tls_port();
    o.tls = true;
    o.ca_file = broker_->ca_file();
    o.cert_file = broker_->cert_file(user);
    o.key_file = broker_->key_file(user);
    return o;
  }

  static TempDir* dir_;
  static Mosquitto* broker_;
};
TempDir* SecuredMqtt::dir_ = nullptr;
Mosquitto* SecuredMqtt::broker_ = nullptr;

TEST_F(SecuredMqtt, DeviceReportsItsStateAndReadsItsFleetsCampaign) {
  auto release = connected_client(as("release"));
  auto st = publish_retained_checked(*release, msg("ota/fleet1/campaigns/c1", R"({"campaign":"c1"})"), 5s);
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_TRUE(publish_retained_checked(*release, msg("ota/fleet2/campaigns/c9", "other fleet"), 5s));

  auto controller = connected_client(as("controller"));
  ASSERT_TRUE(controller->subscribe("ota/+/devices/#", 1));

  auto device = connected_client(as("dev-001"));
  auto doc = read_retained(*device, "ota/fleet1/campaigns/c1", 5s);
  ASSERT_TRUE(doc) << doc.error().message;
  ASSERT_TRUE(doc->has_value());
  EXPECT_EQ(**doc, R"({"campaign":"c1"})");

  // Another fleet's campaign never reaches the device (mosquitto 2.0.11
  // grants the subscription and filters the messages on delivery).
  auto foreign = read_retained(*device, "ota/fleet2/campaigns/c9", 500ms);
  ASSERT_TRUE(foreign) << foreign.error().message;
  EXPECT_FALSE(foreign->has_value());

  st = publish_confirmed(*device, msg("ota/fleet1/devices/dev-001/state", "downloading"), 5s);
  ASSERT_TRUE(st) << st.error().message;
  auto seen = next_message(*controller, 5s);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->message.topic, "ota/fleet1/devices/dev-001/state");
  EXPECT_EQ(seen->message.payload, "downloading");
}

TEST_F(SecuredMqtt, DevicePublishingACampaignIsDetectedAsRefused) {
  auto release = connected_client(as("release"));
  ASSERT_TRUE(publish_retained_checked(*release, msg("ota/fleet1/campaigns/c2", "genuine"), 5s));

  auto device = connected_client(as("dev-002"));
  // mosquitto 2.0.11 refuses an ACL-denied MQTT 5 publish in its PUBACK.
  auto acked = publish_confirmed(*device, msg("ota/fleet1/campaigns/c2", "forged"), 5s);
  ASSERT_FALSE(acked);
  EXPECT_EQ(acked.error().code, ErrorCode::kMqttRefused);
  EXPECT_NE(acked.error().message.find("Not authorized (0x87)"), std::string::npos) << acked.error().message;
  auto st = publish_retained_checked(*device, msg("ota/fleet1/campaigns/c2", "forged"), 5s);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kMqttRefused) << st.error().message;
  EXPECT_NE(st.error().message.find("ota/fleet1/campaigns/c2"), std::string::npos) << st.error().message;

  // Another device's state topic is refused too.
  st = publish_retained_checked(*device, msg("ota/fleet1/devices/dev-001/state", "forged"), 5s);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kMqttRefused) << st.error().message;

  auto back = read_retained(*release, "ota/fleet1/campaigns/c2", 5s);
  ASSERT_TRUE(back && back->has_value());
  EXPECT_EQ(**back, "genuine");
  ASSERT_TRUE(publish_retained_checked(*release, msg("ota/fleet1/campaigns/c2", "revised"), 5s));
}

// The read-back needs read access: a device may write its state topic but
// not read it (examples/mosquitto/acl), so the broker acknowledges the publish
// and the check cannot find the document.
TEST_F(SecuredMqtt, ReadBackWithoutReadAccessIsReportedAsNotHeld) {
  auto device = connected_client(as("dev-001"));
  auto st = publish_retained_checked(*device, msg("ota/fleet1/devices/dev-001/state", "idle"), 5s);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kMqttRefused);
  EXPECT_NE(st.error().message.find("acknowledged the publish to ota/fleet1/devices/dev-001/state but does not hold it"),
            std::string::npos)
      << st.error().message;
  // It was stored all the same: the controller reads it.
  auto controller = connected_client(as("controller"));
  auto back = read_retained(*controller, "ota/fleet1/devices/dev-001/state", 5s);
  ASSERT_TRUE(back && back->has_value());
  EXPECT_EQ(**back, "idle");
}

TEST_F(SecuredMqtt, WrongPasswordIsRefusedWithoutShowingIt) {
  Options o = as("dev-001");
  o.password = "Sesame-wrong-9f3b2c";
  auto c = must_connect(o);
  auto st = wait_connected(*c, 5s);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kMqttRefused) << st.error().message;
  EXPECT_EQ(st.error().message.find("Sesame"), std::string::npos) << st.error().message;
  EXPECT_FALSE(c->connected());
}

// use_username_as_clientid (examples/mosquitto/mosquitto.conf): a device that
// asks for another device's client id gets its own user name as client id,
// so it cannot take the other's session over, disconnect it or fire its will.
TEST_F(SecuredMqtt, ADeviceCannotTakeOverAnotherDevicesSession) {
  auto controller = connected_client(as("controller"));
  ASSERT_TRUE(controller->subscribe("ota/fleet1/devices/+/status", 1));
  Options o1 = as("dev-001");
  o1.client_id = "dev-001";
  o1.will = Message{"ota/fleet1/devices/dev-001/status", "offline", 1, false, 0, {}};
  auto victim = connected_client(o1);

  Options o2 = as("dev-002");
  o2.client_id = "dev-001";
  auto intruder = connected_client(o2);
  EXPECT_TRUE(intruder->connected());
  // No will: the first connection was not taken over.
  EXPECT_FALSE(next_message(*controller, 1500ms)) << broker_->log();
  EXPECT_TRUE(victim->connected());
  // dev-001 still works.
  auto st = publish_confirmed(*victim, msg("ota/fleet1/devices/dev-001/status", "online"), 5s);
  ASSERT_TRUE(st) << st.error().message;
  auto seen = next_message(*controller, 5s);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->message.payload, "online");
  // The intruder is dev-002 to the ACL: dev-001's topics stay closed to it.
  auto forged = publish_confirmed(*intruder, msg("ota/fleet1/devices/dev-001/status", "forged"), 5s);
  EXPECT_FALSE(forged);
  EXPECT_FALSE(next_message(*controller, 500ms));
  intruder->stop();
  victim->stop();
}

TEST_F(SecuredMqtt, TlsWithAClientCertificate) {
  auto device = connected_client(tls_as("dev-001"));
  EXPECT_TRUE(device->connected());
  auto st = publish_confirmed(*device, msg("ota/fleet1/devices/dev-001/state", "tls"), 5s);
  ASSERT_TRUE(st) << st.error().message;

  // require_certificate: without one the handshake fails and no session starts.
  Options o = tls_as("dev-001");
  o.cert_file.clear();
  o.key_file.clear();
  auto no_cert = must_connect(o);
  auto refused = wait_connected(*no_cert, 1500ms);
  ASSERT_FALSE(refused);
  EXPECT_FALSE(no_cert->connected());
}

}  // namespace
}  // namespace ota::mqtt
