// A real ejabberd cluster (Debian's ejabberd, mod_mqtt) on loopback, started
// and stopped by a test through scripts/ejabberd-cluster.sh: its own
// configuration, mnesia spool, Erlang port mapper and ports in a temporary
// directory, run as the current user. Node i (0-based here) listens for MQTT
// on 127.0.0.1:port(i); every client must log in with a user name and a
// non-empty password (anonymous authentication: any pair).
//
// kill9(i) kills a node's Erlang VM (-9: no goodbye to its clients or to the
// other node), restart(i) starts it again (it rejoins the cluster by itself).
// Throws std::runtime_error (with the script's output) when the cluster does
// not come up.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/nginx.hpp"  // free_loopback_port()
#include "support/subprocess.hpp"

namespace ota::test {

class EjabberdCluster {
 public:
  // Debian's ejabberd and Erlang are there (scripts/install-deps.sh).
  static bool available() { return ::access("/usr/bin/erl", X_OK) == 0 && ::access("/usr/sbin/ejabberdctl", X_OK) == 0; }

  EjabberdCluster(std::string dir, int nodes) : dir_(std::move(dir)) {
    std::vector<std::string> argv{script(), "start", dir_};
    for (int i = 0; i < nodes; ++i) {
      int p;
      do {
        p = free_loopback_port();
      } while (std::find(ports_.begin(), ports_.end(), p) != ports_.end());
      ports_.push_back(p);
      argv.push_back(std::to_string(p));
    }
    auto r = run(argv);
    if (r.exit_code != 0) {
      stop();
      throw std::runtime_error("the ejabberd cluster did not start: " + r.err + r.out + log());
    }
  }
  ~EjabberdCluster() { stop(); }
  EjabberdCluster(const EjabberdCluster&) = delete;
  EjabberdCluster& operator=(const EjabberdCluster&) = delete;

  int port(int node) const { return ports_.at(static_cast<std::size_t>(node)); }
  std::string url(int node) const { return "mqtt://127.0.0.1:" + std::to_string(port(node)); }
  static constexpr const char* kUser = "ota-test";
  static constexpr const char* kPassword = "not-checked";

  void kill9(int node) { (void)run({script(), "kill", dir_, std::to_string(node + 1)}); }
  bool restart(int node) { return run({script(), "restart", dir_, std::to_string(node + 1)}).exit_code == 0; }
  // The members as node 1 sees them (Erlang's list syntax).
  std::string members() { return run({script(), "nodes", dir_}).out; }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    (void)run({script(), "stop", dir_});
  }
  // Every node's log.
  std::string log() const {
    std::string s;
    for (std::size_t i = 0; i < ports_.size(); ++i) {
      const std::string base = dir_ + "/node" + std::to_string(i + 1) + "/logs/";
      for (const char* f : {"ejabberd.log", "stdout"}) {
        std::ifstream in(base + f);
        s += "node " + std::to_string(i + 1) + " " + f + ":\n" +
             std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
    }
    return s;
  }

 private:
  static std::string script() { return std::string(OTA_SOURCE_DIR) + "/scripts/ejabberd-cluster.sh"; }
  static ProcessResult run(const std::vector<std::string>& argv) {
    std::vector<std::string> a{"/bin/bash"};
    a.insert(a.end(), argv.begin(), argv.end());
    ProcessOptions po;
    po.timeout_seconds = 90;
    return run_process(a, po);
  }

  std::string dir_;
  std::vector<int> ports_;
  bool stopped_ = false;
};

}  // namespace ota::test
