// The MQTT suites' helpers (mqtt_test, mqtt_secured_test): clients that
// connect or throw, the next event of a kind, messages.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "ota/fleet/mqtt.hpp"
#include "support/mosquitto.hpp"
#include "support/temp_dir.hpp"

namespace ota::mqtt {
namespace {  // each test file its own copy

using namespace std::chrono_literals;
using test::Mosquitto;
using test::MosquittoOptions;
using test::TempDir;

inline std::unique_ptr<Client> must_connect(Options o) {
  auto c = connect(o);
  if (!c) throw std::runtime_error("connect: " + c.error().message);
  return std::move(*c);
}

inline std::unique_ptr<Client> connected_client(Options o) {
  auto c = must_connect(std::move(o));
  auto st = wait_connected(*c, 5s);
  if (!st) throw std::runtime_error("wait_connected: " + st.error().message);
  return c;
}

inline Options anon(const Mosquitto& b, std::string id = {}) {
  Options o;
  o.port = b.port();
  o.client_id = std::move(id);
  o.connect_timeout_s = 5;
  return o;
}

// The next message event (other events are dropped), or nullopt.
inline std::optional<Event> next_message(Client& c, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = c.next(left);
    if (!e) return std::nullopt;
    if (e->kind == Event::Kind::kMessage) return e;
  }
}

inline std::optional<Event> next_of_kind(Client& c, Event::Kind kind, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto e = c.next(left);
    if (!e) return std::nullopt;
    if (e->kind == kind) return e;
  }
}

inline Message msg(std::string topic, std::string payload, bool retain = false) {
  Message m;
  m.topic = std::move(topic);
  m.payload = std::move(payload);
  m.retain = retain;
  return m;
}

}  // namespace
}  // namespace ota::mqtt
