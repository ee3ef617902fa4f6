// ota::mqtt in libota: broker URLs, the helpers over any Client, and
// connect(), which loads the libmosquitto module (libota-mqtt.so) on first
// use, so that the ota CLI's diff and patch never map libmosquitto and
// OpenSSL (docs/design.md, "Modules").
#include "ota/fleet/mqtt.hpp"

#include <dlfcn.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "core/module_path.hpp"
#include "ota/core/url.hpp"
#include "fleet/mqtt/mqtt_module.hpp"

namespace ota::mqtt {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : milliseconds(0);
}

std::string ms_text(milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// MQTT 5 reason codes (OASIS MQTT 5.0, 2.4), named without libmosquitto.
std::string reason_text(int reason) {
  static const std::pair<int, const char*> kNames[] = {
      {0x80, "Unspecified error"},       {0x81, "Malformed Packet"},
      {0x82, "Protocol Error"},          {0x83, "Implementation specific error"},
      {0x84, "Unsupported Protocol Version"}, {0x85, "Client Identifier not valid"},
      {0x86, "Bad User Name or Password"}, {0x87, "Not authorized"},
      {0x88, "Server unavailable"},      {0x89, "Server busy"},
      {0x8A, "Banned"},                  {0x8B, "Server shutting down"},
      {0x8C, "Bad authentication method"}, {0x8D, "Keep Alive timeout"},
      {0x8E, "Session taken over"},      {0x8F, "Topic Filter invalid"},
      {0x90, "Topic Name invalid"},      {0x93, "Receive Maximum exceeded"},
      {0x94, "Topic Alias invalid"},     {0x95, "Packet too large"},
      {0x97, "Quota exceeded"},          {0x99, "Payload format invalid"},
      {0x9A, "Retain not supported"},    {0x9B, "QoS not supported"},
      {0x9C, "Use another server"},      {0x9D, "Server moved"},
      {0x9F, "Connection rate exceeded"}};
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", reason & 0xff);
  for (const auto& [code, name] : kNames)
    if (code == reason) return std::string(name) + " (" + hex + ")";
  return std::string("reason ") + hex;
}

std::string disconnect_text(int reason) {
  return reason >= 0x80 ? reason_text(reason) : "connection lost (code " + std::to_string(reason) + ")";
}

Result<ConnectFn> load_mqtt_module() {
  static std::mutex m;
  static ConnectFn entry = nullptr;
  std::lock_guard<std::mutex> lock(m);
  if (entry) return entry;
  OTA_TRY_ASSIGN(auto fn,
                 net::load_module<ConnectFn>(net::module_candidates(net::module_search("OTA_MQTT_MODULE", OTA_BUILD_DIR, OTA_MQTT_BUILD_PATH, OTA_MQTT_INSTALL_PATH, OTA_MODULE_RELATIVE_DIR)), kModuleEntry, "MQTT needs the libota-mqtt.so module (libmosquitto)"));
  entry = fn;
  return entry;
}

}  // namespace

// ---- free functions --------------------------------------------------------

std::string shown_url(std::string_view url) {
  std::string s = redact_url(std::string(url));
  // A malformed URL can hide its userinfo from redact_url() (a '/' in the
  // password): a broker URL has no path, so everything up to the last '@' goes.
  if (const auto at = s.rfind('@'); at != std::string::npos) {
    const auto scheme = s.find("://");
    const auto start = scheme == std::string::npos ? 0 : scheme + 3;
    s = s.substr(0, start) + "***@" + s.substr(at + 1);
  }
  return s;
}

Result<Options> parse_broker_url(std::string_view url, Options base) {
  const auto bad = [&](const std::string& why) {
    return fail(ErrorCode::kUsage, "bad broker URL '" + shown_url(url) + "': " + why +
                                       " (expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT])");
  };
  if (url.find('@') != std::string_view::npos)
    return bad("credentials in the URL are not accepted (use --username and --password-file)");
  bool tls;
  std::string_view rest;
  if (url.substr(0, 7) == "mqtt://") {
    tls = false;
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "mqtts://") {
    tls = true;
    rest = url.substr(8);
  } else {
    return bad("unknown scheme");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("unterminated '['");
    host = rest.substr(1, close - 1);
    const auto after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    const auto colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (host.empty()) return bad("no host");
  if (host.find_first_of("/?#@ ") != std::string_view::npos) return bad("unexpected character in the host");
  int port = tls ? 8883 : 1883;
  if (!port_text.empty()) {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string_view::npos)
      return bad("port is not a number");
    port = std::stoi(std::string(port_text));
    if (port < 1 || port > 65535) return bad("port out of range");
  }
  base.host = std::string(host);
  base.port = port;
  base.tls = tls;
  return base;
}

Result<Options> parse_broker_urls(const std::vector<std::string>& urls, Options base) {
  if (urls.empty()) return fail(ErrorCode::kUsage, "no broker URL");
  if (urls.size() > kMaxBrokers)
    return fail(ErrorCode::kUsage, "at most " + std::to_string(kMaxBrokers) + " broker URLs, not " + std::to_string(urls.size()));
  base.failover.clear();
  OTA_TRY_ASSIGN(Options first, parse_broker_url(urls.front(), base));
  std::vector<Endpoint> seen{{first.host, first.port}};
  for (std::size_t i = 1; i < urls.size(); ++i) {
    OTA_TRY_ASSIGN(Options o, parse_broker_url(urls[i], base));
    if (o.tls != first.tls)
      return fail(ErrorCode::kUsage, "broker URLs mix mqtt:// and mqtts:// ('" + shown_url(urls[i]) +
                                         "'): every node of one deployment takes the same TLS settings");
    Endpoint e{o.host, o.port};
    if (std::find(seen.begin(), seen.end(), e) != seen.end())
      return fail(ErrorCode::kUsage, "broker URL '" + shown_url(urls[i]) + "' is listed twice");
    seen.push_back(e);
    first.failover.push_back(std::move(e));
  }
  return first;
}

Result<Options> parse_broker_urls(std::string_view list, Options base) {
  std::vector<std::string> urls;
  for (std::size_t at = 0;;) {
    const auto comma = list.find(',', at);
    urls.emplace_back(list.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at));
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return parse_broker_urls(urls, std::move(base));
}

namespace {

bool is_loopback_host(std::string host) {
  for (auto& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host == "localhost" || (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0)) return true;
  if (host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace

std::optional<std::string> insecure_password_warning(const Options& o) {
  const bool tls = o.tls || !o.ca_file.empty() || !o.cert_file.empty();
  if (o.password.empty() || tls) return std::nullopt;
  Endpoint remote{o.host, o.port};
  if (is_loopback_host(o.host)) {
    auto it = std::find_if(o.failover.begin(), o.failover.end(), [](const Endpoint& e) { return !is_loopback_host(e.host); });
    if (it == o.failover.end()) return std::nullopt;
    remote = *it;
  }
  return "warning: the broker password for user '" + o.username + "' goes to " + remote.host + ":" +
         std::to_string(remote.port) +
         " without TLS, readable by anyone on the network path; use mqtts:// (and --ca) instead";
}

Result<std::unique_ptr<Client>> connect(const Options& o) {
  OTA_TRY_ASSIGN(auto entry, load_mqtt_module());
  Client* client = nullptr;
  Error error;
  ModuleArgs args{&o, &client, &error};
  if ((entry)(&args) != 0) return fail(std::move(error));
  return std::unique_ptr<Client>(client);
}

namespace {

void give_back(Client& c, std::vector<Event>& taken, std::vector<Event>* skipped) {
  if (taken.empty()) return;
  if (skipped != nullptr) {
    skipped->insert(skipped->end(), std::make_move_iterator(taken.begin()), std::make_move_iterator(taken.end()));
  } else {
    c.requeue(std::move(taken));
  }
  taken.clear();
}

}  // namespace

Status wait_connected(Client& c, milliseconds timeout, std::vector<Event>* skipped) {
  if (c.connected()) return ok();
  const auto deadline = Clock::now() + timeout;
  std::vector<Event> taken;
  std::string last;
  for (;;) {
    auto e = c.next(remaining(deadline));
    if (!e) break;
    if (e->kind == Event::Kind::kConnected) {
      give_back(c, taken, skipped);
      if (e->reason == 0) return ok();
      return fail(ErrorCode::kMqttRefused, "mqtt: the broker refused the connection: " + reason_text(e->reason));
    }
    if (e->kind == Event::Kind::kDisconnected && e->reason != 0) last = disconnect_text(e->reason);
    taken.push_back(std::move(*e));
  }
  give_back(c, taken, skipped);
  if (c.connected()) return ok();
  return fail(ErrorCode::kTimedOut, "mqtt: no connection to the broker within " + ms_text(timeout) +
                                        (last.empty() ? std::string() : " (last error: " + last + ")"));
}

Status publish_confirmed(Client& c, const Message& m, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!c.connected()) OTA_TRY(wait_connected(c, timeout));
  Message q = m;
  q.qos = 1;
  OTA_TRY_ASSIGN(auto mid, c.publish(q));
  std::vector<Event> taken;
  for (;;) {
    auto e = c.next(remaining(deadline));
    if (!e) break;
    if (e->kind == Event::Kind::kPublished && e->mid == mid) {
      c.requeue(std::move(taken));
      if (e->reason >= 0x80)
        return fail(ErrorCode::kMqttRefused,
                    "mqtt: the broker refused the publish to " + m.topic + ": " + reason_text(e->reason));
      return ok();
    }
    taken.push_back(std::move(*e));
  }
  c.requeue(std::move(taken));
  return fail(ErrorCode::kTimedOut,
              "mqtt: no acknowledgement for the publish to " + m.topic + " within " + ms_text(timeout));
}

Result<std::optional<std::string>> read_retained(Client& c, const std::string& topic, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!c.connected()) OTA_TRY(wait_connected(c, timeout));
  // Whatever is queued already belongs to the caller (and may hold an older
  // retained copy of topic from one of its subscriptions).
  std::vector<Event> taken;
  while (auto e = c.next(milliseconds(0))) taken.push_back(std::move(*e));
  const bool had = c.subscribed(topic);
  // The broker sends retained documents on a new subscription only.
  Status st = had ? c.unsubscribe(topic) : ok();
  if (st) st = c.subscribe(topic, 1);
  if (!st) {
    c.requeue(std::move(taken));
    return fail(std::move(st).error());
  }
  std::optional<std::string> found;
  for (;;) {
    auto e = c.next(remaining(deadline));
    if (!e) break;
    if (e->kind == Event::Kind::kMessage && e->retained && e->message.topic == topic) {
      found = e->message.payload;
      if (had) taken.push_back(std::move(*e));
      break;
    }
    taken.push_back(std::move(*e));
  }
  if (!had) (void)c.unsubscribe(topic);  // best effort: a lost connection drops it anyway
  c.requeue(std::move(taken));
  return found;
}

Status publish_retained_checked(Client& c, const Message& m, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Message q = m;
  q.retain = true;
  q.qos = 1;
  OTA_TRY(publish_confirmed(c, q, timeout));
  // The broker stored the document before its PUBACK and answers a later
  // SUBSCRIBE with it right after the SUBACK: a short window is enough.
  const auto window = std::min(remaining(deadline), milliseconds(3000));
  auto back = read_retained(c, m.topic, window);
  if (!back) return fail(std::move(back).error().with_context("mqtt: reading back " + m.topic));
  const bool holds = m.payload.empty() ? !back->has_value() : (back->has_value() && **back == m.payload);
  if (holds) return ok();
  if (!c.connected())
    return fail(ErrorCode::kMqtt, "mqtt: the connection dropped while reading back " + m.topic);
  if (back->has_value())
    return fail(ErrorCode::kMqttRefused, "mqtt: the broker acknowledged the publish to " + m.topic +
                                             " but holds a different document (refused by its ACL, or replaced?)");
  return fail(ErrorCode::kMqttRefused, "mqtt: the broker acknowledged the publish to " + m.topic +
                                           " but does not hold it (refused by its ACL?)");
}

}  // namespace ota::mqtt
