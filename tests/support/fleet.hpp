// A fleet on real parts for the campaign and device-safety integration
// suites: a mosquitto on a free loopback port (anonymous, or examples/mosquitto
// secured), an nginx serving the bundle store, `ota publish`, `ota campaign
// run` as the controller, and one `ota-agent run` process per device on file
// banks with the bootloader simulator and real health-check commands. The
// including target defines OTA_CLI_PATH, OTA_AGENT_PATH and OTA_SOURCE_DIR.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ota/fleet/campaign.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/fleet/mqtt.hpp"
#include "support/mosquitto.hpp"
#include "support/nginx.hpp"
#include "support/random.hpp"
#include "support/spawned.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota::test {

namespace cp = ota::campaign;
using Json = nlohmann::json;
using namespace std::chrono_literals;

inline const std::string kOta = OTA_CLI_PATH;
inline const std::string kAgent = OTA_AGENT_PATH;
constexpr std::size_t kBank = 512 * 1024;
constexpr char kFleet[] = "fleet1";

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return pred();
}

// Follows what devices report (retained states and events) on the broker.
class Observer {
 public:
  Observer(int port, const std::string& user = {}, const std::string& password = {}) {
    mqtt::Options o;
    o.port = port;
    o.client_id = "test-observer-" + std::to_string(::getpid());
    o.username = user;
    o.password = password;
    auto c = mqtt::connect(o);
    if (!c) throw std::runtime_error(c.error().message);
    client_ = std::move(*c);
    (void)client_->subscribe(std::string("ota/") + kFleet + "/devices/+/state", 1);
    (void)client_->subscribe(std::string("ota/") + kFleet + "/devices/+/events", 1);
    thread_ = std::thread([this] {
      while (!done_) {
        auto ev = client_->next(100ms);
        if (!ev || ev->kind != mqtt::Event::Kind::kMessage) continue;
        auto r = cp::read_report_unverified(ev->message.payload);
        if (!r) continue;
        std::lock_guard<std::mutex> lock(mu_);
        if (ev->message.topic.size() > 6 && ev->message.topic.substr(ev->message.topic.size() - 6) == "events") {
          events_[r->device].push_back(*r);
        } else {
          auto& s = state_[r->device];
          if (r->seq >= s.seq) s = *r;
        }
      }
    });
  }
  ~Observer() {
    done_ = true;
    thread_.join();
    client_->stop();
  }
  std::map<std::string, cp::Report> states() {
    std::lock_guard<std::mutex> lock(mu_);
    return state_;
  }
  std::map<std::string, std::vector<cp::Report>> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // One device's events (a copy: safe to iterate).
  std::vector<cp::Report> events_of(const std::string& device) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = events_.find(device);
    return it == events_.end() ? std::vector<cp::Report>{} : it->second;
  }
  std::size_t count(const std::string& campaign, cp::Phase p) {
    std::size_t n = 0;
    for (const auto& [d, r] : states()) n += r.campaign == campaign && r.phase == p;
    return n;
  }

 private:
  std::unique_ptr<mqtt::Client> client_;
  std::thread thread_;
  volatile bool done_ = false;
  std::mutex mu_;
  std::map<std::string, cp::Report> state_;
  std::map<std::string, std::vector<cp::Report>> events_;
};

struct Device {
  std::string id;
  std::string dir;
  std::unique_ptr<Spawned> proc;
};

class Fleet : public testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed (scripts/install-deps.sh)";
    if (find_nginx().empty()) GTEST_SKIP() << "nginx is not installed (scripts/install-deps.sh)";
    ::setenv("SOURCE_DATE_EPOCH", "1780000000", 1);
    base_ = structured_bytes(120'000, 700);
    image_ = with_random_edits(base_, 40, 701);
    write_bytes(path("base.img"), base_);
    write_bytes(path("new.img"), image_);
    ASSERT_EQ(ota({"keygen", "-o", path("release")}).exit_code, 0);
    ASSERT_EQ(ota({"keygen", "-o", path("attacker")}).exit_code, 0);
    ASSERT_EQ(ota({"keygen", "-o", path("operator")}).exit_code, 0);
    ASSERT_EQ(ota({"root", "init", "--key", path("release.pub"), "--threshold", "1", "--expires", "2099-01-01", "-o",
                   path("root.json"), "-q"})
                  .exit_code,
              0);
    ASSERT_EQ(ota({"root", "sign", path("root.json"), "--key", path("release.key")}).exit_code, 0);
    auto r = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--base", path("base.img"),
                  "--key", path("release.key"), "-q", "-o", path("fw-1.1.0.otb")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ::mkdir(path("srv").c_str(), 0755);
    web_ = std::make_unique<Nginx>(path("srv"));
    ASSERT_TRUE(web_->running()) << web_->error_log();
  }

  void TearDown() override {
    controller_.reset();
    devices_.clear();
  }

  void start_broker(MosquittoOptions o = {}) {
    ::mkdir(path("broker").c_str(), 0700);
    o.fleet = kFleet;
    broker_ = std::make_unique<Mosquitto>(path("broker"), o);
  }
  std::string broker_url() const {
    return broker_urls_.empty() ? "mqtt://127.0.0.1:" + std::to_string(broker_->port()) : broker_urls_;
  }
  // Another broker than the mosquitto of start_broker() (a cluster): the URL
  // list the tools and devices use, and the login every client gives.
  void use_broker(const std::string& urls, const std::string& user, const std::string& password) {
    broker_urls_ = urls;
    broker_user_ = user;
    save("broker-password", password + "\n");
  }
  std::vector<std::string> login_args() const {
    if (broker_user_.empty()) return {};
    return {"--username", broker_user_, "--password-file", path("broker-password")};
  }

  std::string path(const std::string& n) const { return dir_.file(n); }
  ProcessResult ota(std::vector<std::string> args) {
    args.insert(args.begin(), kOta);
    ProcessOptions po;
    po.timeout_seconds = 120;
    return run_process(args, po);
  }

  // The operator's signing options for `ota campaign pause|resume|abort`.
  std::vector<std::string> operator_key() const { return {"--key", path("operator.key")}; }

  // A device on bank a = base image; `healthy` picks its health check. It is
  // provisioned: its own key (mqtt.device_key) in the fleet registry.
  Device& add_device(const std::string& id, bool healthy, Json mqtt_extra = Json::object()) {
    Device d;
    d.id = id;
    d.dir = path("dev-" + id);
    ::mkdir(d.dir.c_str(), 0755);
    auto prov = ota({"device", "provision", id, "--fleet", kFleet, "--registry", path("registry.json"), "-o",
                     d.dir + "/device", "-q"});
    EXPECT_EQ(prov.exit_code, 0) << prov.err;
    Bytes a(kBank, 0), b(kBank, 0);
    std::copy(base_.begin(), base_.end(), a.begin());
    write_bytes(d.dir + "/bank-a", a);
    write_bytes(d.dir + "/bank-b", b);
    Json m = {{"broker", broker_url()}, {"fleet", kFleet}, {"retry_delay_s", 1}, {"device_key", d.dir + "/device.key"}};
    if (!broker_user_.empty()) {
      m["username"] = broker_user_;
      m["password_file"] = path("broker-password");
    }
    m.update(mqtt_extra);
    Json c = {{"device_id", id},
              {"hardware_id", "board"},
              {"banks", {{"a", d.dir + "/bank-a"}, {"b", d.dir + "/bank-b"}}},
              {"boot", {{"backend", "file"}, {"file", d.dir + "/bootenv.json"}}},
              {"trust_root", path("root.json")},
              {"state_dir", d.dir + "/state"},
              {"health_check", {{"command", {healthy ? "true" : "false"}}, {"timeout_s", 10}}},
              {"mqtt", m}};
    std::ofstream(d.dir + "/agent.json") << c.dump(2);
    devices_.push_back(std::move(d));
    return devices_.back();
  }
  void start(Device& d) {
    std::vector<std::string> argv{kAgent, "-c", d.dir + "/agent.json", "run"};
    if (const char* vg = std::getenv("OTA_TEST_VALGRIND_AGENT"))
      argv.insert(argv.begin(), {"/usr/bin/valgrind", "-q", std::string("--log-file=") + vg + "." + d.id + ".%p"});
    d.proc = std::make_unique<Spawned>(argv, d.dir + "/log");
  }
  bool updated(const Device& d) {
    Bytes b = read_bytes(d.dir + "/bank-b");
    return std::equal(image_.begin(), image_.end(), b.begin());
  }
  bool untouched(const Device& d) {
    Bytes b = read_bytes(d.dir + "/bank-b");
    return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; });
  }

  // ota publish with the bundle stored in nginx's directory.
  ProcessResult publish(const std::string& id, std::vector<std::string> extra = {},
                              const std::string& bundle = "fw-1.1.0.otb", Nginx* web = nullptr,
                              const std::string& url_path = "") {
    if (!web) web = web_.get();
    std::vector<std::string> args{"publish", path(bundle), "--broker", broker_url(), "--fleet", kFleet,
                                  "--campaign", id, "--store", web->www(), "--url",
                                  "http://127.0.0.1:" + std::to_string(web->port()) + url_path, "--trust", path("root.json"),
                                  "--key", path("release.key"), "--dir", path("campaigns"), "--json"};
    if (std::find(extra.begin(), extra.end(), "--unsigned") == extra.end())
      args.insert(args.end(), {"--registry", path("registry.json"), "--operator", path("operator.pub")});
    const auto login = login_args();
    args.insert(args.end(), login.begin(), login.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return ota(args);
  }
  void run_controller(const std::string& id, std::vector<std::string> extra = {}) {
    // Its log (decisions, ignored messages) goes to controller.log: logs() shows it on a failure.
    std::vector<std::string> args{kOta, "campaign", "run", id, "--broker", broker_url(), "--dir", path("campaigns")};
    const auto login = login_args();
    args.insert(args.end(), login.begin(), login.end());
    args.insert(args.end(), extra.begin(), extra.end());
    controller_ = std::make_unique<Spawned>(args, path("controller.log"));
  }

  // Records of the controller's journal.
  std::vector<Json> journal(const std::string& id) {
    std::vector<Json> out;
    std::ifstream f(path("campaigns/" + id + "/journal.jsonl"));
    for (std::string line; std::getline(f, line);) out.push_back(Json::parse(line));
    return out;
  }
  std::vector<std::string> decisions(const std::string& id) {
    std::vector<std::string> out;
    for (const auto& r : journal(id))
      if (r["type"] == "decision") out.push_back(r["action"].get<std::string>());
    return out;
  }
  Json status(const std::string& id) {
    std::vector<std::string> args{"campaign", "status", id, "--fleet", kFleet, "--broker", broker_url(),
                                  "--trust", path("root.json"), "--devices", "--json"};
    const auto login = login_args();
    args.insert(args.end(), login.begin(), login.end());
    auto r = ota(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out.empty() ? "{}" : r.out);
  }
  cp::Campaign campaign_of(const std::string& id) {
    auto rec = journal(id).front();
    auto d = cp::parse_document(rec["document"].dump());
    EXPECT_TRUE(d.has_value());
    auto c = cp::parse_campaign(d->campaign.payload);
    EXPECT_TRUE(c.has_value());
    return *c;
  }
  // Validates documents against schemas/NAME with Debian's python3-jsonschema.
  void validate(const std::string& schema, const std::vector<std::string>& files) {
    if (::access("/usr/bin/python3", X_OK) != 0) return;
    std::vector<std::string> args{"/usr/bin/python3", std::string(OTA_SOURCE_DIR) + "/tests/schemas/validate.py",
                                  std::string(OTA_SOURCE_DIR) + "/schemas", schema};
    args.insert(args.end(), files.begin(), files.end());
    auto r = run_process(args);
    EXPECT_EQ(r.exit_code, 0) << schema << ": " << r.out << r.err;
  }
  std::string save(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  std::string logs() {
    std::string s = "controller:\n" + slurp(path("controller.log"));
    for (const auto& d : devices_) s += d.id + ":\n" + slurp(d.dir + "/log");
    return s;
  }

  TempDir dir_;
  Bytes base_, image_;
  std::unique_ptr<Nginx> web_;
  std::unique_ptr<Mosquitto> broker_;
  std::string broker_urls_, broker_user_;  // use_broker()
  std::unique_ptr<Spawned> controller_;
  std::vector<Device> devices_;
};

// Device ids whose wave (for this campaign and these waves) is `wave`.
inline std::vector<std::string> ids_in_wave(const std::string& campaign, const std::vector<std::uint32_t>& waves,
                                     std::size_t wave, std::size_t count, const std::string& prefix) {
  cp::Campaign c;
  c.id = campaign;
  c.waves = waves;
  std::vector<std::string> out;
  for (int i = 0; out.size() < count && i < 100000; ++i) {
    std::string id = prefix + std::to_string(i);
    if (cp::wave_of(c, id) == wave) out.push_back(id);
  }
  return out;
}

}  // namespace ota::test
