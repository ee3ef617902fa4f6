// ota-fleet-sim: N simulated devices in one process, each running libota's
// real agent core (agent::Daemon: campaign verification, wave membership,
// install through the real bundle reader and patcher, reports through the
// durable outbox) with its own real MQTT connection to a real broker. Only the
// storage is simulated: the banks, the state store and the boot environment
// live in memory (SimulatedBank, SimulatedStateStore, MemoryEnvironment), and
// a reboot is the bootloader simulator.
//
// Usage: ota-fleet-sim --devices N --broker mqtt://127.0.0.1:PORT --fleet F
//                      --trust root.json --image v1.bin [--failing K] [--prefix meter-]
//                      [--stats FILE] [--until-final CAMPAIGN]
// Runs until SIGINT/SIGTERM, or with --until-final until every device reported a
// final phase for CAMPAIGN; writes per-device final phases and sequence numbers
// to --stats (JSON) for the benchmark script (bench/fleet_bench.sh).
#include <algorithm>
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "ota/device/agent.hpp"
#include "ota/device/boot.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/device/daemon.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/device/storage.hpp"
#include "ota/release/trust.hpp"
#include "ota/testing/memory_environment.hpp"
#include "ota/testing/power_cut.hpp"

namespace {

volatile bool g_stop = false;
void on_signal(int) { g_stop = true; }

struct SimDevice {
  std::string id;
  bool healthy = true;
  ota::storage::PowerCut power;  // never cuts
  std::unique_ptr<ota::storage::SimulatedBank> banks[2];
  std::unique_ptr<ota::storage::SimulatedStateStore> state;
  ota::boot::MemoryEnvironment env;
  std::unique_ptr<ota::agent::Daemon> daemon;
  std::thread thread;
  std::atomic<int> final_phase{-1};
  std::atomic<std::uint64_t> seq{0};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ota-fleet-sim: N devices with libota's agent core and real MQTT connections"};
  int devices = 100, failing = 0;
  std::string broker, fleet = "sim", trust_path, image_path, prefix = "meter-", stats_path, until;
  std::uint64_t bank_size = 0;
  int ramp = 200;
  app.add_option("--devices", devices, "Number of devices")->capture_default_str();
  app.add_option("--broker", broker,
                 "mqtt://HOST:PORT, or the nodes of a cluster as URL,URL,...: device i starts on node i mod n and fails "
                 "over to the others")
      ->required();
  std::string username, password;
  int failover_after = 10;
  app.add_option("--username", username, "Broker user name (every device)");
  app.add_option("--password", password, "Broker password (every device; a loopback benchmark's)");
  app.add_option("--failover-after", failover_after, "Seconds without a connection before a device tries the next node")
      ->capture_default_str();
  app.add_option("--fleet", fleet, "Fleet name")->capture_default_str();
  app.add_option("--trust", trust_path, "Trust root (root.json)")->required();
  app.add_option("--image", image_path, "The image every device runs in bank a")->required();
  app.add_option("--bank-size", bank_size, "Bank size in bytes (default: the image size)");
  app.add_option("--failing", failing, "This many devices fail their health check (the last ones)");
  app.add_option("--prefix", prefix, "Device ids: PREFIX00001...")->capture_default_str();
  app.add_option("--stats", stats_path, "Write per-device results here (JSON) on exit");
  app.add_option("--ramp", ramp, "Devices started per second (a fleet does not connect in the same millisecond)")
      ->capture_default_str();
  app.add_option("--until-final", until, "Exit once every device reported a final phase for this campaign");
  CLI11_PARSE(app, argc, argv);

  // One socket per device: raise the descriptor limit as far as allowed.
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &nofile);

  auto trust = ota::trust::TrustStore::load(trust_path);
  if (!trust) {
    std::fprintf(stderr, "ota-fleet-sim: %s\n", trust.error().message.c_str());
    return static_cast<int>(trust.error().code);
  }
  auto image = ota::read_file(image_path);
  if (!image) {
    std::fprintf(stderr, "ota-fleet-sim: %s\n", image.error().message.c_str());
    return 3;
  }
  if (bank_size < image->size()) bank_size = image->size();
  ota::mqtt::Options defaults;
  defaults.username = username;
  defaults.password = password;
  defaults.failover_after_s = failover_after;
  auto base = ota::mqtt::parse_broker_urls(broker, defaults);
  if (!base) {
    std::fprintf(stderr, "ota-fleet-sim: %s\n", base.error().message.c_str());
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  std::vector<std::unique_ptr<SimDevice>> fleet_devices;
  // Each device gets its own copy of the trust store, as each device has its own.
  std::vector<std::unique_ptr<ota::trust::TrustStore>> trusts;
  for (int i = 0; i < devices; ++i) {
    auto d = std::make_unique<SimDevice>();
    char id[64];
    std::snprintf(id, sizeof id, "%s%05d", prefix.c_str(), i + 1);
    d->id = id;
    d->healthy = i < devices - failing;
    ota::Bytes a(bank_size, 0);
    std::copy(image->begin(), image->end(), a.begin());
    d->banks[0] = std::make_unique<ota::storage::SimulatedBank>(std::move(a), d->power);
    d->banks[1] = std::make_unique<ota::storage::SimulatedBank>(ota::Bytes(bank_size, 0), d->power);
    d->state = std::make_unique<ota::storage::SimulatedStateStore>(d->power);
    trusts.push_back(std::make_unique<ota::trust::TrustStore>(*trust));
    ota::agent::Device dev;
    dev.banks[0] = d->banks[0].get();
    dev.banks[1] = d->banks[1].get();
    dev.state = d->state.get();
    dev.env = &d->env;
    dev.trust = trusts.back().get();
    dev.hardware_id = "sim-board";
    dev.now = [] { return static_cast<ota::trust::Time>(std::time(nullptr)); };
    const bool healthy = d->healthy;
    dev.health_check = [healthy]() -> ota::Status {
      if (healthy) return ota::ok();
      return ota::fail(ota::ErrorCode::kIo, "health check failed (simulated)");
    };
    ota::agent::DaemonOptions o;
    o.device_id = d->id;
    o.fleet = fleet;
    o.mqtt = *base;
    if (!base->failover.empty()) {
      // Spread over the nodes: device i starts on node i mod n, then the next ones.
      std::vector<ota::mqtt::Endpoint> nodes{{base->host, base->port}};
      nodes.insert(nodes.end(), base->failover.begin(), base->failover.end());
      std::rotate(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(i) % nodes.size()),
                  nodes.end());
      o.mqtt.host = nodes.front().host;
      o.mqtt.port = nodes.front().port;
      o.mqtt.failover.assign(nodes.begin() + 1, nodes.end());
    }
    o.mqtt.keepalive_s = 60;
    o.retry_delay_s = 5;
    o.stop = &g_stop;
    SimDevice* raw = d.get();
    o.log = [raw, until](const std::string& line) {
      // Track the final phase for --until-final from the daemon's own log line.
      for (auto p : {ota::campaign::Phase::kSucceeded, ota::campaign::Phase::kRolledBack, ota::campaign::Phase::kFailed,
                     ota::campaign::Phase::kAborted, ota::campaign::Phase::kSkipped}) {
        const std::string head = std::string(ota::campaign::phase_name(p)) + " " + until;
        if (!until.empty() && line.compare(0, head.size(), head) == 0) raw->final_phase = static_cast<int>(p);
      }
    };
    d->daemon = std::make_unique<ota::agent::Daemon>(dev, *d->state, o);
    fleet_devices.push_back(std::move(d));
  }
  const auto started = std::chrono::steady_clock::now();
  int started_count = 0;
  for (auto& d : fleet_devices) {
    if (ramp > 0 && started_count > 0 && started_count % std::max(1, ramp / 20) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ++started_count;
    SimDevice* raw = d.get();
    raw->thread = std::thread([raw] {
      // Boot sessions until stopped; a reboot is the bootloader simulator.
      for (;;) {
        auto rebooted = raw->daemon->run_session();
        if (!rebooted) {
          std::fprintf(stderr, "ota-fleet-sim: %s: %s\n", raw->id.c_str(), rebooted.error().message.c_str());
          break;
        }
        if (!*rebooted || g_stop) break;
        auto slot = ota::boot::simulate_boot(raw->env);
        if (!slot) {
          std::fprintf(stderr, "ota-fleet-sim: %s: %s\n", raw->id.c_str(), slot.error().message.c_str());
          break;
        }
      }
    });
  }
  std::fprintf(stderr, "ota-fleet-sim: %d devices started in %.1f s\n", devices,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (!until.empty()) {
      int done = 0;
      for (const auto& d : fleet_devices) done += d->final_phase >= 0;
      if (done == devices) {
        // Let the last reports leave the outboxes (acknowledged by the broker), for at most a minute.
        for (int i = 0; i < 120; ++i) {
          std::size_t unsent = 0;
          for (const auto& d : fleet_devices) {
            auto rec = d->state->get("outbox.json");
            if (rec && *rec && std::string((*rec)->begin(), (*rec)->end()).find("\"pending\":[]") == std::string::npos) ++unsent;
          }
          if (unsent == 0) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        g_stop = true;
      }
    }
  }
  for (auto& d : fleet_devices) d->thread.join();
  if (!stats_path.empty()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : fleet_devices) {
      std::string outbox;
      if (auto rec = d->state->get("outbox.json"); rec && *rec) outbox.assign((*rec)->begin(), (*rec)->end());
      auto j = nlohmann::json::parse(outbox.empty() ? "{}" : outbox, nullptr, false);
      out.push_back({{"device", d->id},
                     {"healthy", d->healthy},
                     {"final", d->final_phase >= 0 ? std::string(ota::campaign::phase_name(
                                                         static_cast<ota::campaign::Phase>(d->final_phase.load())))
                                                   : std::string()},
                     {"reports", j.is_object() ? j.value("next_seq", 1ull) - 1 : 0ull},
                     {"unsent", j.is_object() && j.contains("pending") ? j["pending"].size() : 0u}});
    }
    std::ofstream(stats_path) << out.dump(1) << "\n";
  }
  return 0;
}
