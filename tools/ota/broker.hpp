// The broker options and connection every MQTT command shares (ota publish,
// ota campaign run|status|pause|resume|abort).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "cli.hpp"
#include "ota/fleet/mqtt.hpp"

namespace ota::cli {

// Connection options every command that talks to the broker takes.
struct BrokerArgs {
  std::string url = "mqtt://127.0.0.1:1883";
  std::string ca, cert, key, username, password_file, client_id;
  std::string timeout = "30s";
  void add(CLI::App* cmd) {
    cmd->add_option("--broker", url,
                    "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; the nodes of one cluster as URL,URL,... (tried in turn)")
        ->capture_default_str();
    cmd->add_option("--ca", ca, "TLS: the CA certificate that signed the broker's (PEM)");
    cmd->add_option("--cert", cert, "TLS client certificate (PEM)");
    cmd->add_option("--cert-key", key, "TLS client certificate's private key (PEM)");
    cmd->add_option("--username", username, "Broker user name");
    cmd->add_option("--password-file", password_file, "Read the broker password from this file (first line)");
    cmd->add_option("--client-id", client_id, "MQTT client id (default: a name derived from the command)");
    cmd->add_option("--timeout", timeout, "How long to wait for the broker (and the controller)")->capture_default_str();
  }
  // The client options (client id default_id unless --client-id).
  Result<mqtt::Options> options(const std::string& default_id) const;
  // --timeout.
  Result<std::chrono::milliseconds> wait() const;
};

// 12 random hex digits (client and command ids).
std::string random_suffix();

// Connects with b's options (warning on stderr about a password sent without
// TLS) and waits until connected, at most --timeout.
// `adjust`, when given, changes the options before connecting (the controller's queue).
Result<std::unique_ptr<mqtt::Client>> connect_broker(const BrokerArgs& b, const std::string& id,
                                                     void (*adjust)(mqtt::Options&) = nullptr);

}  // namespace ota::cli
