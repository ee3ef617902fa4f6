// Campaign metrics (ota/fleet/metrics.hpp) and the read-only HTTP server
// that serves them (ota/fleet/http_server.hpp), over a real loopback socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "ota/fleet/http_server.hpp"
#include "ota/fleet/metrics.hpp"

namespace ota {
namespace {

namespace cp = campaign;

struct World {
  cp::Campaign campaign;
  cp::ControllerState state;
  std::map<std::string, cp::DeviceView> devices;
  std::map<std::string, std::uint64_t> dropped, ignored;
  cp::ControllerCounters counters;

  World() {
    campaign.id = "fw-1.1";
    campaign.fleet = "meters";
    campaign.version = "1.1.0";
    campaign.waves = {1000, 5000, 10000};
    campaign.gates.success_threshold = 0.9;
    campaign.gates.failure_threshold = 0.1;
    state.control.campaign = campaign.id;
    state.control.wave = 1;
    state.control.revision = 3;
    state.wave_opened = {1700000000, 1700000600};
  }
  void device(const std::string& id, cp::Phase p, std::string reason = {}, std::uint64_t bytes = 0) {
    cp::DeviceView v;
    v.wave = cp::wave_of(campaign, id);
    v.phase = p;
    v.reason = std::move(reason);
    v.bytes_fetched = bytes;
    v.last = 1700000700;
    devices[id] = v;
  }
  std::string text(double rate = 0) const {
    const auto waves = cp::count(campaign, state, devices, 1700000800);
    return cp::encode_metrics({campaign, state, waves, devices, dropped, ignored, counters, rate});
  }
};

// The samples of the text: "name{labels}" -> value; fails the test on a line
// that is not a comment, a sample, or that repeats a series.
std::map<std::string, double> samples(const std::string& text) {
  static const std::regex line(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\} (\S+)$)");
  static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, comment)) continue;
    EXPECT_TRUE(std::regex_match(l, m, line)) << "not a sample: " << l;
    if (m.empty()) continue;
    const std::string key = m[1].str() + "{" + m[2].str() + "}";
    EXPECT_EQ(out.count(key), 0u) << "repeated series: " << key;
    out[key] = std::stod(m[3].str());
  }
  return out;
}

std::string base() { return "campaign=\"fw-1.1\",fleet=\"meters\""; }

TEST(CampaignMetrics, EveryFamilyHasHelpAndTypeAndEverySeriesItsLabels) {
  World w;
  w.device("m1", cp::Phase::kSucceeded, "", 1000);
  w.device("m2", cp::Phase::kDownloading, "", 500);
  const std::string text = w.text();
  std::set<std::string> typed;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("# TYPE ", 0) == 0) {
      const auto name = l.substr(7, l.find(' ', 7) - 7);
      EXPECT_TRUE(typed.insert(name).second) << "TYPE twice: " << name;
      const auto type = l.substr(l.rfind(' ') + 1);
      EXPECT_TRUE(type == "gauge" || type == "counter") << l;
      if (type == "counter") {
        EXPECT_EQ(name.substr(name.size() - 6), "_total") << name;
      }
    } else if (l[0] != '#') {
      const auto name = l.substr(0, l.find('{'));
      EXPECT_EQ(typed.count(name), 1u) << "a sample before its TYPE: " << l;
      EXPECT_NE(l.find(base()), std::string::npos) << l;
    }
  }
  EXPECT_GE(typed.size(), 20u);
  EXPECT_FALSE(samples(text).empty());
}

TEST(CampaignMetrics, WavesPhasesBytesAndTheStateAreCounted) {
  World w;
  // Devices in waves 1 and 2 (open) and 3 (not yet).
  int n = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string id = "m" + std::to_string(i);
    const auto wave = cp::wave_of(w.campaign, id);
    if (wave == 0) w.device(id, cp::Phase::kSucceeded, "", 100), ++n;
    else if (wave == 1) w.device(id, i % 2 ? cp::Phase::kDownloading : cp::Phase::kRolledBack, "health check failed", 10);
    else w.device(id, cp::Phase::kWaiting);
  }
  w.state.control.state = cp::RunState::kPaused;
  const auto s = samples(w.text(12.5));
  const auto waves = cp::count(w.campaign, w.state, w.devices, 1700000800);
  for (std::size_t i = 0; i < waves.size(); ++i) {
    const std::string wl = base() + ",wave=\"" + std::to_string(i + 1) + "\"";
    EXPECT_EQ(s.at("ota_campaign_wave_devices{" + wl + ",outcome=\"targeted\"}"), waves[i].targeted);
    EXPECT_EQ(s.at("ota_campaign_wave_devices{" + wl + ",outcome=\"succeeded\"}"), waves[i].succeeded);
    EXPECT_EQ(s.at("ota_campaign_wave_devices{" + wl + ",outcome=\"rolled_back\"}"), waves[i].rolled_back);
    EXPECT_EQ(s.at("ota_campaign_wave_devices{" + wl + ",outcome=\"pending\"}"), waves[i].pending);
    EXPECT_EQ(s.at("ota_campaign_wave_bytes_fetched{" + wl + "}"), waves[i].bytes_fetched);
  }
  EXPECT_EQ(s.at("ota_campaign_wave_devices{" + base() + ",wave=\"1\",outcome=\"succeeded\"}"), n);
  EXPECT_EQ(s.at("ota_campaign_wave_share{" + base() + ",wave=\"2\"}"), 0.5);
  EXPECT_EQ(s.at("ota_campaign_wave_opened_timestamp_seconds{" + base() + ",wave=\"2\"}"), 1700000600);
  EXPECT_EQ(s.count("ota_campaign_wave_opened_timestamp_seconds{" + base() + ",wave=\"3\"}"), 0u);
  EXPECT_EQ(s.at("ota_campaign_waves{" + base() + "}"), 3);
  EXPECT_EQ(s.at("ota_campaign_waves_open{" + base() + "}"), 2);
  // Every phase has a series; they sum to the devices.
  double phases = 0;
  for (const char* p : {"idle", "waiting", "deferred", "downloading", "rebooting", "succeeded", "rolled-back", "failed",
                        "aborted", "skipped", "reverting", "reverted", "revert-failed"})
    phases += s.at("ota_campaign_devices{" + base() + ",phase=\"" + std::string(p) + "\"}");
  EXPECT_EQ(phases, 60);
  EXPECT_EQ(s.at("ota_campaign_devices{" + base() + ",phase=\"succeeded\"}"), n);
  double bytes = 0;
  for (const auto& [id, d] : w.devices) bytes += static_cast<double>(d.bytes_fetched);
  EXPECT_EQ(s.at("ota_campaign_bytes_fetched{" + base() + "}"), bytes);
  // One state is 1.
  EXPECT_EQ(s.at("ota_campaign_state{" + base() + ",state=\"paused\"}"), 1);
  EXPECT_EQ(s.at("ota_campaign_state{" + base() + ",state=\"running\"}"), 0);
  EXPECT_EQ(s.at("ota_campaign_reports_per_second{" + base() + "}"), 12.5);
  EXPECT_EQ(s.at("ota_campaign_gate_threshold{" + base() + ",gate=\"failure\"}"), 0.1);
  EXPECT_GT(s.at("ota_campaign_device_failures{" + base() + ",reason=\"health check failed\"}"), 0);
}

TEST(CampaignMetrics, CountersAndTheJournalLagAreShown) {
  World w;
  w.counters.reports = 1234;
  w.counters.results = 17;
  w.counters.decisions = 3;
  w.counters.journal_syncs = 9;
  w.counters.journal_unsynced = 4;
  w.counters.journal_synced = 1700000790;
  w.counters.started = 1700000000;
  w.dropped["bad-signature"] = 2;
  w.ignored["expired"] = 1;
  const auto s = samples(w.text());
  EXPECT_EQ(s.at("ota_campaign_reports_total{" + base() + "}"), 1234);
  EXPECT_EQ(s.at("ota_campaign_results_total{" + base() + "}"), 17);
  EXPECT_EQ(s.at("ota_campaign_decisions_total{" + base() + "}"), 3);
  EXPECT_EQ(s.at("ota_campaign_journal_syncs_total{" + base() + "}"), 9);
  EXPECT_EQ(s.at("ota_campaign_journal_unsynced_results{" + base() + "}"), 4);
  EXPECT_EQ(s.at("ota_campaign_journal_last_sync_timestamp_seconds{" + base() + "}"), 1700000790);
  EXPECT_EQ(s.at("ota_campaign_controller_start_timestamp_seconds{" + base() + "}"), 1700000000);
  EXPECT_EQ(s.at("ota_campaign_reports_dropped_total{" + base() + ",reason=\"bad-signature\"}"), 2);
  EXPECT_EQ(s.at("ota_campaign_commands_ignored_total{" + base() + ",reason=\"expired\"}"), 1);
}

TEST(CampaignMetrics, DeviceWrittenReasonsAreEscapedCutAndBounded) {
  World w;
  w.campaign.id = "id \"with\" \\ quotes";
  // 50 distinct reasons, one with every character that needs escaping, one very long with UTF-8.
  for (int i = 0; i < 50; ++i) w.device("d" + std::to_string(i), cp::Phase::kFailed, "reason " + std::to_string(i % 25));
  for (int i = 0; i < 5; ++i) w.device("x" + std::to_string(i), cp::Phase::kFailed, "a \"quoted\"\nmulti-line \\ reason");
  std::string long_reason;
  for (int i = 0; i < 100; ++i) long_reason += "\xc3\xa9";  // é: 200 bytes
  for (int i = 0; i < 5; ++i) w.device("y" + std::to_string(i), cp::Phase::kRolledBack, long_reason);
  const std::string text = w.text();
  EXPECT_NE(text.find(R"(campaign="id \"with\" \\ quotes")"), std::string::npos);
  const auto s = samples(text);
  std::size_t reasons = 0;
  double failed = 0;
  for (const auto& [k, v] : s)
    if (k.rfind("ota_campaign_device_failures{", 0) == 0) {
      ++reasons;
      failed += v;
      // Cut at a character boundary: an even number of the two-byte é.
      const auto at = k.find("\xc3\xa9");
      if (at != std::string::npos) {
        const auto end = k.find('"', at);
        EXPECT_EQ((end - at) % 2, 0u) << k;
        EXPECT_LE(end - at, cp::kMetricsReasonBytes);
      }
    }
  EXPECT_EQ(reasons, cp::kMetricsMaxReasons);
  EXPECT_EQ(failed, 60);  // nothing lost: the rest is "other"
  EXPECT_GT(s.at("ota_campaign_device_failures{" + std::string(R"(campaign="id \"with\" \\ quotes",fleet="meters")") +
                 ",reason=\"other\"}"),
            0);
  EXPECT_EQ(text.find("multi-line \\ reason"), std::string::npos);  // the backslash is doubled
  EXPECT_NE(text.find(R"(a \"quoted\"\nmulti-line \\ reason)"), std::string::npos);
}

TEST(CampaignMetrics, TheRateSpansItsWindow) {
  cp::RateWindow r(10);
  EXPECT_EQ(r.per_second(), 0);
  r.add(0, 0);
  EXPECT_EQ(r.per_second(), 0);
  r.add(1, 100);
  EXPECT_DOUBLE_EQ(r.per_second(), 100);
  for (int t = 2; t <= 30; ++t) r.add(t, 100 + static_cast<std::uint64_t>(t - 1) * 10);
  EXPECT_NEAR(r.per_second(), 10, 0.01);  // the burst at t=1 left the window
}

// ---- the HTTP server ----

TEST(HttpServer, ListenAddressesAreNumericWithAPort) {
  auto a = httpd::parse_listen_address("127.0.0.1:9464");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  EXPECT_FALSE(a->ipv6);
  a = httpd::parse_listen_address("[::1]:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_TRUE(a->ipv6);
  a = httpd::parse_listen_address("localhost:80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  for (const char* bad : {"", "9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:12a",
                          "example.com:80", "::1:80", "[::1]80", "[::1]", "[127.0.0.1]:80", ":80", "300.1.1.1:80"}) {
    auto r = httpd::parse_listen_address(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kUsage) << bad;
  }
}

// A raw HTTP/1.0 exchange on loopback: the status line and the body.
std::pair<std::string, std::string> http_exchange(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return {};
  }
  (void)!::write(fd, request.data(), request.size());
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto eol = all.find("\r\n");
  const auto body = all.find("\r\n\r\n");
  return {all.substr(0, eol), body == std::string::npos ? "" : all.substr(body + 4)};
}

TEST(HttpServer, ServesGetAndHeadRefusesTheRestAndSurvivesAHandlerThatThrows) {
  std::atomic<int> calls{0};
  auto server = httpd::serve("127.0.0.1:0", [&](const std::string& path) -> httpd::Response {
    ++calls;
    if (path == "/boom") throw std::runtime_error("secret detail");
    if (path == "/metrics") return {200, cp::kMetricsContentType, "a_metric 1\n"};
    return {404, "text/plain", "not found\n"};
  });
  ASSERT_TRUE(server) << server.error().message;
  const auto port = (*server)->port();
  ASSERT_NE(port, 0);
  EXPECT_EQ((*server)->url(), "http://127.0.0.1:" + std::to_string(port));

  auto [status, body] = http_exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status.substr(9), "200 OK");
  EXPECT_EQ(body, "a_metric 1\n");
  std::tie(status, body) = http_exchange(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status.substr(9), "200 OK");
  EXPECT_EQ(body, "");
  std::tie(status, body) = http_exchange(port, "GET /nothing HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status.substr(9), "404 Not Found");
  const int before = calls;
  std::tie(status, body) = http_exchange(port, "POST /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(status.substr(9, 3), "405");
  std::tie(status, body) = http_exchange(port, "GET /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(status.substr(9, 3), "413");
  EXPECT_EQ(calls, before);  // neither reached the handler
  std::tie(status, body) = http_exchange(port, "GET /boom HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status.substr(9, 3), "500");
  EXPECT_EQ(body.find("secret"), std::string::npos);
  // A header section larger than the connection's memory is refused.
  std::tie(status, body) = http_exchange(port, "GET /metrics HTTP/1.0\r\nX-Big: " + std::string(16384, 'a') + "\r\n\r\n");
  EXPECT_FALSE(status.size() > 9 && status.substr(9, 3) == "200") << status;
  // Still serving.
  std::tie(status, body) = http_exchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(body, "a_metric 1\n");
  server->reset();
  std::tie(status, body) = http_exchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status, "");  // stopped: the connection is refused
}

TEST(HttpServer, AnAddressInUseIsAnIoError) {
  auto first = httpd::serve("127.0.0.1:0", [](const std::string&) { return httpd::Response{}; });
  ASSERT_TRUE(first) << first.error().message;
  auto second = httpd::serve("127.0.0.1:" + std::to_string((*first)->port()),
                             [](const std::string&) { return httpd::Response{}; });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kIo);
  EXPECT_NE(second.error().message.find("127.0.0.1:"), std::string::npos) << second.error().message;
}

}  // namespace
}  // namespace ota
