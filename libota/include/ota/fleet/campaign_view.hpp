// The operator's view of campaigns: what `ota campaign serve` shows live and
// `ota campaign report --html` writes after the fact (docs/cli.md): each
// wave's counts over time with the gates' thresholds, failures by reason,
// every device with its phase.
//
// Contract:
// - view_from_journal() reads a campaign directory's journal only (the
//   controller's audit log): the publication, the decisions and every
//   journaled result, sampled at most kViewSamples times over the campaign
//   and at every decision.
// - LiveViews takes what a broker holds for a fleet: the campaign documents
//   (shown, not trusted: the page is read-only and verifies nothing), the
//   controllers' retained status documents (the counts, one history sample
//   each) and the devices' retained states (read unverified, like
//   `ota campaign status`). Messages that do not parse are ignored. It keeps
//   at most kViewSamples samples per campaign (older ones thinned out) and
//   kViewMaxCampaigns campaigns.
// - encode_views() is the JSON the page renders (schemas/campaign-view.schema.json).
//   render_page() is a self-contained HTML page with no external resources:
//   given views, it embeds them (every "</" escaped), else it polls
//   `api/view` every 2 s. Device text reaches the page only as text nodes.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/mqtt.hpp"

namespace ota::campaign {

inline constexpr std::size_t kViewSamples = 240;
inline constexpr std::size_t kViewMaxCampaigns = 64;

struct WaveSample {
  trust::Time t = 0;
  std::vector<WaveCounts> waves;
};

struct CampaignView {
  Campaign campaign;
  Control control;
  std::vector<WaveCounts> waves;          // the latest counts
  std::vector<trust::Time> wave_opened;   // when each open wave opened (0: unknown)
  std::vector<WaveSample> history;        // oldest first
  std::map<std::string, Report> devices;  // the campaign's devices, by their last report
};

std::string encode_views(const std::vector<CampaignView>& views, trust::Time now, std::string_view source);
std::string render_page(std::string_view views_json);

Result<CampaignView> view_from_journal(const std::string& campaign_dir);

class LiveViews {
 public:
  // One campaign, or every campaign of the fleet when `only` is empty.
  LiveViews(std::string fleet, std::string only = {});
  // The filters to subscribe to.
  std::vector<std::string> filters() const;
  void take(const mqtt::Message& m, trust::Time now);
  std::vector<CampaignView> views() const;

 private:
  struct Entry {
    CampaignView view;
    bool have_campaign = false;
  };
  std::string fleet_, only_;
  std::map<std::string, Entry> campaigns_;
  std::map<std::string, Report> devices_;  // every device of the fleet
};

}  // namespace ota::campaign
