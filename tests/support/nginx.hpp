// A real nginx on a loopback port, started and stopped by a test: its own
// configuration, prefix and logs in a temporary directory; Range requests
// as nginx serves them. /slow/ serves the same files with a rate limit after
// a given number of bytes per response, so a test can stop a transfer at a
// known point. The access log records status, body bytes sent and Range.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ota::test {

inline std::string find_nginx() {
  for (const char* p : {"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

// A port that was free a moment ago (the kernel's choice).
inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

inline bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

struct AccessEntry {
  int status = 0;
  std::uint64_t bytes = 0;
  std::string range;  // "-" when none
  std::string uri;
};

class Nginx {
 public:
  // Serves dir/www; /slow/ answers at full speed for slow_after bytes per
  // response, then slow_rate bytes per second. extra_server is added to the
  // server block and extra_http to the http block, with @PORT@ replaced by
  // port() (a test's redirects, a TLS server of its own).
  Nginx(const std::string& dir, std::uint64_t slow_after = 1 << 20, std::uint64_t slow_rate = 1,
        std::string extra_server = {}, std::string extra_http = {})
      : dir_(dir), extra_server_(std::move(extra_server)), extra_http_(std::move(extra_http)) {
    ::mkdir((dir_ + "/www").c_str(), 0755);
    ::mkdir((dir_ + "/tmp").c_str(), 0700);
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
      port_ = free_loopback_port();
      write_config(slow_after, slow_rate);
      start();
    }
  }
  ~Nginx() { stop(); }
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string www() const { return dir_ + "/www"; }
  std::string url(const std::string& name) const { return "http://127.0.0.1:" + std::to_string(port_) + "/" + name; }
  std::string error_log() const { return slurp(dir_ + "/error.log"); }

  // Kills the worker processes (not the master, which starts new ones):
  // every open connection drops, as on a network failure.
  void kill_workers() {
    for (pid_t w : workers()) ::kill(w, SIGKILL);
    // Wait for a new worker to accept connections again.
    for (int i = 0; i < 200 && workers().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  // nginx writes a request's line after its response has gone out, so a
  // client can finish before its request is logged: wait until the log has
  // not grown for 100 ms (at most 3 s).
  std::vector<AccessEntry> access_log() const {
    std::string text = slurp(dir_ + "/access.log");
    for (int i = 0; i < 30; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::string again = slurp(dir_ + "/access.log");
      if (again == text) break;
      text = std::move(again);
    }
    std::vector<AccessEntry> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream l(line);
      AccessEntry e;
      l >> e.status >> e.bytes >> e.range >> e.uri;
      out.push_back(e);
    }
    return out;
  }

 private:
  static std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  std::vector<pid_t> workers() const {
    std::vector<pid_t> out;
    std::istringstream in(slurp("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children"));
    pid_t p;
    while (in >> p) out.push_back(p);
    return out;
  }

  void write_config(std::uint64_t slow_after, std::uint64_t slow_rate) {
    std::ofstream c(dir_ + "/nginx.conf");
    c << "worker_processes 1;\n"
      << (::geteuid() == 0 ? "user root root;\n" : "")
      << "error_log " << dir_ << "/error.log warn;\n"
      << "pid " << dir_ << "/nginx.pid;\n"
      << "events { worker_connections 64; }\n"
      << "http {\n"
      << "  log_format ota '$status $body_bytes_sent \"$http_range\" $uri';\n"
      << "  access_log " << dir_ << "/access.log ota;\n"
      << "  client_body_temp_path " << dir_ << "/tmp/body;\n"
      << "  proxy_temp_path " << dir_ << "/tmp/proxy;\n"
      << "  fastcgi_temp_path " << dir_ << "/tmp/fastcgi;\n"
      << "  uwsgi_temp_path " << dir_ << "/tmp/uwsgi;\n"
      << "  scgi_temp_path " << dir_ << "/tmp/scgi;\n"
      << "  default_type application/octet-stream;\n"
      << "  sendfile off;\n"
      << "  server {\n"
      << "    listen 127.0.0.1:" << port_ << ";\n"
      << "    root " << dir_ << "/www;\n"
      << "    location /slow/ { alias " << dir_ << "/www/; limit_rate_after " << slow_after << "; limit_rate "
      << slow_rate << "; }\n"
      << with_port(extra_server_) << "\n"
      << "  }\n"
      << with_port(extra_http_) << "\n"
      << "}\n";
  }

  std::string with_port(std::string text) const {
    for (auto at = text.find("@PORT@"); at != std::string::npos; at = text.find("@PORT@"))
      text.replace(at, 6, std::to_string(port_));
    return text;
  }

  void start() {
    const std::string nginx = find_nginx();
    if (nginx.empty()) return;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl(nginx.c_str(), nginx.c_str(), "-p", dir_.c_str(), "-c", (dir_ + "/nginx.conf").c_str(), "-e",
              (dir_ + "/error.log").c_str(), "-g", "daemon off;", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return;  // exited: port taken or bad config
      if (port_accepts(port_)) {
        pid_ = pid;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);  // fast shutdown: master and workers
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string dir_;
  std::string extra_server_, extra_http_;
  int port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace ota::test
