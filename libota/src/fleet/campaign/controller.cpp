#include "ota/fleet/controller.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>
#include <ctime>

#include "core/json.hpp"

namespace ota::campaign {

namespace {

using json::Json;
using json::Ordered;

std::string key_path(const std::string& dir) { return dir + "/" + kControllerKeyFile; }
std::string journal_path(const std::string& dir) { return dir + "/" + kJournalFile; }
std::string registry_path(const std::string& dir) { return dir + "/" + kRegistryFile; }

Status make_dirs(const std::string& dir) {
  std::string cur;
  for (std::size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || (dir[i] == '/' && i > 0)) {
      cur = dir.substr(0, i);
      if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
        return fail(ErrorCode::kIo, "creating " + cur + ": " + std::strerror(errno));
    }
  }
  return ok();
}

Ordered counts_json(const WaveCounts& k) {
  return Ordered{{"targeted", k.targeted},   {"succeeded", k.succeeded}, {"rolled_back", k.rolled_back},
                 {"failed", k.failed},       {"timed_out", k.timed_out}, {"aborted", k.aborted},
                 {"skipped", k.skipped},     {"pending", k.pending},     {"bytes_fetched", k.bytes_fetched},
                 {"reverting", k.reverting}, {"reverted", k.reverted},   {"revert_failed", k.revert_failed},
                 {"deferred", k.deferred}};
}

Result<Control> control_of(const trust::Envelope& e) { return parse_control(e.payload); }

}  // namespace

Result<keys::PublicKey> prepare_directory(const std::string& dir) {
  OTA_TRY(make_dirs(dir));
  if (::access(key_path(dir).c_str(), F_OK) == 0) {
    auto k = keys::load_secret(key_path(dir), std::nullopt);
    if (!k) return fail(k.error().with_context("controller key"));
    return k->public_key();
  }
  OTA_TRY_ASSIGN(auto k, keys::SecretKey::generate());
  OTA_TRY(keys::write_key_pair(dir + "/controller", k, std::nullopt));
  return k.public_key();
}

void stamp_control(const Campaign& c, Control& k, trust::Time now) {
  k.issued = now;
  // Running: short-lived, signed again while the controller runs. Anything
  // else is the controller's last word: it lives as long as the campaign.
  k.expires = k.state == RunState::kRunning ? now + c.control_ttl_s : std::max(c.expires, now + 1);
}

Result<trust::Envelope> initial_control(const std::string& dir, const Campaign& c, trust::Time now) {
  auto k = keys::load_secret(key_path(dir), std::nullopt);
  if (!k) return fail(k.error().with_context("controller key"));
  Control ctl;
  ctl.campaign = c.id;
  ctl.campaign_revision = c.revision;
  ctl.revision = 1;
  ctl.wave = 0;
  ctl.state = RunState::kRunning;
  ctl.reason = "published";
  // Paced: nobody starts before the controller lets the first devices in.
  if (c.pace) ctl.admit = 0;
  stamp_control(c, ctl, now);
  return sign_control(ctl, *k);
}

void use_controller_queue(mqtt::Options& o) {
  o.max_queued_events = kControllerQueueEvents;
  o.max_queued_bytes = kControllerQueueBytes;
}

Status journal_publication(const std::string& dir, const std::string& document_text, trust::Time now) {
  OTA_TRY_ASSIGN(auto j, Journal::open(journal_path(dir)));
  Ordered rec{{"type", "published"}, {"time", now}, {"document", Ordered::parse(document_text)}};
  return j.append(rec.dump());
}

namespace {

// A task whose cost grows with the fleet (the gates, the status, the
// metrics), in a flood of reports: due once `every` has passed since it last
// started and, so that it never takes more than a tenth of the controller's
// time whatever the fleet's size, ten times its last duration.
class Cadence {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Cadence(Clock::duration every) : every_(every) {}
  bool due() const { return Clock::now() - last_ >= std::max(every_, cost_ * 10); }
  Clock::time_point start() {
    last_ = Clock::now();
    return last_;
  }
  void done(Clock::time_point started) { cost_ = Clock::now() - started; }

 private:
  Clock::duration every_;
  Clock::time_point last_{};
  Clock::duration cost_{};
};

// What the status document is made of, by reference (the controller's own
// members, or a Snapshot's): no copy of the device views.
struct StatusView {
  const Campaign& campaign;
  const ControllerState& state;
  const std::vector<WaveCounts>& waves;
  const std::map<std::string, DeviceView>& devices;
  trust::Time now;
  const std::map<std::string, std::uint64_t>& dropped;
  const std::map<std::string, std::uint64_t>& ignored;
};

std::string status_text(const StatusView& s) {
  Ordered j;
  j["campaign"] = s.campaign.id;
  j["fleet"] = s.campaign.fleet;
  j["version"] = s.campaign.version;
  j["state"] = run_state_name(s.state.control.state);
  j["wave"] = s.state.control.wave;
  j["revision"] = s.state.control.revision;
  j["reason"] = s.state.control.reason;
  j["time"] = trust::format_time(s.now);
  Ordered waves = Ordered::array();
  for (std::size_t i = 0; i < s.waves.size(); ++i) {
    Ordered w = counts_json(s.waves[i]);
    w["percent"] = static_cast<double>(s.campaign.waves[i]) / 100.0;
    w["open"] = i <= s.state.control.wave;
    w["opened"] = i < s.state.wave_opened.size() ? Ordered(trust::format_time(s.state.wave_opened[i])) : Ordered(nullptr);
    waves.push_back(std::move(w));
  }
  j["waves"] = waves;
  if (s.campaign.pace) {
    // Paced: who may start, who waits for a turn, what the admitted will fetch.
    std::uint64_t admitted_devices = 0, held = 0, admitted_bytes = 0;
    for (const auto& [id, v] : s.devices) {
      if (v.wave > s.state.control.wave || v.phase == Phase::kSkipped) continue;
      if (admitted(s.campaign, s.state.control, id)) {
        ++admitted_devices;
        admitted_bytes += fetch_estimate(*s.campaign.pace, v.image);
      } else {
        ++held;
      }
    }
    j["pace"] = {{"devices_per_minute", s.campaign.pace->devices_per_minute},
                 {"bytes_per_minute", s.campaign.pace->bytes_per_minute},
                 {"admit", s.state.control.admit.value_or(std::uint64_t{1} << 32)},
                 {"admitted", admitted_devices},
                 {"admitted_bytes", admitted_bytes},
                 {"held", held}};
  }
  if (s.campaign.regression) {
    const Regression& g = *s.campaign.regression;
    const RegressionCounts k = regression_counts(s.campaign, s.devices);
    j["regression"] = {{"observe_s", g.observe_s},
                       {"margin", g.margin},
                       {"min_sample", g.min_sample},
                       {"z_threshold", g.z},
                       {"updated", k.updated},
                       {"updated_regressed", k.updated_regressed},
                       {"control", k.control},
                       {"control_regressed", k.control_regressed},
                       {"z", k.z()},
                       {"accepted", s.state.regression_accepted}};
  }
  // Signed or not, and what was dropped: an operator sees forgery attempts.
  Ordered sec;
  sec["mode"] = s.campaign.security ? "signed" : "unsigned";
  Ordered dr = Ordered::object(), ic = Ordered::object();
  for (auto d : {Drop::kUnsigned, Drop::kBadSignature, Drop::kUnregistered, Drop::kReplayed, Drop::kOtherCampaign,
                 Drop::kBadReceipt, Drop::kMalformed}) {
    auto it = s.dropped.find(std::string(drop_name(d)));
    dr[std::string(drop_name(d))] = it == s.dropped.end() ? 0 : it->second;
  }
  for (auto d : {CommandDrop::kUnsigned, CommandDrop::kUnauthorised, CommandDrop::kBadSignature, CommandDrop::kReplayed,
                 CommandDrop::kOtherCampaign, CommandDrop::kExpired, CommandDrop::kMalformed}) {
    auto it = s.ignored.find(std::string(command_drop_name(d)));
    ic[std::string(command_drop_name(d))] = it == s.ignored.end() ? 0 : it->second;
  }
  sec["dropped_reports"] = dr;
  sec["ignored_commands"] = ic;
  j["security"] = sec;
  return j.dump();
}

}  // namespace

std::string encode_status(const Snapshot& s) {
  return status_text({s.campaign, s.state, s.waves, s.devices, s.now, s.dropped_reports, s.ignored_commands});
}

Result<std::unique_ptr<Controller>> Controller::open(const std::string& dir) {
  std::unique_ptr<Controller> c(new Controller());
  c->dir_ = dir;
  auto key = keys::load_secret(key_path(dir), std::nullopt);
  if (!key) return fail(key.error().with_context("campaign directory " + dir + ": controller key"));
  c->key_ = std::make_unique<keys::SecretKey>(std::move(*key));
  OTA_TRY_ASSIGN(auto j, Journal::open(journal_path(dir)));
  c->journal_.emplace(std::move(j));
  OTA_TRY_CTX(c->replay(), "journal " + journal_path(dir));
  c->journal_->drop_records();
  if (c->campaign_.security) {
    // The registry the release keys approved, byte for byte.
    auto bytes = read_file(registry_path(dir));
    if (!bytes) return fail(bytes.error().with_context("campaign directory " + dir + ": registry"));
    if (content_hash(*bytes) != c->campaign_.security->registry_hash)
      return fail(ErrorCode::kPayloadMismatch, "campaign directory " + dir + ": " + kRegistryFile +
                                                   " is not the registry the signed campaign names");
    OTA_TRY_ASSIGN(auto reg, parse_registry(*bytes));
    if (reg.fleet != c->campaign_.fleet)
      return fail(ErrorCode::kMalformed, "campaign directory " + dir + ": the registry is for fleet " + reg.fleet);
    c->registry_ = std::move(reg);
  }
  return c;
}

Controller::~Controller() = default;

Status Controller::replay() {
  bool published = false;
  for (const auto& text : journal_->records()) {
    Json r = Json::parse(text);  // checked by Journal::open
    const std::string type = r.value("type", "");
    const trust::Time t = r.value("time", trust::Time{0});
    if (type == "published") {
      OTA_TRY_ASSIGN(auto d, parse_document(r.at("document").dump()));
      OTA_TRY_ASSIGN(auto c, parse_campaign(d.campaign.payload));
      OTA_TRY_ASSIGN(auto k, control_of(d.control));
      campaign_ = std::move(c);
      campaign_env_ = d.campaign;
      control_env_ = d.control;
      roots_ = d.roots;
      state_.control = k;
      state_.wave_opened.assign(1, t);
      published = true;
    } else if (type == "decision") {
      if (!published) return fail(ErrorCode::kMalformed, "a decision before the publication");
      OTA_TRY_ASSIGN(auto e, trust::parse_envelope(r.at("control").dump()));
      OTA_TRY_ASSIGN(auto k, control_of(e));
      if (k.wave > state_.control.wave) state_.wave_opened.resize(k.wave + 1, t);
      if (k.admit && k.admit.value_or(0) > state_.control.admit.value_or(0)) state_.admissions.emplace_back(*k.admit, t);
      state_.control = k;
      control_env_ = e;
      if (r.contains("accepted")) {
        state_.accepted_failures = r["accepted"].value("failures", std::uint64_t{0});
        state_.accepted_finished = r["accepted"].value("finished", std::uint64_t{0});
      }
      if (r.value("regression_accepted", false)) state_.regression_accepted = true;
      const std::string cmd = r.value("command", "");
      if (!cmd.empty()) applied_commands_.push_back(cmd);
    } else if (type == "result") {
      if (!published) return fail(ErrorCode::kMalformed, "a result before the publication");
      OTA_TRY_ASSIGN(auto rep, parse_report(r.at("report").dump()));
      if (observe(view_, campaign_, rep) && r.contains("envelope")) {
        OTA_TRY_ASSIGN(auto e, trust::parse_envelope(r.at("envelope").dump()));
        if (!e.signatures.empty()) view_[rep.device].sig = e.signatures.front().sig;
      }
    } else {
      return fail(ErrorCode::kMalformed, "unknown record type");
    }
  }
  if (!published) return fail(ErrorCode::kMalformed, "no publication: run `ota publish` first");
  document_ = encode_document({campaign_env_, control_env_, roots_});
  return ok();
}

bool Controller::refresh_control(trust::Time now) {
  const Control& k = state_.control;
  if (k.state != RunState::kRunning) return false;
  // Signed again once a third of its life is gone (or it has no expiry: an
  // older controller's document), so a device that takes it always has
  // two thirds of the TTL left.
  if (k.expires != 0 && now - k.issued < campaign_.control_ttl_s / 3 && now < k.expires) return false;
  Control next = k;
  stamp_control(campaign_, next, now);
  state_.control = next;
  control_env_ = sign_control(next, *key_);
  document_ = encode_document({campaign_env_, control_env_, roots_});
  return true;
}

Snapshot Controller::snapshot(trust::Time now, bool with_devices) const {
  Snapshot s;
  s.campaign = campaign_;
  s.state = state_;
  if (with_devices) s.devices = view_;
  s.waves = count(campaign_, state_, view_, now);
  s.now = now;
  s.dropped_reports = dropped_reports_;
  s.ignored_commands = ignored_commands_;
  return s;
}

Status Controller::publish_status(mqtt::Client& client, trust::Time now, const RunOptions& o) {
  const auto waves = count(campaign_, state_, view_, now);
  mqtt::Message m{status_topic(campaign_.fleet, campaign_.id),
                  status_text({campaign_, state_, waves, view_, now, dropped_reports_, ignored_commands_}), 1, true, 0, {}};
  (void)client.publish(m);  // best effort: the next change publishes it again
  if (o.on_change) {
    Snapshot s = snapshot(now, o.change_devices);
    o.on_change(s);
  }
  return ok();
}

Status Controller::sync_journal(trust::Time now) {
  OTA_TRY(journal_->sync());
  unsynced_ = 0;
  ++counters_.journal_syncs;
  counters_.journal_synced = now;
  return ok();
}

std::string Controller::metrics(trust::Time now, double reports_per_second) const {
  ControllerCounters n = counters_;
  n.journal_unsynced = unsynced_;
  const auto waves = count(campaign_, state_, view_, now);
  return encode_metrics({campaign_, state_, waves, view_, dropped_reports_, ignored_commands_, n, reports_per_second});
}

Status Controller::publish_document(mqtt::Client& client) {
  mqtt::Message m;
  m.topic = campaign_topic(campaign_.fleet, campaign_.id);
  m.payload = document_;
  m.qos = 1;
  m.retain = true;
  OTA_TRY(client.publish(m));  // the message id is not needed
  return ok();
}

Status Controller::take_report(const Report& r, trust::Time now, const trust::Envelope* signed_report) {
  const auto before = view_.find(r.device);
  const Phase old = before == view_.end() ? Phase::kIdle : before->second.phase;
  const bool known = before != view_.end();
  if (!observe(view_, campaign_, r)) return ok();
  DeviceView& v = view_[r.device];
  if (signed_report && !signed_report->signatures.empty()) v.sig = signed_report->signatures.front().sig;
  // Final results (and first sightings) go to the journal: the audit log and
  // what a restarted controller counts even if the broker lost them.
  if ((is_final(v.phase) && v.phase != old) || !known) {
    // Group commit: synced within a tick, and always before the next decision.
    Ordered rec{{"type", "result"}, {"time", now}, {"report", Ordered::parse(encode_report(r))}};
    // The receipt as the device signed it: verifiable later against the registry.
    if (signed_report) rec["envelope"] = Ordered::parse(trust::encode_envelope(*signed_report));
    OTA_TRY(journal_->append(rec.dump(), false));
    ++unsynced_;
    ++counters_.results;
  }
  return ok();
}

Status Controller::decide(mqtt::Client& client, Decision d, const std::string& command_id, trust::Time now,
                          const RunOptions& o, const trust::Envelope* command) {
  Control next = state_.control;
  next.revision += 1;
  next.reason = d.reason;
  std::string action(action_name(d.action));
  switch (d.action) {
    case Decision::Action::kNone:
      // An operator's resume.
      next.state = RunState::kRunning;
      action = "resume";
      break;
    case Decision::Action::kOpenWave: next.wave += 1; break;
    case Decision::Action::kPause: next.state = RunState::kPaused; break;
    case Decision::Action::kAbort: next.state = RunState::kAborted; break;
    case Decision::Action::kComplete: next.state = RunState::kCompleted; break;
    case Decision::Action::kAdmit: next.admit = d.admit; break;
  }
  stamp_control(campaign_, next, now);
  trust::Envelope env = sign_control(next, *key_);
  Ordered counts = Ordered::array();
  WaveCounts open;
  const auto per_wave = count(campaign_, state_, view_, now);
  for (std::size_t i = 0; i < per_wave.size(); ++i) {
    counts.push_back(counts_json(per_wave[i]));
    if (i <= state_.control.wave) {
      open.rolled_back += per_wave[i].rolled_back;
      open.failed += per_wave[i].failed;
      open.succeeded += per_wave[i].succeeded;
    }
  }
  Ordered rec{{"type", "decision"},
              {"time", now},
              {"action", action},
              {"reason", d.reason},
              {"command", command_id},
              {"counts", counts},
              {"control", Ordered::parse(trust::encode_envelope(env))}};
  if (action == "resume") rec["accepted"] = {{"failures", open.failures()}, {"finished", open.finished()}};
  // Resuming what the regression gate paused accepts the regression.
  const bool accepts_regression = action == "resume" && state_.control.state == RunState::kPaused &&
                                  state_.control.reason.rfind(kRegressionReason, 0) == 0;
  if (accepts_regression) rec["regression_accepted"] = true;
  // Who ordered it, as signed (audit).
  if (command) rec["signed_command"] = Ordered::parse(trust::encode_envelope(*command));
  // Synced before anyone hears of it.
  OTA_TRY(journal_->append(rec.dump()));
  ++counters_.decisions;
  if (next.wave > state_.control.wave) state_.wave_opened.resize(next.wave + 1, now);
  if (next.admit && next.admit.value_or(0) > state_.control.admit.value_or(0)) state_.admissions.emplace_back(*next.admit, now);
  if (action == "resume") {
    state_.accepted_failures = open.failures();
    state_.accepted_finished = open.finished();
  }
  if (accepts_regression) state_.regression_accepted = true;
  state_.control = next;
  control_env_ = env;
  document_ = encode_document({campaign_env_, control_env_, roots_});
  if (!command_id.empty()) applied_commands_.push_back(command_id);
  if (o.log) o.log(action + ": " + d.reason);
  return publish_document(client);
}

Status Controller::on_command(mqtt::Client& client, const std::string& payload, trust::Time t, const RunOptions& o,
                              bool& dirty) {
  if (payload.empty()) return ok();  // a cleared retained command
  JudgedCommand j = judge_command(campaign_, payload, applied_commands_, t);
  if (j.drop == CommandDrop::kDuplicate) return ok();
  if (j.drop != CommandDrop::kNone) {
    ++ignored_commands_[std::string(command_drop_name(j.drop))];
    if (o.log) o.log("ignored a command (" + std::string(command_drop_name(j.drop)) + "): " + j.why);
    dirty = true;
    return ok();
  }
  const Command& c = j.command;
  const RunState s = state_.control.state;
  Decision d;
  d.reason = "operator: " + c.action + (c.reason.empty() ? "" : ": " + c.reason);
  if (c.action == "pause" && s == RunState::kRunning) d.action = Decision::Action::kPause;
  else if (c.action == "abort" && (s == RunState::kRunning || s == RunState::kPaused)) d.action = Decision::Action::kAbort;
  else if (c.action == "resume" && s == RunState::kPaused) d.action = Decision::Action::kNone;
  else {
    // Nothing to change; remember the id so it is not reconsidered.
    Ordered rec{{"type", "decision"}, {"time", t}, {"action", "ignored"}, {"reason", d.reason + " (campaign is " + std::string(run_state_name(s)) + ")"},
                {"command", c.id}, {"counts", Ordered::array()}, {"control", Ordered::parse(trust::encode_envelope(control_env_))}};
    if (j.envelope) rec["signed_command"] = Ordered::parse(trust::encode_envelope(*j.envelope));
    OTA_TRY(journal_->append(rec.dump()));
    applied_commands_.push_back(c.id);
    return ok();
  }
  OTA_TRY(decide(client, d, c.id, t, o, j.envelope ? &*j.envelope : nullptr));
  dirty = true;
  return ok();
}

std::string Controller::device_of(const std::string& topic, std::string_view leaf) const {
  // The device id from the topic: ota/FLEET/devices/DEVICE/LEAF (compared in
  // place: every message of the batch passes here).
  constexpr std::string_view kOta = "ota/", kDevices = "/devices/";
  const std::string_view t(topic), fleet(campaign_.fleet);
  const std::size_t head = kOta.size() + fleet.size() + kDevices.size();
  if (t.size() <= head + 1 + leaf.size() || t.substr(0, kOta.size()) != kOta ||
      t.substr(kOta.size(), fleet.size()) != fleet || t.substr(kOta.size() + fleet.size(), kDevices.size()) != kDevices ||
      t.substr(t.size() - leaf.size()) != leaf || t[t.size() - leaf.size() - 1] != '/')
    return {};
  return std::string(t.substr(head, t.size() - head - leaf.size() - 1));
}

Status Controller::request_states(mqtt::Client& client) {
  // Not retained: a request, answered by the devices connected now.
  OTA_TRY(client.publish({sync_topic(campaign_.fleet, campaign_.id), "{}", 1, false, 0, {}}));
  ++counters_.state_requests;
  return ok();
}

bool Controller::greet(mqtt::Client& client, const mqtt::Message& m) {
  const std::string device = device_of(m.topic, "availability");
  if (device.empty()) return false;
  // Only a device coming online now (not the retained store's flood, not a
  // last will), and each at most every kGreetInterval.
  if (m.retain || !is_valid_name(device)) return true;
  auto a = parse_availability(m.payload);
  if (!a || !a->online || a->device != device) return true;
  // A device that reported about this campaign has its document: after a
  // broker restart the whole fleet comes online at once, and only the
  // devices never heard of yet (or idle) may lack it.
  if (auto v = view_.find(device); v != view_.end() && v->second.phase != Phase::kIdle) return true;
  const auto wall = std::chrono::steady_clock::now();
  if (greeted_.size() >= kMaxGreeted) greeted_.clear();
  auto [it, fresh] = greeted_.try_emplace(device, wall);
  if (!fresh && wall - it->second < kGreetInterval) return true;
  it->second = wall;
  if (auto st = client.publish({device_campaign_topic(campaign_.fleet, device, campaign_.id), document_, 1, false, 0, {}});
      !st)
    return true;  // best effort: the retained document and the republication remain
  ++counters_.greetings;
  return true;
}

std::vector<std::optional<JudgedReport>> Controller::check_batch(const std::vector<mqtt::Message>& batch,
                                                                 const std::string& commands, const RunOptions& o) const {
  std::vector<std::optional<JudgedReport>> out(batch.size());
  if (!campaign_.security) return out;
  std::vector<std::size_t> reports;
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (batch[i].topic != commands && !batch[i].payload.empty() && !device_of(batch[i].topic).empty()) reports.push_back(i);
  auto work = [&](std::size_t from, std::size_t step) {
    for (std::size_t k = from; k < reports.size(); k += step) {
      const auto& m = batch[reports[k]];
      out[reports[k]] = check_report(registry_, campaign_, device_of(m.topic), m.payload);
    }
  };
  // At least 8 reports per thread: below that a thread costs more than it saves.
  const std::size_t cores = o.verify_threads ? o.verify_threads : std::max(1u, std::thread::hardware_concurrency());
  const std::size_t threads = std::max<std::size_t>(1, std::min({cores, reports.size() / 8, std::size_t{16}}));
  std::vector<std::thread> pool;
  for (std::size_t w = 1; w < threads; ++w) pool.emplace_back(work, w, threads);
  work(0, threads);
  for (auto& th : pool) th.join();
  return out;
}

Status Controller::on_report(const mqtt::Message& m, trust::Time t, const RunOptions& o, bool& dirty,
                             std::optional<JudgedReport>* checked) {
  const std::string device = device_of(m.topic);
  if (m.payload.empty()) return ok();  // a cleared retained state
  ++counters_.reports;
  const auto before = view_.find(device);
  const std::uint64_t seq = before == view_.end() ? 0 : before->second.seq;
  if (campaign_.security) {
    JudgedReport j = checked && *checked ? std::move(**checked) : check_report(registry_, campaign_, device, m.payload);
    judge_checked(j, campaign_, view_);
    if (j.drop == Drop::kDuplicate) return ok();
    if (j.drop != Drop::kNone) {
      ++dropped_reports_[std::string(drop_name(j.drop))];
      if (o.log) o.log("dropped a report on " + m.topic + " (" + std::string(drop_name(j.drop)) + "): " + j.why);
      dirty = true;
      return ok();
    }
    OTA_TRY(take_report(j.report, t, &*j.envelope));
  } else {
    auto r = read_report_unverified(m.payload);
    if (!r) {
      if (o.log) o.log("ignored a report on " + m.topic + ": " + r.error().message);
      return ok();
    }
    if (r->device != device) {
      if (o.log) o.log("ignored a report on " + m.topic + " naming device " + r->device);
      return ok();
    }
    OTA_TRY(take_report(*r, t));
  }
  dirty = dirty || view_[device].seq != seq;
  return ok();
}

// Messages judged together (Controller::run).
constexpr std::size_t kBatch = 256;

Result<RunState> Controller::run(mqtt::Client& client, const RunOptions& o) {
  auto now = [&] { return o.now ? o.now() : static_cast<trust::Time>(std::time(nullptr)); };
  const std::string devices = "ota/" + campaign_.fleet + "/devices/+/state";
  const std::string commands = commands_topic(campaign_.fleet, campaign_.id);
  if (counters_.started == 0) counters_.started = now();
  OTA_TRY(client.subscribe(devices, 1));
  OTA_TRY(client.subscribe(commands, 1));
  // Devices coming online get the document sent to them alone (greet): their
  // node of a clustered broker may not hold the retained one. Best effort.
  if (auto st = client.subscribe("ota/" + campaign_.fleet + "/devices/+/availability", 1); !st && o.log)
    o.log("not following device availability: " + st.error().message);
  bool dirty = true;
  int final_mid = -1;
  // The gates wait until the retained device states arrived after the first
  // connect (a quiet second, at most ten): judging an empty fleet would open
  // waves nobody was counted in.
  bool ready = false;
  std::optional<std::chrono::steady_clock::time_point> connected_at;
  auto last_message = std::chrono::steady_clock::now();
  // Reconciliation: a broker may drop messages queued for the controller (a
  // full queue, a restart from an old snapshot). While devices are pending,
  // the device states are read again from the retained store every
  // o.reconcile; duplicates are recognized by sequence number.
  // The other way too: a device may have missed the document (a broker that
  // lost it, a cluster node whose retained index does not hold it, a message
  // it could not take then). The document goes out again with the
  // re-read, every o.reconcile at first, then twice as long each time
  // nothing changed (at most 32x): a fleet that stays quiet is not flooded.
  auto last_reconcile = std::chrono::steady_clock::now();
  std::chrono::milliseconds republish_every = o.reconcile;
  auto last_republish = last_reconcile;
  std::uint64_t last_pending = 0;
  refresh_control(now());
  if (client.connected()) {
    // The caller waited for the connection (and took its event).
    OTA_TRY(publish_document(client));
    OTA_TRY(request_states(client));
    connected_at = std::chrono::steady_clock::now();
  }
  auto final_deadline = std::chrono::steady_clock::time_point::max();
  // Pacing: a token bucket of one minute's budget, starting with one step's
  // worth; a step at most every o.pace_step lets the next devices in.
  PaceTokens tokens;
  if (campaign_.pace) refill(*campaign_.pace, tokens, std::chrono::duration<double>(o.pace_step).count());
  auto last_refill = std::chrono::steady_clock::now();
  auto last_step = last_refill - o.pace_step;
  // Metrics: the text for o.on_metrics every o.metrics_every, with the report rate over 10 s.
  RateWindow rate;
  // What costs O(fleet) runs on a cadence, not per report: the gates at
  // most every 100 ms, the status every 500 ms (when something changed),
  // the metrics every o.metrics_every, each stretched so that it takes at
  // most a tenth of the time (Cadence).
  std::optional<mqtt::Event> held;  // taken while gathering a batch, handled next
  Cadence gates(std::chrono::milliseconds(100)), status_cadence(std::chrono::milliseconds(500)),
      metrics_cadence(o.metrics_every);
  for (;;) {
    if (o.stop && *o.stop) {
      OTA_TRY(sync_journal(now()));
      return state_.control.state;
    }
    auto ev = held ? std::exchange(held, std::nullopt) : client.next(o.tick);
    const trust::Time t = now();
    // The timestamp role: a running control is signed again before it goes stale.
    if (final_mid < 0 && refresh_control(t)) OTA_TRY(publish_document(client));
    if (ev) {
      switch (ev->kind) {
        case mqtt::Event::Kind::kConnected:
          // Every (re)connect: the broker may have lost what it held, or
          // this is another node of a cluster, without the retained states
          // published on the others: the devices say theirs again.
          OTA_TRY(publish_document(client));
          OTA_TRY(request_states(client));
          if (!connected_at) connected_at = std::chrono::steady_clock::now();
          dirty = true;
          break;
        case mqtt::Event::Kind::kMessage: {
          // The messages already waiting are taken together (at most
          // kBatch): the signatures of their reports are checked at once on
          // several threads, then each is applied in arrival order.
          std::vector<mqtt::Message> batch;
          batch.push_back(std::move(ev->message));
          while (batch.size() < kBatch) {
            auto more = client.next(std::chrono::milliseconds(0));
            if (!more) break;
            if (more->kind != mqtt::Event::Kind::kMessage) {
              held = std::move(more);  // the next iteration's event
              break;
            }
            batch.push_back(std::move(more->message));
          }
          last_message = std::chrono::steady_clock::now();
          auto checked = check_batch(batch, commands, o);
          for (std::size_t i = 0; i < batch.size(); ++i) {
            // In arrival order: a device's state before its coming online decides the greeting.
            if (greet(client, batch[i])) continue;
            if (batch[i].topic == commands) {
              OTA_TRY(on_command(client, batch[i].payload, t, o, dirty));
            } else {
              OTA_TRY(on_report(batch[i], t, o, dirty, &checked[i]));
            }
          }
          break;
        }
        case mqtt::Event::Kind::kPublished:
          if (ev->mid == final_mid) final_deadline = std::chrono::steady_clock::now();
          break;
        case mqtt::Event::Kind::kDisconnected: break;
      }
    }
    if (unsynced_ > 0 && (unsynced_ >= 512 || !(ev && ev->kind == mqtt::Event::Kind::kMessage))) {
      // A quiet moment, or 512 results: sync them (one fsync for many).
      OTA_TRY(sync_journal(t));
    }
    if (!ready && connected_at) {
      const auto t0 = std::chrono::steady_clock::now();
      ready = t0 - last_message >= std::chrono::seconds(1) || t0 - *connected_at >= std::chrono::seconds(10);
    }
    if (final_mid < 0 && ready && gates.due()) {
      const auto t0 = gates.start();
      Decision d = evaluate(campaign_, state_, view_, t);
      gates.done(t0);
      if (d.action != Decision::Action::kNone) {
        OTA_TRY(decide(client, d, "", t, o));
        dirty = true;
      }
    }
    if (campaign_.pace) {
      // Tokens accrue only while pacing runs (not before the first judgement, nor while paused).
      const auto w = std::chrono::steady_clock::now();
      const bool pacing = final_mid < 0 && ready && state_.control.state == RunState::kRunning;
      if (pacing) refill(*campaign_.pace, tokens, std::chrono::duration<double>(w - last_refill).count());
      last_refill = w;
      if (pacing && w - last_step >= o.pace_step) {
        last_step = w;
        if (auto step = pace_step(campaign_, state_, view_, tokens)) {
          Decision d;
          d.action = Decision::Action::kAdmit;
          d.admit = step->admit;
          d.reason = "paced: " + std::to_string(step->devices) + " more device(s) may start, about " +
                     std::to_string(step->bytes) + " bytes to fetch";
          OTA_TRY(decide(client, d, "", t, o));
          dirty = true;
        }
      }
    }
    const auto wall = std::chrono::steady_clock::now();
    if (ready && final_mid < 0 && state_.control.state == RunState::kRunning && wall - last_reconcile >= o.reconcile &&
        wall - last_message >= std::min<std::chrono::milliseconds>(o.reconcile, std::chrono::seconds(10))) {
      last_reconcile = wall;
      std::uint64_t pending = 0;
      for (const auto& w : count(campaign_, state_, view_, t)) pending += w.pending;
      // The same subscription again: the broker replaces it and sends the
      // retained states anew (MQTT 3.1.1 3.8.4, MQTT 5 retain handling 0).
      // Best effort: a busy broker's late SUBACK is no reason to stop.
      // Each costs the broker and every online device work (the retained
      // states sent anew, one answer per device): at the reconcile interval
      // while devices make progress, then backing off to 32 intervals.
      if (pending > 0) {
        if (pending != last_pending) republish_every = o.reconcile;  // progress: back to the short interval
        if (wall - last_republish >= republish_every) {
          if (auto st = client.subscribe(devices, 1); !st && o.log) o.log("reconciling device states: " + st.error().message);
          if (auto st = request_states(client); !st && o.log) o.log("asking devices for their states: " + st.error().message);
          OTA_TRY(publish_document(client));
          last_republish = wall;
          republish_every = std::min(republish_every * 2, o.reconcile * 32);
        }
      }
      last_pending = pending;
    }
    if (o.on_metrics && metrics_cadence.due()) {
      const auto t0 = metrics_cadence.start();
      rate.add(std::chrono::duration<double>(wall.time_since_epoch()).count(), counters_.reports);
      o.on_metrics(metrics(t, rate.per_second()));
      metrics_cadence.done(t0);
    }
    if (dirty && status_cadence.due()) {
      const auto t0 = status_cadence.start();
      OTA_TRY(publish_status(client, t, o));
      status_cadence.done(t0);
      dirty = false;
    }
    const RunState s = state_.control.state;
    // Revert on abort: the controller stays to count the reverts, while
    // devices that committed have not said how theirs ended, at most the
    // device timeout after the abort.
    const bool awaiting_reverts = s == RunState::kAborted && final_mid < 0 && t - state_.control.issued < campaign_.gates.device_timeout_s &&
                                  reverts_pending(campaign_, count(campaign_, state_, view_, t)) > 0;
    const bool finished = s == RunState::kCompleted || (s == RunState::kAborted && !awaiting_reverts) ||
                          (s == RunState::kPaused && o.exit_on_pause);
    if (finished && final_mid < 0) {
      // Make sure the final document reached the broker before returning.
      mqtt::Message m{campaign_topic(campaign_.fleet, campaign_.id), document_, 1, true, 0, {}};
      OTA_TRY_ASSIGN(auto mid, client.publish(m));
      final_mid = mid;
      final_deadline = wall + std::chrono::seconds(10);
      OTA_TRY(publish_status(client, t, o));
      if (o.on_metrics) o.on_metrics(metrics(t, rate.per_second()));
    }
    if (final_mid >= 0 && std::chrono::steady_clock::now() >= final_deadline) return s;
  }
}

}  // namespace ota::campaign
