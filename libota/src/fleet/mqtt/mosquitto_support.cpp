#include "fleet/mqtt/mosquitto_support.hpp"

#include <mqtt_protocol.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

namespace ota::mqtt::detail {

void lib_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

namespace {
std::string hex_byte(int v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v & 0xff);
  return buf;
}
}  // namespace

std::string reason_text(int reason) { return std::string(mosquitto_reason_string(reason)) + " (" + hex_byte(reason) + ")"; }

std::string mosq_error(int rc) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(errno);
  return mosquitto_strerror(rc);
}

int v5_connack(int rc) {
  switch (rc) {
    case 1: return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
    case 2: return MQTT_RC_CLIENTID_NOT_VALID;
    case 3: return MQTT_RC_SERVER_UNAVAILABLE;
    case 4: return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
    case 5: return MQTT_RC_NOT_AUTHORIZED;
    default: return rc;
  }
}

bool ends_network_thread(int rc) {
  switch (rc) {
    case MOSQ_ERR_NOMEM:
    case MOSQ_ERR_PROTOCOL:
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_NOT_FOUND:
    case MOSQ_ERR_TLS:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_NOT_SUPPORTED:
    case MOSQ_ERR_AUTH:
    case MOSQ_ERR_ACL_DENIED:
    case MOSQ_ERR_UNKNOWN:
    case MOSQ_ERR_EAI:
    case MOSQ_ERR_PROXY:
      return true;
    default:
      return false;
  }
}

std::string random_client_id() {
  std::random_device rd;
  std::string id = "ota-";
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) id += hex[rd() & 15];
  return id;
}

Status add_properties(Properties& props, const Message& m) {
  if (m.expiry_s != 0) {
    if (mosquitto_property_add_int32(&props.list, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, m.expiry_s) != MOSQ_ERR_SUCCESS)
      return fail(ErrorCode::kOutOfMemory, "mqtt: cannot add the message expiry property");
  }
  for (const auto& [name, value] : m.user_properties) {
    const int rc = mosquitto_property_add_string_pair(&props.list, MQTT_PROP_USER_PROPERTY, name.c_str(), value.c_str());
    if (rc == MOSQ_ERR_MALFORMED_UTF8 || rc == MOSQ_ERR_INVAL)
      return fail(ErrorCode::kUsage, "mqtt: user property '" + name + "' is not valid UTF-8 text");
    if (rc != MOSQ_ERR_SUCCESS) return fail(ErrorCode::kOutOfMemory, "mqtt: cannot add a user property");
  }
  return ok();
}

Status check_readable(const std::string& path, const char* what) {
  if (path.empty() || ::access(path.c_str(), R_OK) == 0) return ok();
  return fail(ErrorCode::kIo, std::string("mqtt: cannot read the ") + what + " " + path + ": " + std::strerror(errno));
}

}  // namespace ota::mqtt::detail
