// libFuzzer target: what `ota campaign serve` takes from a broker (anyone
// who can publish there may send it) and the page it renders from that.
// The input is a sequence of messages separated by a 0 byte; each message's
// first byte picks its topic (modulo 3: a campaign document, a controller's status or
// a device's state, under fleet "f", with the campaign or device name up to
// the first newline), the rest after the newline is the payload.
//
// Oracles beyond "no crash, no sanitizer report":
// - at most kViewMaxCampaigns campaigns, each with at most kViewSamples samples;
// - encode_views() is valid JSON with one entry per view;
// - the rendered page holds exactly its own two script elements, whatever
//   the devices and documents said.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "ota/fleet/campaign_view.hpp"

namespace cp = ota::campaign;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cp::LiveViews live("f");
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t start = 0;
  ota::trust::Time now = 1780000000;
  while (start < all.size()) {
    std::size_t end = all.find('\0', start);
    if (end == std::string_view::npos) end = all.size();
    const std::string_view msg = all.substr(start, end - start);
    start = end + 1;
    if (msg.empty()) continue;
    const auto nl = msg.find('\n');
    const std::string name(msg.substr(1, nl == std::string_view::npos ? std::string_view::npos : nl - 1));
    const std::string payload(nl == std::string_view::npos ? std::string_view() : msg.substr(nl + 1));
    std::string topic;
    switch (static_cast<unsigned char>(msg[0]) % 3) {
      case 0: topic = "ota/f/campaigns/" + name; break;
      case 1: topic = "ota/f/campaigns/" + name + "/status"; break;
      default: topic = "ota/f/devices/" + name + "/state"; break;
    }
    live.take({topic, payload, 1, true, 0, {}}, now++);
  }
  const auto views = live.views();
  check(views.size() <= cp::kViewMaxCampaigns);
  for (const auto& v : views) check(v.history.size() <= cp::kViewSamples);
  const std::string json = cp::encode_views(views, now, "fuzz");
  const auto j = nlohmann::json::parse(json, nullptr, false);
  check(!j.is_discarded() && j["campaigns"].size() == views.size());
  std::string page = cp::render_page(json);
  for (auto& ch : page) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::size_t scripts = 0;
  for (auto at = page.find("</script"); at != std::string::npos; at = page.find("</script", at + 1)) ++scripts;
  check(scripts == 2);
  return 0;
}
