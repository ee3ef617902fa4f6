// Internal to the MQTT module (ota_mqtt, src/fleet/mqtt/mqtt.cpp): what the
// client needs from libmosquitto besides the client itself: its one-time
// initialisation, error and reason texts, the MQTT 3.1.1 CONNACK codes in
// MQTT 5 terms, which errors end libmosquitto's network thread, client ids,
// and an owned MQTT 5 property list.
#pragma once

#include <mosquitto.h>

#include <string>
#include <utility>

#include "ota/core/error.hpp"
#include "ota/fleet/mqtt.hpp"

namespace ota::mqtt::detail {

// mosquitto_lib_init(), once per process.
void lib_init_once();
// "Not authorized (0x87)"
std::string reason_text(int reason);
// A MOSQ_ERR_* as text (errno's text for MOSQ_ERR_ERRNO).
std::string mosq_error(int rc);
// MQTT 3.1.1 CONNACK return codes in MQTT 5 terms (others unchanged).
int v5_connack(int rc);
// The errors after which mosquitto_loop_forever() returns, ending the thread
// mosquitto_loop_start() started (libmosquitto 2.0 lib/loop.c).
bool ends_network_thread(int rc);
// "ota-" and 16 random hex digits.
std::string random_client_id();

// An owned MQTT 5 property list.
struct Properties {
  mosquitto_property* list = nullptr;
  Properties() = default;
  Properties(const Properties&) = delete;
  Properties& operator=(const Properties&) = delete;
  ~Properties() { mosquitto_property_free_all(&list); }
  mosquitto_property* release() { return std::exchange(list, nullptr); }
};

// Message expiry and user properties of m (MQTT 5 only).
Status add_properties(Properties& props, const Message& m);
// ok for an empty path or a readable file; else kIo naming `what`.
Status check_readable(const std::string& path, const char* what);

}  // namespace ota::mqtt::detail
