// The operator's page of a campaign, rendered by a real headless Chromium
// (Debian's chromium): `ota campaign serve` live from a real mosquitto while a
// bad release pauses at the failure gate, then `ota campaign report --html`
// from the journal after an abort. Screenshots go to screenshots/ in the
// test's working directory (under build/).
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ota/fleet/campaign_view.hpp"
#include "support/fleet.hpp"
#include "support/prometheus.hpp"  // http_get

namespace ota {
namespace {

using namespace test;

inline std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

class CampaignPage : public Fleet {
 protected:
  // The DOM after the page's script ran, or a screenshot when `png` is given.
  std::string chromium(const std::string& url, const std::string& png = {}) {
    std::vector<std::string> args{find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                  "--no-first-run", "--disable-dev-shm-usage", "--user-data-dir=" + path("chrome"),
                                  "--virtual-time-budget=5000", "--window-size=1280,2400"};
    if (png.empty()) args.push_back("--dump-dom");
    else args.push_back("--screenshot=" + png);
    args.push_back(url);
    ProcessOptions po;
    po.timeout_seconds = 90;
    auto r = run_process(args, po);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  static std::string shots() {
    const std::string d = std::filesystem::current_path().string() + "/screenshots";
    ::mkdir(d.c_str(), 0755);
    return d;
  }
  static bool has(const std::string& dom, const std::string& what) { return dom.find(what) != std::string::npos; }
};

TEST_F(CampaignPage, ServeAndReportShowWavesGatesFailuresAndDevicesInChromium) {
  ASSERT_FALSE(find_chromium().empty()) << "Debian's chromium is needed (scripts/install-deps.sh)";
  start_broker();
  Observer obs(broker_->port());
  const std::vector<std::uint32_t> waves{2500, 10000};
  const auto bad = ids_in_wave("paged", waves, 0, 3, "m");
  const auto good = ids_in_wave("paged", waves, 1, 4, "m");
  for (const auto& id : bad) start(add_device(id, false));
  for (const auto& id : good) start(add_device(id, true));
  auto p = publish("paged", {"--waves", "25,100", "--min-sample", "3", "--failure-threshold", "0.25"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("paged");
  const int port = free_loopback_port();
  Spawned serve({kOta, "campaign", "serve", "--fleet", kFleet, "--broker", broker_url(), "--listen",
                 "127.0.0.1:" + std::to_string(port)},
                path("serve.log"));
  // The failure gate pauses the campaign once the bad devices rolled back; the page's data follows.
  ASSERT_TRUE(eventually([&] { return obs.count("paged", cp::Phase::kRolledBack) == bad.size(); }, 90s)) << logs();
  ASSERT_TRUE(eventually([&] {
    const std::string v = http_get(port, "/api/view");
    return has(v, "\"state\":\"paused\"") && has(v, "health check failed");
  }, 20s)) << slurp(path("serve.log"));

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  const std::string dom = chromium(url);
  EXPECT_TRUE(has(dom, "data-campaign=\"paged\"")) << dom.substr(0, 2000);
  EXPECT_TRUE(has(dom, "state-paused"));
  EXPECT_TRUE(has(dom, "Wave 1 (25 % of the fleet)"));
  EXPECT_TRUE(has(dom, "Wave 2 (100 % of the fleet), not open"));
  // Each wave's chart with its series and the gates' thresholds.
  for (const char* w : {"1", "2"}) EXPECT_TRUE(has(dom, std::string("data-wave=\"") + w + "\"")) << w;
  EXPECT_TRUE(has(dom, "data-threshold=\"success\""));
  EXPECT_TRUE(has(dom, "data-threshold=\"failure\""));
  EXPECT_TRUE(has(dom, "data-series=\"failure\""));
  // Failures by reason, and every device in the table.
  EXPECT_TRUE(has(dom, "health check failed"));
  EXPECT_TRUE(has(dom, "3 targeted, 0 succeeded, 3 failed (3 rolled back"));
  for (const auto& id : bad) EXPECT_TRUE(has(dom, "data-device=\"" + id + "\"")) << id;
  for (const auto& id : good) EXPECT_TRUE(has(dom, "data-device=\"" + id + "\"")) << id;
  // The search box filters the table (#q= fills it).
  const std::string filtered = chromium(url + "#q=rolled");
  for (const auto& id : bad) EXPECT_TRUE(has(filtered, "data-device=\"" + id + "\"")) << id;
  for (const auto& id : good) EXPECT_FALSE(has(filtered, "data-device=\"" + id + "\"")) << id;
  chromium(url, shots() + "/campaign-serve.png");
  EXPECT_GT(std::filesystem::file_size(shots() + "/campaign-serve.png"), 10000u);

  // Abort; then the page from the journal alone.
  auto a = ota({"campaign", "abort", "paged", "--fleet", kFleet, "--broker", broker_url(), "--key", path("operator.key")});
  ASSERT_EQ(a.exit_code, 0) << a.err << logs();
  EXPECT_EQ(controller_->wait(30s), 63) << logs();
  auto r = ota({"campaign", "report", "paged", "--dir", path("campaigns"), "--html", "-o", path("report.html"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string html = slurp(path("report.html"));
  EXPECT_FALSE(has(html, "http://") && has(html, "<script src")) << "self-contained";
  const std::string rdom = chromium("file://" + path("report.html"));
  EXPECT_TRUE(has(rdom, "data-campaign=\"paged\""));
  EXPECT_TRUE(has(rdom, "state-aborted"));
  EXPECT_TRUE(has(rdom, "data-threshold=\"failure\""));
  EXPECT_TRUE(has(rdom, "data-series=\"progress\""));
  EXPECT_TRUE(has(rdom, "health check failed"));
  for (const auto& id : bad) EXPECT_TRUE(has(rdom, "data-device=\"" + id + "\"")) << id;
  chromium("file://" + path("report.html"), shots() + "/campaign-report.png");
  EXPECT_GT(std::filesystem::file_size(shots() + "/campaign-report.png"), 10000u);
  // The same view as JSON.
  auto j = ota({"campaign", "report", "paged", "--dir", path("campaigns")});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  auto view = Json::parse(j.out);
  ASSERT_EQ(view["campaigns"].size(), 1u);
  EXPECT_EQ(view["campaigns"][0]["state"], "aborted");
  EXPECT_EQ(view["campaigns"][0]["failures"].begin().value(), 3);
  EXPECT_GE(view["campaigns"][0]["history"].size(), 2u);
  validate("campaign-view.schema.json", {save("view.json", j.out)});
  validate("campaign-view.schema.json", {save("live-view.json", http_get(port, "/api/view"))});
}

// A reason a device wrote cannot inject markup or end the embedded data early.
TEST(CampaignPageRender, DeviceTextStaysText) {
  cp::CampaignView v;
  v.campaign.id = "c";
  v.campaign.fleet = "f";
  v.campaign.version = "1";
  v.campaign.waves = {10000};
  cp::Report r;
  r.device = "d1";
  r.campaign = "c";
  r.phase = cp::Phase::kFailed;
  r.reason = "</script><script>alert(1)</script><img src=x onerror=alert(2)>";
  v.devices["d1"] = r;
  const std::string page = cp::render_page(cp::encode_views({v}, 1780000000, "test"));
  EXPECT_EQ(page.find("</script><script>alert"), std::string::npos);
  EXPECT_NE(page.find("<\\/script><script>alert(1)<\\/script>"), std::string::npos);
  // Exactly the page's own two script elements.
  std::size_t scripts = 0;
  for (auto at = page.find("</script>"); at != std::string::npos; at = page.find("</script>", at + 1)) ++scripts;
  EXPECT_EQ(scripts, 2u);
}

}  // namespace
}  // namespace ota
