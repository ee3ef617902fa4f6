// The operator's view of campaigns (ota/fleet/campaign_view.hpp).
#include "ota/fleet/campaign_view.hpp"

#include <algorithm>

#include "core/json.hpp"
#include "ota/fleet/controller.hpp"
#include "ota/fleet/identity.hpp"

namespace ota::campaign {

std::string page_template();  // page.cpp

namespace {

using json::Json;
using json::Ordered;
using json::parse_strict;

constexpr std::size_t kMaxStatusBytes = 1u << 20;

Ordered wave_json(const WaveCounts& w) {
  return Ordered{{"targeted", w.targeted}, {"succeeded", w.succeeded}, {"rolled_back", w.rolled_back},
                 {"failed", w.failed},     {"timed_out", w.timed_out}, {"aborted", w.aborted},
                 {"skipped", w.skipped},   {"pending", w.pending},     {"bytes_fetched", w.bytes_fetched}};
}

// Keeps at most kViewSamples: every other sample goes when the limit is reached.
void add_sample(std::vector<WaveSample>& h, WaveSample s) {
  if (!h.empty() && h.back().t == s.t) {
    h.back() = std::move(s);
    return;
  }
  h.push_back(std::move(s));
  if (h.size() <= kViewSamples) return;
  std::vector<WaveSample> kept;
  for (std::size_t i = 0; i < h.size(); ++i)
    if (i % 2 == 0 || i + 1 == h.size()) kept.push_back(std::move(h[i]));
  h = std::move(kept);
}

// The counts of a controller's status document ("waves"), or nothing.
std::optional<std::vector<WaveCounts>> status_waves(const std::string& text, Control& k, trust::Time& time) {
  auto j = parse_strict(text, kMaxStatusBytes, "campaign status");
  if (!j || !j->is_object() || !j->contains("waves") || !(*j)["waves"].is_array()) return std::nullopt;
  std::vector<WaveCounts> out;
  try {
    for (const auto& w : (*j)["waves"]) {
      WaveCounts c;
      c.targeted = w.value("targeted", std::uint64_t{0});
      c.succeeded = w.value("succeeded", std::uint64_t{0});
      c.rolled_back = w.value("rolled_back", std::uint64_t{0});
      c.failed = w.value("failed", std::uint64_t{0});
      c.timed_out = w.value("timed_out", std::uint64_t{0});
      c.aborted = w.value("aborted", std::uint64_t{0});
      c.skipped = w.value("skipped", std::uint64_t{0});
      c.pending = w.value("pending", std::uint64_t{0});
      c.bytes_fetched = w.value("bytes_fetched", std::uint64_t{0});
      out.push_back(c);
    }
    const std::string state = j->value("state", "");
    for (RunState s : {RunState::kRunning, RunState::kPaused, RunState::kAborted, RunState::kCompleted})
      if (state == run_state_name(s)) k.state = s;
    k.wave = static_cast<std::uint32_t>(j->value("wave", std::uint64_t{0}));
    k.reason = j->value("reason", "");
    k.revision = j->value("revision", std::uint64_t{0});
    auto t = trust::parse_time(j->value("time", ""));
    if (t) time = *t;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string encode_views(const std::vector<CampaignView>& views, trust::Time now, std::string_view source) {
  Ordered root;
  root["time"] = now;
  root["source"] = std::string(source);
  Ordered list = Ordered::array();
  for (const auto& v : views) {
    const Campaign& c = v.campaign;
    Ordered j;
    j["id"] = c.id;
    j["fleet"] = c.fleet;
    j["version"] = c.version;
    if (c.advisory) j["advisory"] = {{"ids", c.advisory->ids}, {"text", c.advisory->advisory}};
    j["state"] = run_state_name(v.control.state);
    j["reason"] = v.control.reason;
    j["gates"] = {{"success", c.gates.success_threshold}, {"failure", c.gates.failure_threshold},
                  {"min_sample", c.gates.min_sample}};
    Ordered waves = Ordered::array();
    for (std::size_t i = 0; i < c.waves.size(); ++i) {
      Ordered w = wave_json(i < v.waves.size() ? v.waves[i] : WaveCounts{});
      w["percent"] = static_cast<double>(c.waves[i]) / 100.0;
      w["open"] = i <= v.control.wave;
      w["opened"] = i < v.wave_opened.size() ? v.wave_opened[i] : 0;
      waves.push_back(std::move(w));
    }
    j["waves"] = std::move(waves);
    Ordered history = Ordered::array();
    for (const auto& s : v.history) {
      Ordered ws = Ordered::array();
      for (const auto& w : s.waves)
        ws.push_back({{"targeted", w.targeted}, {"succeeded", w.succeeded}, {"failed", w.failed},
                      {"rolled_back", w.rolled_back}});
      history.push_back({{"t", s.t}, {"waves", std::move(ws)}});
    }
    j["history"] = std::move(history);
    std::map<std::string, std::uint64_t> failures;
    Ordered devices = Ordered::array();
    for (const auto& [id, r] : v.devices) {
      if (is_failure(r.phase) || r.phase == Phase::kRevertFailed) ++failures[r.reason.empty() ? "unknown" : r.reason];
      devices.push_back({{"device", id},
                         {"wave", wave_of(c, id)},
                         {"phase", phase_name(r.phase)},
                         {"version", r.version},
                         {"bytes", r.bytes_fetched},
                         {"reason", r.reason}});
    }
    std::uint64_t timed_out = 0;
    for (const auto& w : v.waves) timed_out += w.timed_out;
    if (timed_out) failures["timed out (no report within the device timeout)"] += timed_out;
    j["failures"] = failures;
    j["devices"] = std::move(devices);
    list.push_back(std::move(j));
  }
  root["campaigns"] = std::move(list);
  return root.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string render_page(std::string_view views_json) {
  std::string page = page_template();
  std::string data(views_json);
  // Inside <script>: no "</" may end the element early (a device's reason).
  for (std::size_t at = data.find("</"); at != std::string::npos; at = data.find("</", at + 3)) data.replace(at, 2, "<\\/");
  const std::string marker = "/*OTA_VIEW*/";
  if (!data.empty()) page.replace(page.find(marker), marker.size(), data);
  return page;
}

Result<CampaignView> view_from_journal(const std::string& dir) {
  OTA_TRY_ASSIGN(auto journal, Journal::open(dir + "/" + kJournalFile));
  struct Rec {
    Json j;
    trust::Time t;
  };
  std::vector<Rec> recs;
  for (const auto& text : journal.records()) {
    Json j = Json::parse(text);  // checked by Journal::open
    recs.push_back({j, j.value("time", trust::Time{0})});
  }
  if (recs.empty() || recs.front().j.value("type", "") != "published")
    return fail(ErrorCode::kMalformed, "journal " + dir + "/" + kJournalFile + ": no publication");
  CampaignView v;
  ControllerState st;
  std::map<std::string, DeviceView> view;
  const trust::Time t0 = recs.front().t, t1 = std::max(recs.back().t, t0 + 1);
  const trust::Time step = std::max<trust::Time>(1, (t1 - t0) / static_cast<trust::Time>(kViewSamples / 2));
  trust::Time next_sample = t0;
  auto sample = [&](trust::Time t) {
    add_sample(v.history, {t, count(v.campaign, st, view, t)});
    next_sample = t + step;
  };
  for (const auto& [j, t] : recs) {
    const std::string type = j.value("type", "");
    if (type == "published") {
      OTA_TRY_ASSIGN(auto d, parse_document(j.at("document").dump()));
      OTA_TRY_ASSIGN(auto c, parse_campaign(d.campaign.payload));
      OTA_TRY_ASSIGN(auto k, parse_control(d.control.payload));
      v.campaign = std::move(c);
      st.control = k;
      st.wave_opened.assign(1, t);
    } else if (type == "decision") {
      OTA_TRY_ASSIGN(auto e, trust::parse_envelope(j.at("control").dump()));
      OTA_TRY_ASSIGN(auto k, parse_control(e.payload));
      if (k.wave > st.control.wave) st.wave_opened.resize(k.wave + 1, t);
      if (k.admit && k.admit.value_or(0) > st.control.admit.value_or(0)) st.admissions.emplace_back(*k.admit, t);
      st.control = k;
      sample(t);
    } else if (type == "result") {
      OTA_TRY_ASSIGN(auto r, parse_report(j.at("report").dump()));
      if (observe(view, v.campaign, r)) v.devices[r.device] = r;
      if (t >= next_sample) sample(t);
    }
  }
  sample(t1);
  v.control = st.control;
  v.wave_opened = st.wave_opened;
  v.waves = count(v.campaign, st, view, t1);
  // Only the campaign's devices (a first sighting may be of an idle device).
  for (auto it = v.devices.begin(); it != v.devices.end();)
    it = it->second.campaign == v.campaign.id ? std::next(it) : v.devices.erase(it);
  return v;
}

LiveViews::LiveViews(std::string fleet, std::string only) : fleet_(std::move(fleet)), only_(std::move(only)) {}

std::vector<std::string> LiveViews::filters() const {
  const std::string c = only_.empty() ? "+" : only_;
  return {"ota/" + fleet_ + "/campaigns/" + c, "ota/" + fleet_ + "/campaigns/" + c + "/status",
          "ota/" + fleet_ + "/devices/+/state"};
}

void LiveViews::take(const mqtt::Message& m, trust::Time now) {
  const std::string campaigns = "ota/" + fleet_ + "/campaigns/";
  const std::string devices = "ota/" + fleet_ + "/devices/";
  if (m.payload.empty()) return;
  if (m.topic.rfind(campaigns, 0) == 0) {
    std::string rest = m.topic.substr(campaigns.size());
    const bool status = rest.size() > 7 && rest.compare(rest.size() - 7, 7, "/status") == 0;
    if (status) rest.resize(rest.size() - 7);
    if (!is_valid_name(rest) || (!only_.empty() && rest != only_)) return;
    if (!campaigns_.count(rest) && campaigns_.size() >= kViewMaxCampaigns) return;
    Entry& e = campaigns_[rest];
    if (status) {
      Control k = e.view.control;
      trust::Time t = now;
      auto waves = status_waves(m.payload, k, t);
      if (!waves) return;
      e.view.control = k;
      e.view.waves = *waves;
      add_sample(e.view.history, {t, *waves});
    } else {
      auto d = parse_document(m.payload);
      if (!d) return;
      auto c = parse_campaign(d->campaign.payload);
      auto k = parse_control(d->control.payload);
      if (!c || !k || c->id != rest) return;
      e.view.campaign = std::move(*c);
      if (k->revision >= e.view.control.revision) e.view.control = *k;
      e.have_campaign = true;
    }
    return;
  }
  if (m.topic.rfind(devices, 0) == 0) {
    auto r = read_report_unverified(m.payload);
    if (!r) return;
    auto& slot = devices_[r->device];
    if (r->seq >= slot.seq) slot = std::move(*r);
  }
}

std::vector<CampaignView> LiveViews::views() const {
  std::vector<CampaignView> out;
  for (const auto& [id, e] : campaigns_) {
    if (!e.have_campaign) continue;
    CampaignView v = e.view;
    v.campaign.id = id;
    for (const auto& [dev, r] : devices_)
      if (r.campaign == id) v.devices[dev] = r;
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace ota::campaign
