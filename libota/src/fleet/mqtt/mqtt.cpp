// ota::mqtt over libmosquitto (libota/include/ota/fleet/mqtt.hpp).
//
// Threads: libmosquitto's network thread (mosquitto_loop_start) runs the
// callbacks, which only fill the event queue and record acknowledgements.
// libmosquitto's loop retries lost connections on its own, but ends its thread
// on errors it considers fatal (a MQTT 5 CONNACK refusal, a protocol or TLS
// error); a small supervisor thread per client joins it and starts it again
// after a backoff, and switches to MQTT 3.1.1 when a broker refuses MQTT 5.
// With failover endpoints, the supervisor does every reconnection itself: a
// lost connection ends libmosquitto's loop at once (on_disconnect marks the
// client disconnected), and after Options::failover_after_s without a
// connection the supervisor connects to the next endpoint.
#include "ota/fleet/mqtt.hpp"
#include "fleet/mqtt/mqtt_module.hpp"
#include "fleet/mqtt/mosquitto_support.hpp"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace ota::mqtt {

namespace {

using namespace detail;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class MosquittoClient final : public Client {
 public:
  explicit MosquittoClient(Options o) : o_(std::move(o)) {
    endpoints_.push_back({o_.host, o_.port});
    endpoints_.insert(endpoints_.end(), o_.failover.begin(), o_.failover.end());
  }

  ~MosquittoClient() override {
    stop();
    if (mosq_ != nullptr) mosquitto_destroy(mosq_);
  }

  MosquittoClient(const MosquittoClient&) = delete;
  MosquittoClient& operator=(const MosquittoClient&) = delete;

  Status start() {
    for (const auto& e : endpoints_) {
      if (e.host.empty()) return fail(ErrorCode::kUsage, "mqtt: no broker host");
      if (e.port < 1 || e.port > 65535) return fail(ErrorCode::kUsage, "mqtt: bad broker port " + std::to_string(e.port));
    }
    if (endpoints_.size() > kMaxBrokers) return fail(ErrorCode::kUsage, "mqtt: too many brokers");
    if (o_.failover_after_s < 1 || o_.failover_after_s > 3600)
      return fail(ErrorCode::kUsage, "mqtt: failover_after_s must be 1..3600");
    disconnected_since_ = Clock::now();
    if (o_.keepalive_s != 0 && (o_.keepalive_s < 5 || o_.keepalive_s > 65535))
      return fail(ErrorCode::kUsage, "mqtt: keepalive must be 0 or 5..65535 seconds");
    if (o_.cert_file.empty() != o_.key_file.empty())
      return fail(ErrorCode::kUsage, "mqtt: a TLS client certificate needs its key file, and the other way round");
    OTA_TRY(check_readable(o_.ca_file, "CA file"));
    OTA_TRY(check_readable(o_.cert_file, "certificate file"));
    OTA_TRY(check_readable(o_.key_file, "key file"));

    const std::string id = o_.client_id.empty() ? random_client_id() : o_.client_id;
    errno = 0;
    mosq_ = mosquitto_new(id.c_str(), o_.clean_start, this);
    if (mosq_ == nullptr) {
      if (errno == ENOMEM) return fail(ErrorCode::kOutOfMemory, "mqtt: out of memory");
      return fail(ErrorCode::kUsage, "mqtt: invalid client id '" + id + "'");
    }
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(mosq_, &MosquittoClient::on_connect);
    mosquitto_disconnect_v5_callback_set(mosq_, &MosquittoClient::on_disconnect);
    mosquitto_publish_v5_callback_set(mosq_, &MosquittoClient::on_publish);
    mosquitto_message_v5_callback_set(mosq_, &MosquittoClient::on_message);
    mosquitto_subscribe_v5_callback_set(mosq_, &MosquittoClient::on_subscribe);
    mosquitto_unsubscribe_v5_callback_set(mosq_, &MosquittoClient::on_unsubscribe);
    // 1 s, 4 s, 9 s, ... up to 30 s between attempts (exponential: delay * n^2).
    mosquitto_reconnect_delay_set(mosq_, 1, 30, true);

    if (!o_.username.empty()) {
      const int rc = mosquitto_username_pw_set(mosq_, o_.username.c_str(),
                                               o_.password.empty() ? nullptr : o_.password.c_str());
      if (rc != MOSQ_ERR_SUCCESS) return fail(ErrorCode::kUsage, "mqtt: invalid user name '" + o_.username + "'");
    } else if (!o_.password.empty()) {
      return fail(ErrorCode::kUsage, "mqtt: a password needs a user name");
    }

    if (o_.tls || !o_.ca_file.empty() || !o_.cert_file.empty()) {
      if (o_.ca_file.empty()) mosquitto_int_option(mosq_, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
      const auto opt = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
      const int rc = mosquitto_tls_set(mosq_, opt(o_.ca_file), nullptr, opt(o_.cert_file), opt(o_.key_file), nullptr);
      if (rc != MOSQ_ERR_SUCCESS) return fail(ErrorCode::kMqtt, "mqtt: TLS set-up failed: " + mosq_error(rc));
    }

    if (o_.will) OTA_TRY(set_will(/*v5=*/true));
    OTA_TRY(set_connect_properties(/*v5=*/true));

    const int rc = mosquitto_connect_async(mosq_, o_.host.c_str(), o_.port, o_.keepalive_s);
    if (rc == MOSQ_ERR_SUCCESS) {
      const int lrc = mosquitto_loop_start(mosq_);
      if (lrc != MOSQ_ERR_SUCCESS)
        return fail(ErrorCode::kMqtt, "mqtt: cannot start the network thread: " + mosq_error(lrc));
      loop_started_ = true;
    } else if (rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_EAI || rc == MOSQ_ERR_CONN_LOST) {
      // Refused, unresolved, or closed by the broker while sending CONNECT
      // (a broker still starting or restarting) at once. libmosquitto's loop
      // does not retry a first connection that never got going (2.0.11): the
      // supervisor does.
      std::lock_guard lock(mu_);
      restart_ = true;
    } else {
      return fail(ErrorCode::kMqtt, "mqtt: cannot connect to " + endpoint() + ": " + mosq_error(rc));
    }
    supervisor_ = std::thread([this] { supervise(); });
    return ok();
  }

  Result<int> publish(const Message& m) override {
    if (m.topic.empty()) return fail(ErrorCode::kUsage, "mqtt: publish without a topic");
    if (m.qos < 0 || m.qos > 2) return fail(ErrorCode::kUsage, "mqtt: QoS must be 0, 1 or 2");
    if (m.payload.size() > static_cast<std::size_t>(INT_MAX))
      return fail(ErrorCode::kLimitExceeded, "mqtt: payload too large for " + m.topic);
    Properties props;
    if (protocol_.load() == MQTT_PROTOCOL_V5) OTA_TRY(add_properties(props, m));
    int mid = 0;
    const int rc = mosquitto_publish_v5(mosq_, &mid, m.topic.c_str(), static_cast<int>(m.payload.size()),
                                        m.payload.data(), m.qos, m.retain, props.list);
    switch (rc) {
      case MOSQ_ERR_SUCCESS:
        return mid;
      case MOSQ_ERR_NO_CONN:
        // libmosquitto queues QoS 1/2 messages while offline (it says
        // NO_CONN all the same) and sends them on reconnection; its kPublished
        // event follows then. QoS 0 is dropped, and nothing goes out after stop().
        if (m.qos > 0 && mid != 0 && !stopped()) return mid;
        return fail(ErrorCode::kMqtt, "mqtt: not connected to " + endpoint() + " (publish to " + m.topic + ")");
      case MOSQ_ERR_INVAL:
      case MOSQ_ERR_MALFORMED_UTF8:
        return fail(ErrorCode::kUsage, "mqtt: invalid topic '" + m.topic + "'");
      case MOSQ_ERR_OVERSIZE_PACKET:
      case MOSQ_ERR_PAYLOAD_SIZE:
        return fail(ErrorCode::kLimitExceeded, "mqtt: the message to " + m.topic + " exceeds the broker's packet size limit");
      case MOSQ_ERR_QOS_NOT_SUPPORTED:
        return fail(ErrorCode::kMqttRefused, "mqtt: the broker does not support QoS " + std::to_string(m.qos));
      case MOSQ_ERR_NOMEM:
        return fail(ErrorCode::kOutOfMemory, "mqtt: out of memory");
      default:
        return fail(ErrorCode::kMqtt, "mqtt: publish to " + m.topic + " failed: " + mosq_error(rc));
    }
  }

  Status subscribe(const std::string& filter, int qos) override {
    if (qos < 0 || qos > 2) return fail(ErrorCode::kUsage, "mqtt: QoS must be 0, 1 or 2");
    if (mosquitto_sub_topic_check(filter.c_str()) != MOSQ_ERR_SUCCESS)
      return fail(ErrorCode::kUsage, "mqtt: invalid topic filter '" + filter + "'");
    {
      std::lock_guard lock(mu_);
      filters_[filter] = qos;
    }
    if (!connected_.load()) return ok();  // renewed by on_connect
    auto ack = request_ack([&](int* mid) { return mosquitto_subscribe_v5(mosq_, mid, filter.c_str(), qos, 0, nullptr); });
    if (!ack) return fail(ack.error().with_context("mqtt: subscribe to " + filter));
    if (*ack && **ack >= 0x80) {
      std::lock_guard lock(mu_);
      filters_.erase(filter);
      return fail(ErrorCode::kMqttRefused, "mqtt: the broker refused the subscription to " + filter + ": " +
                                               reason_text(protocol_.load() == MQTT_PROTOCOL_V5 ? **ack : 0x80));
    }
    return ok();
  }

  Status unsubscribe(const std::string& filter) override {
    {
      std::lock_guard lock(mu_);
      filters_.erase(filter);
    }
    if (!connected_.load()) return ok();
    auto ack = request_ack([&](int* mid) { return mosquitto_unsubscribe_v5(mosq_, mid, filter.c_str(), nullptr); });
    if (!ack) return fail(ack.error().with_context("mqtt: unsubscribe from " + filter));
    return ok();
  }

  std::optional<Event> next(milliseconds timeout) override {
    std::unique_lock lock(mu_);
    if (!events_cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
    Event e = std::move(events_.front());
    events_.pop_front();
    uncount(e);
    return e;
  }

  // Events the caller already took: put back whatever the bounds say.
  void requeue(std::vector<Event> events) override {
    std::lock_guard lock(mu_);
    for (const auto& e : events) count(e);
    events_.insert(events_.begin(), std::make_move_iterator(events.begin()), std::make_move_iterator(events.end()));
    events_cv_.notify_all();
  }

  Drops dropped() const override {
    std::lock_guard lock(mu_);
    return drops_;
  }

  bool subscribed(const std::string& filter) const override {
    std::lock_guard lock(mu_);
    return filters_.count(filter) != 0;
  }

  bool connected() const override { return connected_.load(); }

  bool stopped() const {
    std::lock_guard lock(mu_);
    return stopped_;
  }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_ || mosq_ == nullptr) return;
      stopped_ = true;
      stopping_ = true;
    }
    supervisor_cv_.notify_all();
    {
      std::lock_guard lock(ack_mu_);
      stopping_flag_.store(true);
      ack_cv_.notify_all();
    }
    // Reason 0 (normal disconnection): the broker discards the will. Before
    // the join too: a network thread that is still running then ends, so the
    // supervisor cannot wait for it forever.
    mosquitto_disconnect_v5(mosq_, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
    if (supervisor_.joinable()) supervisor_.join();
    const bool was_connected = connected_.load();
    // Again, in case the supervisor reconnected meanwhile.
    mosquitto_disconnect_v5(mosq_, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
    // Connected: the thread sends DISCONNECT and returns. Otherwise it may be
    // sleeping between attempts (up to 30 s): cancel it.
    mosquitto_loop_stop(mosq_, !was_connected);
    connected_.store(false);
  }

 private:
  // Sends a SUBSCRIBE/UNSUBSCRIBE through send(&mid) and waits for its
  // acknowledgement: the first reason code (nullopt when the connection
  // dropped first; the filter is renewed on reconnect).
  template <typename Send>
  Result<std::optional<int>> request_ack(Send send) {
    int mid = 0;
    std::unique_lock lock(ack_mu_);
    const std::uint64_t generation = generation_.load();
    // ack_mu_ is held while libmosquitto queues the packet, so the
    // acknowledgement callback cannot miss that this id is awaited.
    const int rc = send(&mid);
    if (rc == MOSQ_ERR_NO_CONN) return std::optional<int>{};
    if (rc == MOSQ_ERR_NOMEM) return fail(ErrorCode::kOutOfMemory, "out of memory");
    if (rc != MOSQ_ERR_SUCCESS) return fail(ErrorCode::kMqtt, mosq_error(rc));
    awaited_.insert(mid);
    const auto deadline = Clock::now() + std::chrono::seconds(std::max(1, o_.connect_timeout_s));
    const bool done = ack_cv_.wait_until(lock, deadline, [&] {
      return acks_.count(mid) != 0 || generation_.load() != generation || stopping_flag_.load();
    });
    awaited_.erase(mid);
    if (auto it = acks_.find(mid); it != acks_.end()) {
      const int reason = it->second;
      acks_.erase(it);
      return std::optional<int>{reason};
    }
    if (!done) {
      return fail(ErrorCode::kTimedOut, "no acknowledgement from " + endpoint() + " within " +
                                            std::to_string(std::max(1, o_.connect_timeout_s)) + " s");
    }
    return std::optional<int>{};
  }

  void record_ack(int mid, int reason) {
    std::lock_guard lock(ack_mu_);
    if (awaited_.count(mid) == 0) return;  // a renewal from on_connect
    acks_[mid] = reason;
    ack_cv_.notify_all();
  }

  static std::size_t bytes_of(const Event& e) { return e.message.payload.size() + e.message.topic.size(); }

  void count(const Event& e) {  // mu_ held
    if (e.kind != Event::Kind::kMessage) return;
    ++queued_messages_;
    queued_bytes_ += bytes_of(e);
  }

  void uncount(const Event& e) {  // mu_ held
    if (e.kind != Event::Kind::kMessage) return;
    --queued_messages_;
    queued_bytes_ -= bytes_of(e);
  }

  // Control events always; a message only within the queue's bounds.
  void push(Event e) {
    std::lock_guard lock(mu_);
    if (e.kind == Event::Kind::kMessage &&
        (queued_messages_ >= o_.max_queued_events || queued_bytes_ + bytes_of(e) > o_.max_queued_bytes)) {
      ++drops_.overflow;
      return;
    }
    count(e);
    events_.push_back(std::move(e));
    events_cv_.notify_all();
  }

  void count_oversized() {
    std::lock_guard lock(mu_);
    ++drops_.oversized;
  }

  // MQTT 5 CONNECT properties: a Maximum Packet Size, so that a conforming
  // broker never sends a packet the client would drop (max_payload plus room
  // for the topic, up to 64 KiB, and properties). libmosquitto 2.0 keeps the
  // properties given to mosquitto_connect_bind_v5() for every later
  // (re)connection, async ones included, and has no other setter: the call
  // with no host stores them and fails in its argument check before any
  // connection attempt. For MQTT 3.1.1 (no properties) they are cleared.
  Status set_connect_properties(bool v5) {
    Properties props;
    if (v5) {
      const std::uint64_t limit = std::min<std::uint64_t>(std::uint64_t{o_.max_payload} + 65536 + 4096, 268435455);
      if (mosquitto_property_add_int32(&props.list, MQTT_PROP_MAXIMUM_PACKET_SIZE, static_cast<std::uint32_t>(limit)) !=
          MOSQ_ERR_SUCCESS)
        return fail(ErrorCode::kOutOfMemory, "mqtt: cannot add the maximum packet size property");
    }
    const int rc = mosquitto_connect_bind_v5(mosq_, nullptr, o_.port, o_.keepalive_s, nullptr, props.list);
    if (rc != MOSQ_ERR_INVAL)
      return fail(ErrorCode::kInternal, "mqtt: unexpected result setting the CONNECT properties: " + mosq_error(rc));
    return ok();
  }

  Status set_will(bool v5) {
    const Message& w = *o_.will;
    if (w.payload.size() > static_cast<std::size_t>(INT_MAX))
      return fail(ErrorCode::kLimitExceeded, "mqtt: last will payload too large");
    int rc;
    if (v5) {
      Properties props;
      OTA_TRY(add_properties(props, w));
      rc = mosquitto_will_set_v5(mosq_, w.topic.c_str(), static_cast<int>(w.payload.size()), w.payload.data(), w.qos,
                                 w.retain, props.list);
      if (rc == MOSQ_ERR_SUCCESS) props.release();  // owned by libmosquitto now
    } else {
      mosquitto_will_clear(mosq_);
      rc = mosquitto_will_set(mosq_, w.topic.c_str(), static_cast<int>(w.payload.size()), w.payload.data(), w.qos,
                              w.retain);
    }
    if (rc == MOSQ_ERR_NOMEM) return fail(ErrorCode::kOutOfMemory, "mqtt: out of memory");
    if (rc != MOSQ_ERR_SUCCESS)
      return fail(ErrorCode::kUsage, "mqtt: invalid last will for topic '" + w.topic + "': " + mosq_error(rc));
    return ok();
  }

  // Restarts the network thread after libmosquitto ended it (see the top),
  // or starts it once a first connection attempt gets going.
  void supervise() {
    int attempts = 0;
    std::unique_lock lock(mu_);
    for (;;) {
      supervisor_cv_.wait(lock, [&] { return stopping_ || restart_; });
      if (stopping_) return;
      restart_ = false;
      const bool fallback = std::exchange(fallback_, false);
      if (connected_once_since_restart_) attempts = 0;
      connected_once_since_restart_ = false;
      lock.unlock();
      if (loop_started_) {
        mosquitto_loop_stop(mosq_, false);  // joins: the thread is on its way out
        loop_started_ = false;
      }
      if (fallback) {
        mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        protocol_.store(MQTT_PROTOCOL_V311);
        if (o_.will) (void)set_will(/*v5=*/false);
        (void)set_connect_properties(/*v5=*/false);
      }
      // 1 s, 4 s, 9 s, ... 30 s, as libmosquitto's own reconnection.
      const int n = std::min(attempts++, 5);
      const auto delay = fallback ? std::chrono::seconds(0) : std::chrono::seconds(std::min(30, (n + 1) * (n + 1)));
      lock.lock();
      if (supervisor_cv_.wait_for(lock, delay, [&] { return stopping_; })) return;
      // Failover: this endpoint had its time; the next one (its own backoff).
      bool next = false;
      if (failover() && Clock::now() - disconnected_since_ >= std::chrono::seconds(o_.failover_after_s)) {
        current_ = (current_ + 1) % endpoints_.size();
        disconnected_since_ = Clock::now();
        attempts = 0;
        next = true;
      }
      const Endpoint target = endpoints_[current_];
      lock.unlock();
      const int crc = next ? mosquitto_connect_async(mosq_, target.host.c_str(), target.port, o_.keepalive_s)
                           : mosquitto_reconnect_async(mosq_);
      if (crc == MOSQ_ERR_SUCCESS && mosquitto_loop_start(mosq_) == MOSQ_ERR_SUCCESS) {
        loop_started_ = true;
        lock.lock();
      } else {
        lock.lock();
        restart_ = true;  // refused at once again: try later
      }
    }
  }

  // ---- callbacks (network thread) ----

  static void on_connect(mosquitto* mosq, void* obj, int rc, int /*flags*/, const mosquitto_property* /*props*/) {
    auto* self = static_cast<MosquittoClient*>(obj);
    const bool v5 = self->protocol_.load() == MQTT_PROTOCOL_V5;
    if (rc != 0) {
      if (v5 && rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
        // An MQTT 3.1.1 broker: the supervisor reconnects in 3.1.1.
        std::lock_guard lock(self->mu_);
        self->fallback_ = true;
        self->suppress_disconnect_ = true;
        return;
      }
      Event e;
      e.kind = Event::Kind::kConnected;
      e.reason = v5 ? rc : v5_connack(rc);
      self->push(std::move(e));
      return;
    }
    std::vector<std::pair<std::string, int>> filters;
    {
      std::lock_guard lock(self->mu_);
      self->connected_once_since_restart_ = true;
      self->disconnected_since_ = Clock::time_point::max();
      filters.assign(self->filters_.begin(), self->filters_.end());
    }
    self->connected_.store(true);
    // Renew every subscription: retained documents are delivered again.
    for (const auto& [filter, qos] : filters) mosquitto_subscribe_v5(mosq, nullptr, filter.c_str(), qos, 0, nullptr);
    Event e;
    e.kind = Event::Kind::kConnected;
    e.broker = self->endpoint();
    self->push(std::move(e));
  }

  static void on_disconnect(mosquitto* mosq, void* obj, int rc, const mosquitto_property* /*props*/) {
    const int err = errno;  // of the failure that ended the connection
    auto* self = static_cast<MosquittoClient*>(obj);
    self->connected_.store(false);
    {
      std::lock_guard lock(self->ack_mu_);
      self->generation_.fetch_add(1);
      self->ack_cv_.notify_all();
    }
    bool suppress;
    {
      std::lock_guard lock(self->mu_);
      suppress = std::exchange(self->suppress_disconnect_, false);
      // loop_forever() also returns on any error when errno is EPROTO.
      bool ends = ends_network_thread(rc) || (rc == MOSQ_ERR_ERRNO && err == EPROTO);
      if (!self->stopping_ && self->failover()) {
        // The supervisor reconnects (and may move on to the next broker):
        // marked disconnected, libmosquitto's loop ends instead of retrying.
        if (self->disconnected_since_ == Clock::time_point::max()) self->disconnected_since_ = Clock::now();
        mosquitto_disconnect_v5(mosq, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
        ends = true;
      }
      if (!self->stopping_ && ends) {
        self->restart_ = true;
        self->supervisor_cv_.notify_all();
      }
    }
    if (suppress) return;
    Event e;
    e.kind = Event::Kind::kDisconnected;
    e.reason = rc;
    self->push(std::move(e));
  }

  static void on_publish(mosquitto* /*mosq*/, void* obj, int mid, int reason, const mosquitto_property* /*props*/) {
    Event e;
    e.kind = Event::Kind::kPublished;
    e.mid = mid;
    e.reason = reason;
    static_cast<MosquittoClient*>(obj)->push(std::move(e));
  }

  static void on_message(mosquitto* /*mosq*/, void* obj, const mosquitto_message* m, const mosquitto_property* props) {
    auto* self = static_cast<MosquittoClient*>(obj);
    if (m->payloadlen > 0 && static_cast<std::size_t>(m->payloadlen) > self->o_.max_payload) {
      self->count_oversized();  // never copied, never queued
      return;
    }
    Event e;
    e.kind = Event::Kind::kMessage;
    e.message.topic = m->topic != nullptr ? m->topic : "";
    if (m->payload != nullptr && m->payloadlen > 0)
      e.message.payload.assign(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen));
    e.message.qos = m->qos;
    e.message.retain = m->retain;
    e.retained = m->retain;
    std::uint32_t expiry = 0;
    if (mosquitto_property_read_int32(props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false) != nullptr)
      e.message.expiry_s = expiry;
    char* name = nullptr;
    char* value = nullptr;
    for (const mosquitto_property* p = mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
         p != nullptr; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
      e.message.user_properties.emplace_back(name != nullptr ? name : "", value != nullptr ? value : "");
      std::free(name);
      std::free(value);
      name = value = nullptr;
    }
    self->push(std::move(e));
  }

  static void on_subscribe(mosquitto* /*mosq*/, void* obj, int mid, int count, const int* granted,
                           const mosquitto_property* /*props*/) {
    static_cast<MosquittoClient*>(obj)->record_ack(mid, count > 0 && granted != nullptr ? granted[0] : 0x80);
  }

  static void on_unsubscribe(mosquitto* /*mosq*/, void* obj, int mid, const mosquitto_property* /*props*/) {
    static_cast<MosquittoClient*>(obj)->record_ack(mid, 0);
  }

  // The broker now tried or connected to, as "host:port".
  std::string endpoint() const {
    std::lock_guard lock(mu_);
    const Endpoint& e = endpoints_[current_];
    return e.host + ":" + std::to_string(e.port);
  }
  bool failover() const { return endpoints_.size() > 1; }

  const Options o_;
  std::vector<Endpoint> endpoints_;  // o_.host:o_.port, then o_.failover; fixed after construction
  mosquitto* mosq_ = nullptr;
  std::atomic<bool> connected_{false};
  std::atomic<int> protocol_{MQTT_PROTOCOL_V5};

  // Events, subscriptions and the supervisor's state.
  mutable std::mutex mu_;
  std::condition_variable events_cv_;
  std::condition_variable supervisor_cv_;
  std::deque<Event> events_;
  std::size_t queued_messages_ = 0;  // kMessage events in events_
  std::size_t queued_bytes_ = 0;     // and their payload and topic bytes
  Drops drops_;
  std::map<std::string, int> filters_;
  bool stopped_ = false;
  bool stopping_ = false;
  bool restart_ = false;
  bool fallback_ = false;
  bool suppress_disconnect_ = false;
  bool connected_once_since_restart_ = false;
  bool loop_started_ = false;  // start() and then the supervisor only
  std::size_t current_ = 0;     // index in endpoints_
  Clock::time_point disconnected_since_{};  // without a connection since (failover)
  std::thread supervisor_;

  // SUBACK/UNSUBACK awaited by subscribe()/unsubscribe().
  std::mutex ack_mu_;
  std::condition_variable ack_cv_;
  std::set<int> awaited_;
  std::map<int, int> acks_;
  std::atomic<std::uint64_t> generation_{0};  // bumped on every disconnection
  std::atomic<bool> stopping_flag_{false};  // stopping_, for the acknowledgement waits
};

}  // namespace

}  // namespace ota::mqtt

// The module's one entry point (net/mqtt_module.hpp).
extern "C" __attribute__((visibility("default"))) int ota_mqtt_connect_v1(const ota::mqtt::ModuleArgs* a) {
  using namespace ota::mqtt;
  try {
    lib_init_once();
    auto client = std::make_unique<MosquittoClient>(*a->options);
    if (auto st = client->start(); !st) {
      *a->error = st.error();
      return 1;
    }
    *a->out = client.release();
    return 0;
  } catch (const std::exception& e) {
    *a->error = ota::Error{ota::ErrorCode::kInternal, std::string("mqtt module: ") + e.what()};
    return 1;
  }
}
