// A real Prometheus (Debian's prometheus package) on a loopback port,
// started and stopped by a test: its own configuration, which scrapes the
// given targets every second, and its own storage in a temporary directory.
// query() asks its HTTP API (/api/v1/query) for an instant vector.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/nginx.hpp"  // free_loopback_port, port_accepts
#include "support/spawned.hpp"

namespace ota::test {

inline std::string find_prometheus() {
  for (const char* p : {"/usr/bin/prometheus", "/usr/local/bin/prometheus"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

// One HTTP/1.0 GET on 127.0.0.1:port; the body of a 200 answer, else empty.
inline std::string http_get(int port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string all;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  if (all.rfind("HTTP/1.1 200", 0) != 0 && all.rfind("HTTP/1.0 200", 0) != 0) return {};
  const auto body = all.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : all.substr(body + 4);
}

inline std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

class Prometheus {
 public:
  // Scrapes each of `targets` ("127.0.0.1:PORT") at /metrics every second.
  Prometheus(const std::string& dir, const std::vector<std::string>& targets) : dir_(dir) {
    const std::string bin = find_prometheus();
    if (bin.empty()) return;
    for (int attempt = 0; attempt < 5 && !proc_; ++attempt) {
      port_ = free_loopback_port();
      {
        std::ofstream c(dir_ + "/prometheus.yml");
        c << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
          << "scrape_configs:\n  - job_name: ota\n    metrics_path: /metrics\n    static_configs:\n      - targets: [";
        for (std::size_t i = 0; i < targets.size(); ++i) c << (i ? ", " : "") << "'" << targets[i] << "'";
        c << "]\n";
      }
      auto p = std::make_unique<Spawned>(
          std::vector<std::string>{bin, "--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/data",
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                   "--log.level=warn"},
          dir_ + "/prometheus.log");
      // Ready when /-/ready answers 200 (it loads its storage first).
      for (int i = 0; i < 300; ++i) {
        if (p->wait(std::chrono::milliseconds(1)) >= 0) break;  // exited: the port was taken
        if (port_accepts(port_) && !http_get(port_, "/-/ready").empty()) {
          proc_ = std::move(p);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  Prometheus(const Prometheus&) = delete;
  Prometheus& operator=(const Prometheus&) = delete;

  bool running() const { return proc_ != nullptr; }
  int port() const { return port_; }
  std::string log() const {
    std::ifstream f(dir_ + "/prometheus.log");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  // The instant vector of a PromQL query: each series' labels (without
  // __name__) as "k=v,k=v" in label order, to its value. Empty on any error.
  std::map<std::string, double> query(const std::string& promql) const {
    std::map<std::string, double> out;
    const std::string body = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
    if (body.empty()) return out;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return out;
    for (const auto& r : j["data"]["result"]) {
      std::string key;
      for (const auto& [k, v] : r["metric"].items()) {
        if (k == "__name__") continue;
        key += (key.empty() ? "" : ",") + k + "=" + v.get<std::string>();
      }
      out[key] = std::stod(r["value"][1].get<std::string>());
    }
    return out;
  }
  // The target health as Prometheus saw it ("up" of job ota), -1 when unknown.
  double up() const {
    auto r = query("up{job=\"ota\"}");
    return r.empty() ? -1 : r.begin()->second;
  }

 private:
  std::string dir_;
  int port_ = -1;
  std::unique_ptr<Spawned> proc_;
};

}  // namespace ota::test
