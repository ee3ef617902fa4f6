// ota-controller-bench: the campaign controller's own throughput, without
// the devices. The real Controller (libota) runs on a campaign directory with
// its real journal (fsync'd as in production) and takes device reports that
// were generated beforehand, as fast as it asks for them, through an
// in-process mqtt::Client (no broker: the controller's own limit). Reports/s
// and memory are measured for the fleet size, first while the view fills (one
// first sighting per device, each journaled), then in the steady state
// (downloading, rebooting, succeeded for every device, the successes
// journaled), with signed reports (Ed25519 per report, checked against the
// fleet registry; at most kMaxRegistryDevices) or unsigned ones.
//
//   ota-controller-bench [--devices N] [--reports N] [--mode signed|unsigned] [--dir DIR]
//
// Output: one line of JSON on stdout. Exit 0 when every result was counted
// exactly once; 1 otherwise. One fleet size per process, so that its memory
// figures are its own (bench/controller_bench.sh runs the sizes).
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "ota/core/hash.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/fleet/mqtt.hpp"
#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"

namespace cp = ota::campaign;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr ota::trust::Time kCreated = 1780000000;
const std::string kFleet = "bench";
const std::string kCampaign = "throughput";

// Resident and peak memory of this process (KiB), from /proc/self/status.
std::pair<long, long> memory_kib() {
  std::ifstream f("/proc/self/status");
  long rss = 0, hwm = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stol(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stol(line.substr(6));
  }
  return {rss, hwm};
}

void die(const std::string& what) {
  std::fprintf(stderr, "ota-controller-bench: %s\n", what.c_str());
  std::exit(1);
}

// Reports generated beforehand, in one block (so that the process's
// resident memory, measured with the block in place, grows only by what the
// controller keeps).
struct Feed {
  std::string bytes;
  std::vector<std::array<std::size_t, 3>> at;  // offset, topic length, payload length
  void add(const std::string& topic, const std::string& payload) {
    at.push_back({bytes.size(), topic.size(), payload.size()});
    bytes += topic;
    bytes += payload;
  }
  std::size_t size() const { return at.size(); }
};

// The reports, handed to the controller as fast as it calls next().
class FeedClient final : public ota::mqtt::Client {
 public:
  void load(const Feed* f) {
    std::lock_guard<std::mutex> lock(mu_);
    feed_ = f;
    next_ = 0;
    drained_ = false;
  }
  bool drained() const { return drained_; }

  ota::Result<int> publish(const ota::mqtt::Message&) override { return ++mid_; }
  ota::Status subscribe(const std::string&, int) override { return ota::ok(); }
  ota::Status unsubscribe(const std::string&) override { return ota::ok(); }
  std::optional<ota::mqtt::Event> next(std::chrono::milliseconds timeout) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (feed_ && next_ < feed_->size()) {
        const auto [off, tl, pl] = feed_->at[next_++];
        ota::mqtt::Event e{ota::mqtt::Event::Kind::kMessage,
                           {feed_->bytes.substr(off, tl), feed_->bytes.substr(off + tl, pl), 1, false, 0, {}},
                           false, 0, 0};
        return e;
      }
      // The controller gathers waiting messages with a zero timeout, then
      // handles them; it asks with its tick only once all are handled.
      if (timeout.count() > 0) drained_ = true;
    }
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(timeout, 1ms));
    return std::nullopt;
  }
  bool connected() const override { return true; }
  void stop() override {}

 private:
  std::mutex mu_;
  const Feed* feed_ = nullptr;
  std::size_t next_ = 0;
  std::atomic<bool> drained_{false};
  int mid_ = 0;
};

std::string device_id(std::size_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "dev-%07zu", i);
  return b;
}

struct Fleet {
  std::vector<std::string> ids;
};

// A campaign directory as `ota publish` leaves it: one wave of the whole
// fleet, gates that never pause it (the bench measures taking reports).
void make_campaign(const std::string& dir, const std::vector<std::string>& ids,
                   const std::vector<ota::keys::PublicKey>& pubs, bool signed_reports) {
  std::filesystem::remove_all(dir);
  auto pub = cp::prepare_directory(dir);
  if (!pub) die(pub.error().message);
  auto release = ota::keys::SecretKey::from_seed(ota::Bytes(32, 7));
  if (!release) die(release.error().message);
  cp::Campaign c;
  c.id = kCampaign;
  c.fleet = kFleet;
  c.created = kCreated;
  c.expires = kCreated + 30 * 86400;
  c.version = "2.0.0";
  c.hardware = {"board"};
  c.url = "http://127.0.0.1/b.otb";
  c.waves = {10000};
  c.gates.success_threshold = 0;
  c.gates.failure_threshold = 1;
  c.gates.device_timeout_s = 30 * 86400;
  c.controller = *pub;
  if (signed_reports) {
    cp::Registry reg;
    reg.fleet = kFleet;
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (auto st = cp::register_device(reg, ids[i], pubs[i], false); !st) die(st.error().message);
    const ota::Bytes text = cp::encode_registry(reg);
    std::ofstream(dir + "/" + cp::kRegistryFile, std::ios::binary).write(reinterpret_cast<const char*>(text.data()),
                                                                          static_cast<std::streamsize>(text.size()));
    auto op = ota::keys::SecretKey::from_seed(ota::Bytes(32, 9));
    c.security = cp::security_for(text, reg, {op->public_key()});
  }
  auto control = cp::initial_control(dir, c, kCreated);
  if (!control) die(control.error().message);
  ota::trust::Envelope env;
  env.payload_type = std::string(cp::kCampaignType);
  env.payload = cp::encode_campaign(c);
  env.signatures.push_back(
      {release->public_key().id(), release->sign(ota::trust::signing_message(cp::kCampaignType, env.payload))});
  if (auto st = cp::journal_publication(dir, cp::encode_document({env, *control, {}}), kCreated); !st)
    die(st.error().message);
}

std::string report_text(const std::string& device, std::uint64_t seq, cp::Phase phase, const ota::keys::SecretKey* key) {
  cp::Report r;
  r.device = device;
  r.seq = seq;
  r.boot = "b1";
  r.time = kCreated + 1;
  r.campaign = kCampaign;
  r.phase = phase;
  r.version = phase == cp::Phase::kSucceeded ? "2.0.0" : "1.0.0";
  r.bytes_fetched = phase == cp::Phase::kDownloading ? 1000 : 0;
  if (phase == cp::Phase::kSucceeded) {
    r.slot = "b";  // the install receipt a signed campaign requires of a success
    r.image_hash = ota::Digest{};
  }
  return key ? cp::sign_report(r, *key) : cp::encode_report(r);
}

// Publishes every message of `f` at QoS 1, retained (as devices publish their
// state), keeping at most `window` unacknowledged; returns once all are acknowledged.
void publish_all(ota::mqtt::Client& pub, const Feed& f, std::size_t window = 10000) {
  std::size_t acked = 0;
  auto drain = [&](std::chrono::milliseconds wait) {
    while (auto e = pub.next(wait)) {
      if (e->kind == ota::mqtt::Event::Kind::kPublished) ++acked;
      wait = 0ms;
    }
  };
  for (std::size_t k = 0; k < f.size(); ++k) {
    const auto [off, tl, pl] = f.at[k];
    ota::mqtt::Message m{f.bytes.substr(off, tl), f.bytes.substr(off + tl, pl), 1, true, 0, {}};
    if (auto r = pub.publish(m); !r) die("publish: " + r.error().message);
    drain(0ms);
    while (k + 1 - acked > window) drain(10ms);
  }
  const auto end = Clock::now() + 120s;
  while (acked < f.size() && Clock::now() < end) drain(10ms);
  if (acked < f.size()) die("the broker acknowledged " + std::to_string(acked) + " of " + std::to_string(f.size()));
}

// ota_campaign_reports_total from a metrics text.
std::uint64_t reports_total(const std::string& metrics) {
  const auto at = metrics.find("\nota_campaign_reports_total{");
  if (at == std::string::npos) return 0;
  const auto sp = metrics.find("} ", at);
  return sp == std::string::npos ? 0 : std::stoull(metrics.substr(sp + 2));
}

// The controller's options in every run: a fixed clock (nothing times out), no
// reconciliation (nothing is lost to read again), no copy of the views.
cp::RunOptions bench_options(const volatile bool* stop) {
  cp::RunOptions o;
  o.now = [] { return kCreated + 5; };
  o.stop = stop;
  o.reconcile = std::chrono::hours(1);
  o.change_devices = false;
  return o;
}

struct Phase {
  std::string name;
  std::size_t reports = 0;
  double seconds = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The campaign controller's throughput alone, for one fleet size (bench/controller_bench.sh)"};
  std::size_t n = 10000;
  std::size_t steady = 300000;
  std::string mode = "signed";
  std::string dir = "bench/data/runs/controller";
  app.add_option("--devices", n, "Fleet size (device views)")->check(CLI::Range(std::size_t{2}, std::size_t{10000000}));
  app.add_option("--reports", steady, "Steady-state reports (whole rounds of the fleet, at least 3)");
  app.add_option("--mode", mode, "signed (Ed25519 per report, checked against the registry) or unsigned")
      ->check(CLI::IsMember({"signed", "unsigned"}));
  app.add_option("--dir", dir, "Where the campaign directory (and its journal) goes; removed at the end");
  std::string broker;
  app.add_option("--broker", broker,
                 "Through this broker (mqtt://127.0.0.1:PORT, an empty one of the bench's own): the reports are "
                 "published to it retained, the fill taken by the controller's subscription, the steady state as "
                 "fast as the publishers send it");
  std::size_t publishers = 4;
  app.add_option("--publishers", publishers, "With --broker: publishing connections (devices send in parallel)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}));
  CLI11_PARSE(app, argc, argv);
  const bool signed_reports = mode == "signed";
  if (signed_reports && n > cp::kMaxRegistryDevices)
    die(std::to_string(n) + " devices signed: the registry holds at most " + std::to_string(cp::kMaxRegistryDevices));

  // The reports, generated device by device (one secret key alive at a
  // time), laid out round by round: the fill (one "waiting" per device), then
  // rounds of downloading, rebooting, succeeded over the fleet (device 0
  // stays waiting, so the campaign never completes).
  Fleet f;
  f.ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) f.ids.push_back(device_id(i));
  const cp::Phase cycle[] = {cp::Phase::kDownloading, cp::Phase::kRebooting, cp::Phase::kSucceeded};
  const std::size_t rounds = std::max<std::size_t>(3, (steady + n - 1) / n);
  std::vector<std::string> texts((rounds + 1) * n);
  std::vector<ota::keys::PublicKey> pubs;
  for (std::size_t i = 0; i < n; ++i) {
    std::optional<ota::keys::SecretKey> key;
    if (signed_reports) {
      ota::Bytes seed(32, 0);
      for (int b = 0; b < 8; ++b) seed[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(i >> (8 * b));
      seed[31] = 1;
      auto k = ota::keys::SecretKey::from_seed(seed);
      if (!k) die(k.error().message);
      key.emplace(std::move(*k));
      pubs.push_back(key->public_key());
    }
    texts[i] = report_text(f.ids[i], 1, cp::Phase::kWaiting, key ? &*key : nullptr);
    for (std::size_t r = 0; r < rounds; ++r)
      texts[(r + 1) * n + i] = report_text(f.ids[i], 2 + r, i == 0 ? cp::Phase::kWaiting : cycle[r % 3], key ? &*key : nullptr);
  }
  Feed fill, work;
  for (std::size_t k = 0; k < texts.size(); ++k) {
    const std::size_t i = k % n;
    (k < n ? fill : work).add(cp::state_topic(kFleet, f.ids[i]), texts[k]);
    std::string().swap(texts[k]);
  }
  std::vector<std::string>().swap(texts);

  const std::string cdir = dir + "/" + std::to_string(n) + "-" + mode;
  make_campaign(cdir, f.ids, pubs, signed_reports);
  const auto [rss0, hwm0] = memory_kib();
  (void)hwm0;
  const auto t_open = Clock::now();
  auto ctl = cp::Controller::open(cdir);
  if (!ctl) die(ctl.error().message);
  const double open_s = std::chrono::duration<double>(Clock::now() - t_open).count();

  std::uint64_t dropped = 0;
  Phase p1, p2;
  long rss1 = 0, hwm1 = 0;
  if (broker.empty()) {
    FeedClient client;
    volatile bool stop = false;
    cp::RunOptions o = bench_options(&stop);
    std::thread t([&] {
      auto r = (*ctl)->run(client, o);
      if (!r) die(r.error().message);
    });
    auto run_phase = [&](const char* name, const Feed& msgs) {
      Phase ph{name, msgs.size(), 0};
      const auto t0 = Clock::now();
      client.load(&msgs);
      while (!client.drained()) std::this_thread::sleep_for(200us);
      ph.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      return ph;
    };
    p1 = run_phase("fill", fill);
    std::tie(rss1, hwm1) = memory_kib();
    p2 = run_phase("steady", work);
    stop = true;
    t.join();
  } else {
    // Through a real broker: the fill as retained states the controller's
    // subscription receives at once (a controller restart), the steady state
    // published while it runs.
    auto opts = ota::mqtt::parse_broker_url(broker, {});
    if (!opts) die(opts.error().message);
    // The publishers, each with its share of the reports (a device's reports stay on one connection, in order).
    std::vector<std::unique_ptr<ota::mqtt::Client>> pubs;
    std::vector<Feed> fills(publishers), works(publishers);
    for (std::size_t k = 0; k < publishers; ++k) {
      ota::mqtt::Options po = *opts;
      po.client_id = "bench-publisher-" + std::to_string(k);
      auto pub = ota::mqtt::connect(po);
      if (!pub) die(pub.error().message);
      if (auto st = ota::mqtt::wait_connected(**pub, 10s); !st) die(st.error().message);
      pubs.push_back(std::move(*pub));
    }
    auto split = [&](const Feed& f, std::vector<Feed>& parts) {
      for (std::size_t k = 0; k < f.size(); ++k) {
        const auto [off, tl, pl] = f.at[k];
        parts[(k % n) % publishers].add(f.bytes.substr(off, tl), f.bytes.substr(off + tl, pl));
      }
    };
    split(fill, fills);
    split(work, works);
    auto publish_parallel = [&](std::vector<Feed>& parts) {
      std::vector<std::thread> ts;
      for (std::size_t k = 0; k < publishers; ++k) ts.emplace_back([&, k] { publish_all(*pubs[k], parts[k]); });
      for (auto& th : ts) th.join();
    };
    publish_parallel(fills);
    ota::mqtt::Options co = *opts;
    co.client_id = "bench-controller";
    cp::use_controller_queue(co);
    auto client = ota::mqtt::connect(co);
    if (!client) die(client.error().message);
    if (auto st = ota::mqtt::wait_connected(**client, 10s); !st) die(st.error().message);
    std::atomic<std::uint64_t> taken{0};
    volatile bool stop = false;
    cp::RunOptions o = bench_options(&stop);
    o.metrics_every = 20ms;
    o.on_metrics = [&](const std::string& text) { taken = reports_total(text); };
    // Waits until the controller took `target` reports; stops after 30 s without progress.
    auto wait_for = [&](std::uint64_t target, Clock::time_point t0) {
      std::uint64_t last = taken;
      auto progress = Clock::now();
      while (taken < target) {
        std::this_thread::sleep_for(1ms);
        if (taken != last) last = taken, progress = Clock::now();
        if (Clock::now() - progress > 30s) break;
      }
      return std::chrono::duration<double>(Clock::now() - t0).count() -
             (taken < target ? 30.0 : 0.0);  // the wait for progress that never came
    };
    const auto t0 = Clock::now();
    std::thread t([&] {
      auto r = (*ctl)->run(**client, o);
      if (!r) die(r.error().message);
    });
    p1 = {"fill", fill.size(), wait_for(fill.size(), t0)};
    std::tie(rss1, hwm1) = memory_kib();
    const auto t1 = Clock::now();
    std::thread sender([&] { publish_parallel(works); });
    p2 = {"steady", work.size(), wait_for(fill.size() + work.size(), t1)};
    sender.join();
    stop = true;
    t.join();
    dropped = (*client)->dropped().overflow + (*client)->dropped().oversized;
    (*client)->stop();
    for (auto& pub : pubs) pub->stop();
    std::fprintf(stderr, "ota-controller-bench: taken %llu of %zu reports, %llu dropped by the client queue\n",
                 static_cast<unsigned long long>(taken.load()), fill.size() + work.size(),
                 static_cast<unsigned long long>(dropped));
  }
  const auto [rss2, hwm2] = memory_kib();
  const auto snap = (*ctl)->snapshot(kCreated + 5, false);
  std::uint64_t succeeded = 0, targeted = 0;
  for (const auto& w : snap.waves) succeeded += w.succeeded, targeted += w.targeted;
  std::error_code ec;
  const auto journal_bytes = std::filesystem::file_size(cdir + "/" + cp::kJournalFile, ec);
  // A controller started again on the same journal: how long the replay of a
  // fleet's results takes.
  ctl->reset();
  const auto t_reopen = Clock::now();
  auto again = cp::Controller::open(cdir);
  if (!again) die(again.error().message);
  const double reopen_s = std::chrono::duration<double>(Clock::now() - t_reopen).count();
  again->reset();
  nlohmann::json j = {{"devices", n},
                      {"mode", mode},
                      {"transport", broker.empty() ? "memory" : "mosquitto"},
                      {"dropped_by_client_queue", dropped},
                      {"open_s", open_s},
                      {"fill_reports", p1.reports},
                      {"fill_s", p1.seconds},
                      {"fill_reports_per_s", static_cast<double>(p1.reports) / p1.seconds},
                      {"steady_reports", p2.reports},
                      {"steady_s", p2.seconds},
                      {"steady_reports_per_s", static_cast<double>(p2.reports) / p2.seconds},
                      {"targeted", targeted},
                      {"succeeded", succeeded},
                      {"journal_bytes", ec ? 0 : journal_bytes},
                      {"reopen_s", reopen_s},
                      {"controller_rss_after_fill_kib", rss1 - rss0},
                      {"controller_rss_end_kib", rss2 - rss0},
                      {"process_peak_kib", std::max(hwm1, hwm2)}};
  std::printf("%s\n", j.dump().c_str());
  std::filesystem::remove_all(cdir);
  // Every device but the one kept waiting committed exactly once.
  return succeeded == n - 1 && targeted == n && dropped == 0 ? 0 : 1;
}
