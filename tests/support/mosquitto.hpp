// A real mosquitto broker on loopback ports, started and stopped by a test:
// its own configuration, persistence database and log in a given temporary
// directory.
//
// Anonymous mode: one plain listener, allow_anonymous true.
// Secured mode: examples/mosquitto/make-credentials.sh writes the credentials
// into DIR/creds, and the broker runs examples/mosquitto/mosquitto.conf with
// only the listener ports and file paths rewritten (plus `user root` when the
// tests run as root, since mosquitto would otherwise drop to the mosquitto
// user, which cannot read the temporary directory). The test target defines
// OTA_SOURCE_DIR.
//
// Persistence: autosave_interval 1 in anonymous mode, so a test can kill9()
// the broker a second after a retained publish and restart() it on the same
// ports with the same database. Throws std::runtime_error (with the log) when
// the broker does not come up within 10 s.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/nginx.hpp"  // free_loopback_port(), port_accepts()

namespace ota::test {

struct MosquittoOptions {
  // false: anonymous, one plain listener. true: the secured example
  // configuration (password file, ACL, TLS listener with client certificates).
  bool secured = false;
  std::string fleet = "fleet1";
  std::vector<std::string> devices = {"dev-001", "dev-002"};
};

class Mosquitto {
 public:
  explicit Mosquitto(std::string dir, MosquittoOptions options = {}) : dir_(std::move(dir)), opts_(std::move(options)) {
    if (opts_.secured) make_credentials();
    for (int attempt = 0;; ++attempt) {
      port_ = free_loopback_port();
      if (opts_.secured) {
        do {
          tls_port_ = free_loopback_port();
        } while (tls_port_ == port_);
      }
      write_config();
      std::string why;
      if (start(&why)) return;
      // A port taken between the probe and the bind: try other ports.
      if (attempt == 4) throw std::runtime_error("mosquitto did not start: " + why + "\nlog:\n" + log());
    }
  }
  ~Mosquitto() { stop(); }
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;

  int port() const { return port_; }
  int tls_port() const { return tls_port_; }  // -1 in anonymous mode
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }

  // Secured mode: the files make-credentials.sh wrote.
  std::string creds() const { return dir_ + "/creds"; }
  std::string ca_file() const { return creds() + "/ca.crt"; }
  std::string cert_file(const std::string& user) const { return creds() + "/clients/" + user + ".crt"; }
  std::string key_file(const std::string& user) const { return creds() + "/clients/" + user + ".key"; }
  std::string password_file(const std::string& user) const { return creds() + "/passwords/" + user; }
  std::string password(const std::string& user) const { return slurp(password_file(user)); }

  std::string log() const { return slurp(dir_ + "/mosquitto.log"); }
  std::string config() const { return slurp(dir_ + "/mosquitto.conf"); }
  std::string db_file() const { return dir_ + "/data/" + db_name_; }

  // SIGKILL: no final save, connections drop without DISCONNECT.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Starts again on the same ports with the same persistence directory.
  void restart() {
    stop();
    std::string why;
    // The old listening sockets may linger for a moment.
    for (int i = 0; i < 50; ++i) {
      if (start(&why)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("mosquitto did not restart: " + why + "\nlog:\n" + log());
  }

  // SIGTERM (mosquitto saves its database and closes) and wait.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
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

 private:
  static std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  static std::string source_dir() {
#ifdef OTA_SOURCE_DIR
    return OTA_SOURCE_DIR;
#else
    throw std::runtime_error("the secured Mosquitto needs OTA_SOURCE_DIR (target_compile_definitions)");
#endif
  }

  void make_credentials() {
    std::string cmd = "bash '" + source_dir() + "/examples/mosquitto/make-credentials.sh' '" + creds() + "' '" +
                      opts_.fleet + "'";
    for (const auto& d : opts_.devices) cmd += " '" + d + "'";
    cmd += " >'" + dir_ + "/make-credentials.log' 2>&1";
    if (std::system(cmd.c_str()) != 0)
      throw std::runtime_error("make-credentials.sh failed:\n" + slurp(dir_ + "/make-credentials.log"));
  }

  // Rewrites the directory of a path: /etc/mosquitto/ota/acl -> CREDS/acl.
  static std::string rebase(const std::string& path, const std::string& new_dir) {
    const auto slash = path.find_last_of('/');
    return new_dir + "/" + (slash == std::string::npos ? path : path.substr(slash + 1));
  }

  void write_config() {
    ::mkdir((dir_ + "/data").c_str(), 0700);
    std::ostringstream c;
    if (::geteuid() == 0) c << "user root\n";
    if (!opts_.secured) {
      c << "per_listener_settings false\n"
        << "allow_anonymous true\n"
        << "persistence true\n"
        << "persistence_location " << dir_ << "/data/\n"
        << "persistence_file " << db_name_ << "\n"
        << "autosave_interval 1\n"
        << "log_dest file " << dir_ << "/mosquitto.log\n"
        << "log_type all\n"
        << "connection_messages true\n"
        << "listener " << port_ << " 127.0.0.1\n";
    } else {
      // examples/mosquitto/mosquitto.conf, listener ports and paths rewritten.
      std::ifstream in(source_dir() + "/examples/mosquitto/mosquitto.conf");
      if (!in) throw std::runtime_error("cannot read examples/mosquitto/mosquitto.conf");
      std::string line;
      int listeners = 0;
      while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string key, value;
        words >> key >> value;
        if (key == "listener") {
          // The first listener is the plain one, the second the TLS one.
          c << "listener " << (listeners++ == 0 ? port_ : tls_port_) << " 127.0.0.1\n";
        } else if (key == "password_file" || key == "acl_file" || key == "cafile" || key == "certfile" ||
                   key == "keyfile") {
          c << key << " " << rebase(value, creds()) << "\n";
        } else if (key == "persistence_location") {
          c << key << " " << dir_ << "/data/\n";
        } else if (key == "persistence_file") {
          db_name_ = value;
          c << line << "\n";
        } else if (key == "log_dest" && value == "file") {
          c << "log_dest file " << dir_ << "/mosquitto.log\n";
        } else {
          c << line << "\n";
        }
      }
      if (listeners != 2) throw std::runtime_error("examples/mosquitto/mosquitto.conf: expected two listeners");
    }
    std::ofstream(dir_ + "/mosquitto.conf") << c.str();
  }

  bool start(std::string* why) {
    const char* exe = "/usr/sbin/mosquitto";
    if (::access(exe, X_OK) != 0) {
      *why = "no /usr/sbin/mosquitto (scripts/install-deps.sh installs it)";
      return false;
    }
    const std::string conf = dir_ + "/mosquitto.conf";
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl(exe, exe, "-c", conf.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (pid < 0) {
      *why = "fork failed";
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        *why = "mosquitto exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
      }
      if (port_accepts(port_) && (tls_port_ < 0 || port_accepts(tls_port_))) {
        pid_ = pid;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    *why = "no listener on 127.0.0.1:" + std::to_string(port_) + " within 10 s";
    return false;
  }

  std::string dir_;
  MosquittoOptions opts_;
  std::string db_name_ = "mosquitto.db";
  int port_ = -1;
  int tls_port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace ota::test
