// MQTT client for the campaign protocol (docs/protocol.md): libmosquitto at
// the edge, behind an interface so the controller and the agent core can be
// driven by a fake in unit tests.
//
// Contract:
// - A Client connects in the background and reconnects on its own with
//   backoff; every subscription is renewed on each (re)connect, so retained
//   documents are delivered again after a broker restart.
// - MQTT 5 is asked for first (message expiry, user properties, PUBACK reason
//   codes); a broker that refuses it is spoken to in MQTT 3.1.1.
// - Events (connected, disconnected, message, published) are queued by the
//   network thread and taken by the caller with next(); callers never run on
//   the network thread.
// - publish() returns the message id; the broker's acknowledgement arrives as
//   a kPublished event with that id and the reason code (>= 0x80 is a refusal
//   in MQTT 5). While disconnected, QoS 1/2 messages are queued and sent on
//   reconnection (QoS 0: kMqtt). An acknowledgement is not proof of delivery: a broker may
//   acknowledge a publish its ACL dropped (MQTT 3.1.1 has no way to say), so
//   publishers that must know read the retained document back
//   (publish_retained_checked).
// - Incoming messages are bounded (security review, issue 14): a message whose
//   payload exceeds Options::max_payload is dropped by the network thread,
//   never queued; the CONNECT of an MQTT 5 session carries a Maximum Packet
//   Size (max_payload plus room for the topic and properties), so a
//   conforming broker does not even send it. kMessage events beyond
//   max_queued_events or max_queued_bytes (payload and topic bytes waiting
//   for next()) are dropped too. Drops are counted (Client::dropped()).
//   Control events (kConnected, kDisconnected, kPublished) are never dropped:
//   wait_connected() and publish_confirmed() rely on them, and they are a few
//   bytes each. A dropped QoS 1/2 message is still acknowledged to the broker
//   (it is not redelivered); retained documents arrive again on the next
//   (re)subscription, which is what campaign followers rely on. Events a
//   helper takes and gives back (requeue()) are put back whatever the bounds,
//   so the queue may briefly hold a few more than max_queued_events.
// - Failover (the nodes of a clustered broker): with Options::failover, a
//   client that has had no connection for failover_after_s tries the next
//   endpoint (host, port), then the next, round robin, with the same TLS
//   settings and credentials. Its subscriptions are renewed there; QoS 1/2
//   messages queued while offline are sent there. Without failover, nothing
//   changes: libmosquitto reconnects to the one broker on its own.
// - Passwords and key passphrases never appear in errors or logs, nor does a
//   URL's user:password@ part (parse_broker_url refuses userinfo and never
//   echoes it).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ota/core/error.hpp"

namespace ota::mqtt {

struct Message {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = false;
  std::uint32_t expiry_s = 0;  // MQTT 5 message expiry interval; 0: none
  std::vector<std::pair<std::string, std::string>> user_properties;
};

// One broker address (a node of a cluster).
struct Endpoint {
  std::string host;
  int port = 1883;
  bool operator==(const Endpoint&) const = default;
};

// At most this many brokers in one list (parse_broker_urls).
inline constexpr std::size_t kMaxBrokers = 16;

struct Options {
  std::string host = "127.0.0.1";
  int port = 1883;
  // Further brokers of the same deployment (see Failover in the contract).
  std::vector<Endpoint> failover;
  int failover_after_s = 10;  // without a connection this long: the next endpoint
  bool tls = false;          // mqtts:// or any TLS file given
  std::string ca_file;       // TLS: CA that signed the broker's certificate
  std::string cert_file;     // TLS client certificate (PEM)
  std::string key_file;      // its private key (PEM)
  std::string username;
  std::string password;      // read from a file by the caller; never logged
  std::string client_id;     // empty: a random id
  int keepalive_s = 30;
  bool clean_start = true;
  std::optional<Message> will;  // last will, published by the broker if the connection dies
  int connect_timeout_s = 10;   // wait_connected() limit used by helpers below
  // Incoming limits (see the contract at the top). The defaults leave room
  // above campaign documents (campaign::kMaxDocumentBytes, 256 KiB) and
  // reports (kMaxReportBytes, 16 KiB).
  std::size_t max_payload = 1u << 20;         // bytes; larger messages are dropped
  std::size_t max_queued_events = 1024;       // kMessage events waiting for next()
  std::size_t max_queued_bytes = 16u << 20;   // their payload and topic bytes
};

// Messages the network thread dropped instead of queueing (Client::dropped()).
struct Drops {
  std::uint64_t oversized = 0;  // payload above Options::max_payload
  std::uint64_t overflow = 0;   // the queue was at max_queued_events or max_queued_bytes
};

// A warning when o sends a password without TLS to a host that is not a
// loopback address (127.0.0.0/8, ::1, "localhost"): the password then
// crosses the network in clear text. nullopt when there is no password, when
// TLS is on, or for a loopback host (the password never leaves the machine,
// so a warning there would only teach people to ignore it). The decision is
// taken from o.host alone: no name is resolved. Callers print it on stderr
// before connecting.
std::optional<std::string> insecure_password_warning(const Options& o);

// Parses "mqtt://HOST[:PORT]" (1883) or "mqtts://HOST[:PORT]" (8883) into
// host, port and tls of base; kUsage on anything else. A URL with a
// user:password@ part is refused (credentials come from --username and
// --password-file), and errors show the URL with that part as "***@".
Result<Options> parse_broker_url(std::string_view url, Options base = {});

// A comma-separated list of broker URLs (the nodes of one cluster, at most
// kMaxBrokers): the first sets host, port and tls, the others become
// Options::failover. Every URL must use the same scheme; a duplicate is
// refused (kUsage). A single URL is parse_broker_url.
Result<Options> parse_broker_urls(std::string_view list, Options base = {});
// The same for a list already split (the agent configuration's array).
Result<Options> parse_broker_urls(const std::vector<std::string>& urls, Options base = {});

struct Event {
  enum class Kind { kConnected, kDisconnected, kMessage, kPublished };
  Kind kind = Kind::kMessage;
  Message message;      // kMessage
  bool retained = false;  // kMessage: delivered from the broker's retained store
  int mid = 0;          // kPublished: the id publish() returned
  int reason = 0;       // kPublished: PUBACK reason code; kConnected/kDisconnected: CONNACK/DISCONNECT code
  // kConnected with reason != 0 is a refused connection (the CONNACK code in
  // MQTT 5 terms: 3.1.1 codes 1-5 are mapped to 0x84, 0x85, 0x88, 0x86, 0x87).
  // kDisconnected: 0 after stop(), an MQTT 5 DISCONNECT reason (>= 0x80) sent
  // by the broker, or else a libmosquitto error number (MOSQ_ERR_*).
  std::string broker;   // kConnected (accepted): the broker's "host:port"
};

class Client {
 public:
  virtual ~Client() = default;
  // Publishes; the id names the later kPublished event (QoS 0: no event).
  virtual Result<int> publish(const Message& m) = 0;
  // Subscribes now (when connected) and on every reconnect.
  virtual Status subscribe(const std::string& filter, int qos = 1) = 0;
  virtual Status unsubscribe(const std::string& filter) = 0;
  // The next event, waiting at most timeout; nullopt on timeout.
  virtual std::optional<Event> next(std::chrono::milliseconds timeout) = 0;
  virtual bool connected() const = 0;
  // Disconnects cleanly (no last will) and stops the network thread.
  virtual void stop() = 0;

  // Additions for the helpers below (defaults, so fakes need not override):
  // Puts events a helper took but does not own back at the front of the
  // queue, in their order: the next next() calls return them first. The
  // default keeps them here; an implementation that does not override it
  // returns take_requeued() from next() before its own events.
  virtual void requeue(std::vector<Event> events);
  // Whether filter is one of the subscriptions renewed on reconnect
  // (read_retained restores such a subscription instead of dropping it).
  virtual bool subscribed(const std::string& filter) const;
  // Messages dropped so far by the incoming limits (Options::max_payload,
  // max_queued_events, max_queued_bytes). The default: none.
  virtual Drops dropped() const;

 protected:
  std::optional<Event> take_requeued();

 private:
  std::mutex requeued_mutex_;
  std::deque<Event> requeued_;
};

// libmosquitto. Starts the connection and its network thread; returns at
// once (use wait_connected to block).
Result<std::unique_ptr<Client>> connect(const Options& o);

// Waits until the client reports kConnected (events taken on the way are
// kept for the caller in `skipped` when given, else requeued); returns at
// once when already connected. kMqttRefused when the broker refuses the
// connection (credentials), kTimedOut after timeout.
Status wait_connected(Client& c, std::chrono::milliseconds timeout, std::vector<Event>* skipped = nullptr);

// Publishes at QoS 1 and waits for its acknowledgement; an MQTT 5 refusal
// (reason >= 0x80) is an error naming the reason (kMqttRefused); kTimedOut
// after timeout. Other events taken on the way are requeued.
Status publish_confirmed(Client& c, const Message& m, std::chrono::milliseconds timeout);

// Subscribes to topic and returns its retained payload (nullopt when none
// arrives within timeout), then unsubscribes. Events already queued and
// events for other topics are requeued. When the client already subscribes
// to exactly topic, the subscription is renewed (unsubscribe + subscribe, as
// the broker sends retained documents on a new subscription only), kept, and
// the retained message is also requeued for the caller.
Result<std::optional<std::string>> read_retained(Client& c, const std::string& topic,
                                                 std::chrono::milliseconds timeout);

// Publishes a retained document, then reads it back and fails (kMqttRefused)
// unless the broker holds exactly these bytes: detects a publish the broker
// acknowledged but its ACL dropped. The read-back needs read access to the
// topic and waits at most 3 s (the broker sends the retained document right
// after its SUBACK); an empty payload (deleting the document) must read back
// as none.
Status publish_retained_checked(Client& c, const Message& m, std::chrono::milliseconds timeout);

}  // namespace ota::mqtt
