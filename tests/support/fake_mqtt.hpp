// An in-process MQTT broker for unit tests: retained messages, topic filters
// with + and #, QoS 1 acknowledgements at once; each FakeClient queues its
// events like the real client's network thread would. Not a broker test:
// integration tests use a real mosquitto (tests/support/mosquitto.hpp).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ota/fleet/mqtt.hpp"

namespace ota::test {

inline bool topic_matches(const std::string& filter, const std::string& topic) {
  std::size_t f = 0, t = 0;
  while (f < filter.size()) {
    if (filter[f] == '#') return true;
    const std::size_t fe = filter.find('/', f), te = topic.find('/', t);
    const std::string fl = filter.substr(f, fe == std::string::npos ? std::string::npos : fe - f);
    if (t > topic.size()) return false;
    const std::string tl = topic.substr(t, te == std::string::npos ? std::string::npos : te - t);
    if (fl != "+" && fl != tl) return false;
    if (fe == std::string::npos) return te == std::string::npos;
    if (te == std::string::npos) return filter.substr(fe + 1) == "#";
    f = fe + 1;
    t = te + 1;
  }
  return t >= topic.size();
}

class FakeBroker;

class FakeClient final : public mqtt::Client {
 public:
  FakeClient(FakeBroker& b, mqtt::Options o) : broker_(b), options_(std::move(o)) {
    events_.push_back(mqtt::Event{mqtt::Event::Kind::kConnected, {}, false, 0, 0});
  }
  ~FakeClient() override;
  Result<int> publish(const mqtt::Message& m) override;
  Status subscribe(const std::string& filter, int) override;
  Status unsubscribe(const std::string& filter) override {
    std::lock_guard<std::mutex> lock(mu_);
    subs_.erase(filter);
    return ok();
  }
  std::optional<mqtt::Event> next(std::chrono::milliseconds timeout) override {
    if (auto e = take_requeued()) return e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!events_.empty()) {
        auto e = events_.front();
        events_.pop_front();
        return e;
      }
    }
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(2)));
    return std::nullopt;
  }
  bool connected() const override { return !stopped_; }
  void stop() override;
  void deliver(const mqtt::Message& m, bool retained) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : subs_)
      if (topic_matches(s, m.topic)) {
        events_.push_back(mqtt::Event{mqtt::Event::Kind::kMessage, m, retained, 0, 0});
        return;
      }
  }
  const mqtt::Options& options() const { return options_; }

 private:
  FakeBroker& broker_;
  mqtt::Options options_;
  std::mutex mu_;
  std::deque<mqtt::Event> events_;
  std::set<std::string> subs_;
  int mid_ = 0;
  bool stopped_ = false;
};

class FakeBroker {
 public:
  // Publishes as a client other than the daemon (a controller, an attacker).
  void publish(const mqtt::Message& m) {
    std::vector<FakeClient*> to;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(m);
      if (m.retain) {
        if (m.payload.empty()) retained_.erase(m.topic);
        else retained_[m.topic] = m;
      }
      to = clients_;
    }
    for (auto* c : to) c->deliver(m, false);
  }
  std::vector<mqtt::Message> retained_matching(const std::string& filter) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<mqtt::Message> out;
    for (const auto& [t, m] : retained_)
      if (topic_matches(filter, t)) out.push_back(m);
    return out;
  }
  // Every message published so far, in order.
  std::vector<mqtt::Message> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  std::unique_ptr<mqtt::Client> connect(const mqtt::Options& o) {
    auto c = std::make_unique<FakeClient>(*this, o);
    std::lock_guard<std::mutex> lock(mu_);
    clients_.push_back(c.get());
    ++connects_;
    return c;
  }
  void detach(FakeClient* c) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = clients_.begin(); it != clients_.end(); ++it)
      if (*it == c) {
        clients_.erase(it);
        return;
      }
  }
  int connects() const { return connects_; }
  // Forgets every retained message and the log (no client may be connected).
  void reset() {
    std::lock_guard<std::mutex> lock(mu_);
    retained_.clear();
    log_.clear();
  }

 private:
  std::mutex mu_;
  std::map<std::string, mqtt::Message> retained_;
  std::vector<mqtt::Message> log_;
  std::vector<FakeClient*> clients_;
  int connects_ = 0;
};

inline FakeClient::~FakeClient() { broker_.detach(this); }
inline Result<int> FakeClient::publish(const mqtt::Message& m) {
  broker_.publish(m);
  std::lock_guard<std::mutex> lock(mu_);
  ++mid_;
  if (m.qos > 0) events_.push_back(mqtt::Event{mqtt::Event::Kind::kPublished, {}, false, mid_, 0});
  return mid_;
}
inline Status FakeClient::subscribe(const std::string& filter, int) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    subs_.insert(filter);
  }
  for (const auto& m : broker_.retained_matching(filter)) deliver(m, true);
  return ok();
}
inline void FakeClient::stop() {
  stopped_ = true;
  broker_.detach(this);
}

}  // namespace ota::test
