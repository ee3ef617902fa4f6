#include "ota/device/daemon.hpp"
#include "ota/core/url.hpp"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "core/json.hpp"
#include "device/agent/daemon_records.hpp"
#include "ota/core/hash.hpp"
#include "ota/device/lifecycle.hpp"
#include "ota/fleet/identity.hpp"

namespace ota::agent {

namespace {

namespace cp = ota::campaign;
using namespace detail;
using json::Json;
using json::Ordered;

std::string random_hex(std::size_t bytes) {
  std::uint8_t b[16];
  randombytes_buf(b, std::min(bytes, sizeof b));
  return to_hex(ByteSpan(b, std::min(bytes, sizeof b)));
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Sequence numbers reserved on disk at a time for reports that are not kept in the outbox.
constexpr std::uint64_t kSeqBlock = 1024;

}  // namespace

struct Daemon::Impl {
  Device dev;
  storage::StateStore& store;
  DaemonOptions o;
  std::function<Status()> real_reboot;
  std::unique_ptr<Agent> agent;
  std::unique_ptr<mqtt::Client> client;
  std::string boot;
  Records rec;
  Outbox out;
  std::deque<mqtt::Event> deferred;
  // An install in progress (its campaign id) and whether an abort stops it.
  std::string installing;
  std::optional<std::chrono::steady_clock::time_point> last_sync;  // the last sync request answered
  bool cancel = false;
  bool reboot_requested = false;
  // A download that failed: the campaign tried again at retry_at, on the
  // newest document accepted by then.
  std::optional<std::string> retry;
  std::chrono::steady_clock::time_point retry_at{};
  // The newest verified document of each campaign (this session).
  std::map<std::string, cp::Verified> latest;
  // Texts of documents rejected this session (reported once each).
  std::set<std::string> rejected;
  // The trial has not booted: ask for the reboot again at this time.
  std::optional<std::chrono::steady_clock::time_point> reboot_again_at;
  // A campaign its rollout policy deferred: looked at again at recheck_at
  // (the window's opening, the delay's end, or policy_recheck_s), and the
  // reason last reported for each (reported again only when it changes).
  std::optional<std::string> recheck;
  std::chrono::steady_clock::time_point recheck_at{};
  std::map<std::string, std::string> deferred_why;
  // Health signals: when each campaign's next observation is due (this session).
  std::map<std::string, std::chrono::steady_clock::time_point> observation_due;

  Impl(Device d, storage::StateStore& s, DaemonOptions opts) : dev(std::move(d)), store(s), o(std::move(opts)) {
    // The daemon reports before it reboots, so the agent never reboots itself.
    real_reboot = dev.reboot;
    dev.reboot = nullptr;
  }

  void log(const std::string& line) {
    if (o.log) o.log(line);
  }
  trust::Time now() const { return dev.now(); }
  trust::Time policy_now() const { return o.policy_clock ? o.policy_clock() : now(); }
  bool stopping() const { return o.stop && *o.stop; }

  // ---- records ----
  void load() {
    rec = Records{};
    out = Outbox{};
    if (auto r = store.get(kCampaignsRecord); r && *r) {
      if (auto p = parse_records(**r)) rec = std::move(*p);
      else log("campaign records unreadable, starting afresh: " + p.error().message);
    }
    if (auto r = store.get(kOutboxRecord); r && *r) {
      if (auto p = parse_outbox(**r)) out = std::move(*p);
      else log("outbox unreadable, starting afresh: " + p.error().message);
    }
    if (o.device_key) {
      // Signed reports: numbers from here to seq_reserved may go out in reports never
      // written to the outbox (rejection events, which must cost no flash each); the
      // next start continues above them. One write per start.
      out.seq_reserved = out.next_seq + kSeqBlock;
      if (auto st = save_outbox(); !st) log("saving the outbox: " + st.error().message);
    }
  }
  Status save_records() {
    // Bounded: forget the oldest finished campaigns.
    while (rec.campaigns.size() > kMaxCampaignRecords) {
      auto oldest = rec.campaigns.end();
      for (auto it = rec.campaigns.begin(); it != rec.campaigns.end(); ++it)
        if (it->second.done && it->first != rec.current && (oldest == rec.campaigns.end() || it->second.seen < oldest->second.seen))
          oldest = it;
      if (oldest == rec.campaigns.end()) break;
      rec.campaigns.erase(oldest);
    }
    return store.replace(kCampaignsRecord, bytes_of(encode_records(rec)));
  }
  Status save_outbox() { return store.replace(kOutboxRecord, bytes_of(encode_outbox(out))); }

  std::string running_version() {
    auto s = agent->state();
    auto slot = agent->running_slot();
    if (!s || !slot) return {};
    const auto& b = s->banks[*slot == boot::Slot::kA ? 0 : 1];
    return b ? b->version : std::string();
  }

  // ---- reports ----
  void flush() {
    if (!client || !client->connected()) return;
    for (auto& p : out.pending) {
      if (p.mid >= 0) continue;
      // MQTT 5: progress events a controller did not take within a week are stale.
      auto mid = client->publish(mqtt::Message{p.topic, p.payload, 1, p.retain, p.retain ? 0u : 7u * 86400u,
                                               {{"ota-device", o.device_id}}});
      if (mid) p.mid = *mid;
    }
  }

  Status report(const std::string& campaign, cp::Phase phase, const std::string& reason = {}, int code = 0,
                std::uint64_t bytes = 0, bool event_only = false, bool durable = true) {
    cp::Report r;
    r.device = o.device_id;
    r.seq = out.next_seq++;
    r.boot = boot;
    r.time = now();
    r.campaign = campaign;
    r.phase = phase;
    r.version = running_version();
    r.reason = reason.substr(0, 1000);
    r.code = code;
    r.bytes_fetched = bytes;
    // The receipt: which slot runs and the image in it.
    if (auto slot = agent->running_slot()) {
      r.slot = *slot == boot::Slot::kA ? "a" : "b";
      if (auto s = agent->state(); s && s->banks[*slot == boot::Slot::kA ? 0 : 1] &&
                                   s->banks[*slot == boot::Slot::kA ? 0 : 1]->hash != Digest{})
        r.image_hash = s->banks[*slot == boot::Slot::kA ? 0 : 1]->hash;
    }
    if (o.device_key && !durable && r.seq >= out.seq_reserved) {
      // Never written to the outbox: beyond the block reserved at start, reserve more on disk
      // first, so no number is signed twice.
      out.seq_reserved = r.seq + kSeqBlock;
      OTA_TRY(save_outbox());
    }
    // Health signals ride on the phase they were observed in.
    if (auto it = rec.campaigns.find(campaign); !campaign.empty() && it != rec.campaigns.end() && it->second.observation) {
      const Observation& ob = *it->second.observation;
      if (ob.control ? phase == cp::Phase::kWaiting : phase == cp::Phase::kSucceeded) r.signals = ob.signals;
    }
    const std::string text = o.device_key ? cp::sign_report(r, *o.device_key) : cp::encode_report(r);
    const std::string state = cp::state_topic(o.fleet, o.device_id);
    if (!event_only) {
      out.last_state = text;
      // A newer state supersedes one not yet sent.
      out.pending.erase(std::remove_if(out.pending.begin(), out.pending.end(),
                                       [&](const Pending& p) { return p.topic == state && p.mid < 0; }),
                        out.pending.end());
      out.pending.push_back({state, text, true, -1});
    }
    out.pending.push_back({cp::events_topic(o.fleet, o.device_id), text, false, -1, durable});
    // Bounded: the oldest events go first, states last.
    while (out.pending.size() > o.outbox_limit) {
      auto it = std::find_if(out.pending.begin(), out.pending.end(), [&](const Pending& p) { return p.topic != state; });
      if (it == out.pending.end()) it = out.pending.begin();
      out.pending.erase(it);
    }
    if (durable) OTA_TRY(save_outbox());
    log(std::string(cp::phase_name(phase)) + (campaign.empty() ? "" : " " + campaign) +
        (reason.empty() ? "" : ": " + reason));
    flush();
    return ok();
  }

  void acknowledged(int mid, int reason) {
    auto it = std::find_if(out.pending.begin(), out.pending.end(), [&](const Pending& p) { return p.mid == mid; });
    if (it == out.pending.end()) return;
    if (reason >= 0x80) {
      // Refused (ACL): keeping it would retry forever; say so and drop it.
      log("the broker refused a report on " + it->topic + " (reason " + std::to_string(reason) + ")");
    }
    const bool durable = it->durable;
    out.pending.erase(it);
    if (durable) (void)save_outbox();
  }

  void on_connected(const mqtt::Event& ev) {
    if (!ev.broker.empty()) log("connected to " + ev.broker);
    for (auto& p : out.pending) p.mid = -1;
    say_online();
    // The broker may have lost the retained state (kill -9), or this may be
    // another node of a cluster: the same report again. (It does not stand
    // for an answer to the controller's sync request: on a cluster, the
    // controller's node does not hold what was retained here.)
    republish_state();
    flush();
  }

  // The latest state again (same sequence number: recognized as a duplicate
  // by whoever saw it), unless it is still waiting in the outbox.
  // Also what tells the controller that this device may lack its document.
  void say_online() {
    (void)client->publish(mqtt::Message{cp::availability_topic(o.fleet, o.device_id),
                                        cp::encode_availability({o.device_id, boot, true}), 1, true, 0, {}});
  }

  void republish_state() {
    const std::string state = cp::state_topic(o.fleet, o.device_id);
    const bool state_pending = std::any_of(out.pending.begin(), out.pending.end(), [&](const Pending& p) { return p.topic == state; });
    if (!state_pending && !out.last_state.empty()) (void)client->publish(mqtt::Message{state, out.last_state, 1, true, 0, {}});
  }

  // The controller asks every device for its state again (sync_topic): its
  // broker node may not hold the retained states published on other nodes.
  // Answered at most every o.sync_interval; the request itself is not read.
  bool is_sync(const std::string& topic) const {
    // ota/FLEET/campaigns/ID/sync, compared in place (every message passes here).
    constexpr std::string_view kOta = "ota/", kCampaigns = "/campaigns/", kSync = "/sync";
    const std::string_view t(topic), fleet(o.fleet);
    const std::size_t head = kOta.size() + fleet.size() + kCampaigns.size();
    return t.size() > head + kSync.size() && t.substr(t.size() - kSync.size()) == kSync && t.substr(0, kOta.size()) == kOta &&
           t.substr(kOta.size(), fleet.size()) == fleet && t.substr(kOta.size() + fleet.size(), kCampaigns.size()) == kCampaigns;
  }
  void on_sync() {
    const auto wall = std::chrono::steady_clock::now();
    if (last_sync && wall - *last_sync < o.sync_interval) return;
    last_sync = wall;
    say_online();  // the controller sends its document to devices that say so
    republish_state();
  }

  // ---- campaigns ----
  // The campaign of a document's topic: the fleet's retained one, or the
  // copy the controller sent to this device alone (device_campaign_topic).
  std::optional<std::string> campaign_id_of(const std::string& topic) const {
    std::string prefix = "ota/" + o.fleet + "/campaigns/";
    if (topic.compare(0, prefix.size(), prefix) != 0) {
      prefix = cp::device_campaigns_filter(o.fleet, o.device_id);
      prefix.pop_back();  // the '+'
    }
    if (topic.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    std::string id = topic.substr(prefix.size());
    if (!cp::is_valid_name(id)) return std::nullopt;
    return id;
  }

  // Said once per document text, and never written to disk: junk on the
  // broker must cost no flash.
  void reject(const std::string& id, const std::string& payload, const Error& e) {
    if (!rejected.insert(to_hex(content_hash(ByteSpan(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size())))).second)
      return;
    if (rejected.size() > 1024) rejected.clear();
    log("rejected campaign document " + id + ": " + e.message);
    (void)report(std::string(), cp::Phase::kIdle, "rejected campaign document " + id + ": " + e.message,
                 static_cast<int>(e.code), 0, true, false);
  }

  // Verifies a document and records its revisions; nullopt when it is not to be acted on.
  std::optional<cp::Verified> accept(const std::string& topic, const std::string& payload) {
    auto id = campaign_id_of(topic);
    if (!id || payload.empty()) return std::nullopt;
    auto d = cp::parse_document(payload);
    if (!d) {
      reject(*id, payload, d.error());
      return std::nullopt;
    }
    // Root updates first: walked, then saved before anything is verified under them.
    if (!d->roots.empty()) {
      const std::uint64_t before = dev.trust->root().version;
      dev.trust->update_all(d->roots);
      if (dev.trust->root().version > before) {
        if (auto st = persist_trust(store, *dev.trust); !st) {
          log("saving the trust root: " + st.error().message);
          return std::nullopt;
        }
        log("trust root updated to version " + std::to_string(dev.trust->root().version));
      }
    }
    auto v = cp::verify_document(*dev.trust, *d, now());
    if (!v) {
      reject(*id, payload, v.error());
      return std::nullopt;
    }
    if (v->campaign.id != *id || v->campaign.fleet != o.fleet) {
      reject(*id, payload, Error{ErrorCode::kMalformed, "the document is for campaign " + v->campaign.fleet + "/" + v->campaign.id});
      return std::nullopt;
    }
    if (auto fresh = cp::check_control_fresh(v->campaign, v->control, now()); !fresh) {
      reject(*id, payload, fresh.error());
      return std::nullopt;
    }
    auto it = rec.campaigns.find(*id);
    if (it != rec.campaigns.end()) {
      cp::Control seen;
      seen.campaign_revision = it->second.campaign_revision;
      seen.revision = it->second.control_revision;
      const int cmp = cp::compare_revisions(v->control, seen);
      if (cmp < 0) {
        reject(*id, payload, Error{ErrorCode::kStaleCampaign,
                          "revision " + std::to_string(v->campaign.revision) + "." + std::to_string(v->control.revision) +
                              " is older than " + std::to_string(seen.campaign_revision) + "." +
                              std::to_string(seen.revision) + ", already accepted"});
        return std::nullopt;
      }
      if (cmp == 0) {  // the same again (QoS 1 redelivery, a restart, a re-signing): acting is idempotent
        latest[*id] = *v;
        return std::move(*v);
      }
    }
    CampaignRecord& r = rec.campaigns[*id];
    if (r.seen == 0) r.seen = ++rec.counter;
    r.campaign_revision = v->campaign.revision;
    r.control_revision = v->control.revision;
    if (auto st = save_records(); !st) {
      // Not acted on unless its revision is on disk (a replay after a reboot must be refused).
      log("saving campaign records: " + st.error().message);
      return std::nullopt;
    }
    latest[*id] = *v;
    return std::move(*v);
  }

  // Moves a campaign's phase through the life-cycle table (lifecycle.hpp).
  static Status move(CampaignRecord& r, CampaignEvent e) { return advance(r.phase, e); }

  Status act(const cp::Verified& v) {
    const std::string& id = v.campaign.id;
    CampaignRecord& r = rec.campaigns[id];
    // Revert on abort: a campaign this device committed, aborted, switches
    // back once (reverting is not done until its boot check says how it ended).
    if (v.control.state == cp::RunState::kAborted && v.campaign.revert_on_abort &&
        (r.phase == cp::Phase::kSucceeded || r.phase == cp::Phase::kReverting) && installing.empty() && !reboot_requested)
      return revert(v);
    if (r.done) return ok();  // acted on once; never again
    // Installing, or written and about to reboot into it: the boot check decides next.
    if (!installing.empty() || reboot_requested || r.phase == cp::Phase::kRebooting) return ok();
    // A failed download waits for its retry (which takes the newest document).
    if (retry && *retry == id && std::chrono::steady_clock::now() < retry_at && v.control.state != cp::RunState::kAborted)
      return ok();
    OTA_TRY_ASSIGN(auto s, agent->state());
    const bool started = rec.current == id && s.install.stage != Stage::kNone;
    auto finish = [&](CampaignEvent e, const std::string& why, int code = 0) -> Status {
      OTA_TRY(move(r, e));
      r.done = true;
      if (rec.current == id) rec.current.clear();
      if (retry && *retry == id) retry.reset();
      OTA_TRY(save_records());
      return report(id, r.phase, why, code);
    };
    if (std::find(v.campaign.hardware.begin(), v.campaign.hardware.end(), dev.hardware_id) == v.campaign.hardware.end())
      return finish(CampaignEvent::kNotForDevice, "hardware " + dev.hardware_id + " is not targeted");
    if (!started && running_version() == v.campaign.version)
      return finish(CampaignEvent::kNotForDevice, "already running " + v.campaign.version);
    if (v.control.state == cp::RunState::kAborted) {
      if (started && s.install.stage != Stage::kTrial) (void)agent->rollback("campaign aborted");
      return finish(CampaignEvent::kAbort, "campaign aborted" + (v.control.reason.empty() ? "" : ": " + v.control.reason),
                    static_cast<int>(ErrorCode::kCampaignAborted));
    }
    const std::size_t wave = cp::wave_of(v.campaign, o.device_id);
    const bool open = wave <= v.control.wave &&
                      (v.control.state == cp::RunState::kRunning || v.control.state == cp::RunState::kCompleted);
    // Paced: an open wave's device starts once the controller let it in
    // (one that started already goes on: it was let in then).
    const bool let_in = started || cp::admitted(v.campaign, v.control, o.device_id);
    // Paused: what has started (a resumed download after a power cut) goes on.
    if (!(open && let_in) && !(started && v.control.state == cp::RunState::kPaused)) {
      const cp::Phase before = r.phase;
      OTA_TRY(move(r, CampaignEvent::kWaveClosed));
      if (r.phase != before) {
        OTA_TRY(save_records());
        return report(id, cp::Phase::kWaiting,
                      v.control.state == cp::RunState::kPaused ? "campaign paused"
                      : !open ? "wave " + std::to_string(wave + 1) + " not open yet"
                              : "paced: wave " + std::to_string(wave + 1) + " is open, waiting for its turn");
      }
      return ok();
    }
    // The device's own rollout policy, signed in the campaign: it may hold
    // what the controller allows (an abort, handled above, never waits).
    if (v.campaign.policy) {
      if (auto hold = policy_holds(v, r, started)) {
        // Download early: write and verify now, switch banks in the window.
        const bool written = started && s.install.stage == Stage::kWritten;
        if (hold->may_write && !written) return install(v, &*hold);
        if (written) hold->why = "written and verified; " + hold->why;  // as install() says it
        return defer(id, r, *hold);
      }
    }
    return install(v);
  }

  // ---- the rollout policy (campaign::Policy) ----

  struct Hold {
    std::string why;
    trust::Time until = 0;   // when to look again (0: policy_recheck_s)
    bool may_write = false;  // outside a window with download_early: the image may be written now
  };

  // What holds the campaign now, if anything: the start delay (drawn once,
  // saved), a condition, then the install windows.
  std::optional<Hold> policy_holds(const cp::Verified& v, CampaignRecord& r, bool started) {
    const cp::Policy& p = *v.campaign.policy;
    const trust::Time t = policy_now();
    if (p.start_delay_s > 0 && !started) {
      if (r.not_before == 0) {
        r.not_before = t + static_cast<trust::Time>(randombytes_uniform(static_cast<std::uint32_t>(p.start_delay_s)));
        if (auto st = save_records(); !st) return Hold{"saving the start delay: " + st.error().message};
      }
      if (t < r.not_before) return Hold{"start delay until " + trust::format_time(r.not_before), r.not_before};
    }
    // The windows first (no command runs outside them), then the conditions,
    // which also hold an early download (a metered link).
    std::optional<Hold> outside;
    // A security update on a device configured to take them at any time:
    // the windows do not hold it (the start delay and conditions still do).
    const bool anytime = o.security_updates_anytime && v.campaign.advisory.has_value();
    if (!p.windows.empty() && !anytime) {
      const std::string zone = p.timezone == "local" ? o.timezone : p.timezone;
      auto lt = cp::local_time(t, zone);
      if (!lt) return Hold{"install windows: " + lt.error().message};
      if (!cp::in_window(p.windows, *lt)) {
        auto next = cp::next_open(p.windows, zone, t);
        const trust::Time until = next && *next ? **next : 0;
        outside = Hold{"outside the install windows (" + zone + ")" +
                           (until ? "; the next opens " + trust::format_time(until) : std::string()),
                       until, p.download_early};
        if (!p.download_early) return outside;
      }
    }
    for (const auto& name : p.defer_on) {
      if (!o.check_condition) break;
      auto c = o.check_condition(name);
      if (!c) return Hold{"condition " + name + " could not be checked: " + c.error().message};
      if (*c) return Hold{"condition " + name + ": " + **c};
    }
    if (outside) return outside;
    return std::nullopt;
  }

  void schedule_recheck(const std::string& id, trust::Time until) {
    std::int64_t wait = o.policy_recheck_s;
    if (until > 0) wait = std::clamp<std::int64_t>(until - policy_now(), 1, o.policy_recheck_s);
    recheck = id;
    recheck_at = std::chrono::steady_clock::now() + std::chrono::seconds(std::max<std::int64_t>(1, wait));
  }

  // Deferred: recorded, reported when the reason changed, looked at again.
  Status defer(const std::string& id, CampaignRecord& r, const Hold& h) {
    const cp::Phase before = r.phase;
    OTA_TRY(move(r, CampaignEvent::kDefer));
    if (r.phase != before) OTA_TRY(save_records());
    schedule_recheck(id, h.until);
    std::string& last = deferred_why[id];
    if (r.phase == before && last == h.why) return ok();
    last = h.why;
    return report(id, cp::Phase::kDeferred, h.why);
  }

  // The record says reverting before the agent writes anything (a restart
  // finds the phase and asks the agent again, which resumes); then the
  // agent's revert (the previous bank verified, its trial begun), the
  // report, and the reboot into it.
  Status revert(const cp::Verified& v) {
    const std::string id = v.campaign.id;
    CampaignRecord& r = rec.campaigns[id];
    OTA_TRY(move(r, CampaignEvent::kRevert));
    r.done = false;
    // Another campaign's install in progress (its record is rec.current) is
    // left alone: it replaces the image this campaign installed anyway.
    Status st = !rec.current.empty() && rec.current != id
                    ? Status(fail(ErrorCode::kTrialPending, "campaign " + rec.current + " is being installed"))
                    : ok();
    if (st) {
      rec.current = id;
      OTA_TRY(save_records());
      st = agent->revert(v.campaign.version);
    }
    if (!st && (st.error().code == ErrorCode::kIo || st.error().code == ErrorCode::kInternal))
      return st;  // the device itself failed: tried again when the document comes again
    if (!st) {
      OTA_TRY(move(r, CampaignEvent::kRevertRefused));
      r.done = true;
      if (rec.current == id) rec.current.clear();
      OTA_TRY(save_records());
      return report(id, r.phase, "campaign aborted; no revert: " + st.error().message, static_cast<int>(st.error().code));
    }
    OTA_TRY(report(id, cp::Phase::kReverting,
                   "campaign aborted" + (v.control.reason.empty() ? "" : ": " + v.control.reason) +
                       "; reverting to the previous image"));
    reboot_requested = true;
    return ok();
  }

  // `early`: the policy holds the switch (download early): written and
  // verified now, the trial left for the window.
  Status install(const cp::Verified& v, const Hold* early = nullptr) {
    const std::string id = v.campaign.id;
    if (now() >= v.campaign.expires) return ok();
    CampaignRecord& r = rec.campaigns[id];
    // Written before the first bank write: which campaign this install is.
    const cp::Phase before = r.phase;
    OTA_TRY(move(r, CampaignEvent::kWaveOpen));
    rec.current = id;
    OTA_TRY(save_records());
    if (before != cp::Phase::kDownloading) OTA_TRY(report(id, cp::Phase::kDownloading));
    retry.reset();
    installing = id;
    cancel = false;
    Device d = dev;
    d.record_previous = v.campaign.revert_on_abort;  // so that an abort can revert it
    const Digest want = v.campaign.manifest_hash;
    // The policy's maximum bundle age, from the signed manifest's creation.
    std::optional<std::string> too_old;
    d.accept = [&](const manifest::Manifest& m, const Digest& got) -> Status {
      if (got != want)
        return fail(ErrorCode::kPayloadMismatch, "the bundle at " + redact_url(v.campaign.url) +
                                                     " is not the one campaign " + id + " names");
      // A campaign may take a security update past the windows only when the
      // signed manifest says it is one, with the same advisories.
      if (v.campaign.advisory.has_value() != m.security.has_value() ||
          (m.security && (v.campaign.advisory->ids != m.security->ids ||
                          v.campaign.advisory->advisory != m.security->advisory)))
        return fail(ErrorCode::kPayloadMismatch,
                    "campaign " + id + " and its bundle's manifest disagree on the security advisory");
      if (v.campaign.policy && v.campaign.policy->max_age_s > 0 &&
          policy_now() - m.created > v.campaign.policy->max_age_s) {
        too_old = "the bundle was created " + trust::format_time(m.created) + ", longer ago than the campaign's maximum age (" +
                  std::to_string(v.campaign.policy->max_age_s) + " s)";
        return fail(ErrorCode::kExpired, *too_old);
      }
      return ok();
    };
    d.hold_trial = [early] { return early != nullptr; };
    d.cancelled = [&]() {
      pump(std::chrono::milliseconds(0));
      return cancel || stopping();
    };
    Agent a(d);
    std::uint64_t fetched = 0;
    Result<InstallReport> rep = fail(ErrorCode::kInternal, "");
    // An abort reaches a download waiting for bytes too, not only between chunks.
    fetch::Options fo = o.fetch;
    fo.cancelled = d.cancelled;
    auto in = o.open_source ? o.open_source(v.campaign.url, fo) : fetch::open(v.campaign.url, fo);
    if (!in) {
      rep = fail(in.error());
    } else {
      fetch::Stats fs;
      rep = install_from_source(a, **in, v.campaign.url, fo, &fs, o.open_source);
      fetched = fs.bytes_received;
    }
    installing.clear();
    CampaignRecord& rr = rec.campaigns[id];
    if (rep && rep->held) {
      OTA_TRY(move(rr, CampaignEvent::kDefer));
      OTA_TRY(save_records());
      schedule_recheck(id, early->until);
      deferred_why[id] = "written and verified; " + early->why;
      return report(id, cp::Phase::kDeferred, deferred_why[id], 0, fetched);
    }
    if (rep) {
      OTA_TRY(move(rr, CampaignEvent::kInstalled));
      OTA_TRY(save_records());
      OTA_TRY(report(id, cp::Phase::kRebooting, {}, 0, fetched));
      reboot_requested = true;
      return ok();
    }
    const Error& e = rep.error();
    if (e.code == ErrorCode::kCancelled && stopping()) return ok();  // resumes at the next start
    if (too_old) {
      // Not for this device any more: an image written early is abandoned.
      if (auto st = agent->state(); st && st->install.stage != Stage::kNone && st->install.stage != Stage::kTrial)
        (void)agent->rollback(*too_old);
      OTA_TRY(move(rr, CampaignEvent::kNotForDevice));
      rr.done = true;
      rec.current.clear();
      OTA_TRY(save_records());
      return report(id, cp::Phase::kSkipped, *too_old, static_cast<int>(ErrorCode::kExpired), fetched);
    }
    auto st = agent->state();
    if (st && st->install.stage == Stage::kWriting) (void)agent->rollback(e.code == ErrorCode::kCancelled ? "campaign aborted" : e.message);
    if (e.code == ErrorCode::kCancelled) {
      OTA_TRY(move(rr, CampaignEvent::kAbort));
      rr.done = true;
      rec.current.clear();
      OTA_TRY(save_records());
      return report(id, cp::Phase::kAborted, "campaign aborted during the install; the old image runs",
                    static_cast<int>(ErrorCode::kCampaignAborted), fetched);
    }
    if (e.code == ErrorCode::kFetch || e.code == ErrorCode::kIo) {
      // The network (or the server) failed: again later, while the campaign lasts.
      OTA_TRY(move(rr, CampaignEvent::kRetry));
      retry = id;
      retry_at = std::chrono::steady_clock::now() + std::chrono::seconds(o.retry_delay_s);
      return report(id, cp::Phase::kDownloading, "will retry: " + e.message, static_cast<int>(e.code), fetched, true);
    }
    OTA_TRY(move(rr, CampaignEvent::kInstallFailed));
    rr.done = true;
    rec.current.clear();
    OTA_TRY(save_records());
    return report(id, cp::Phase::kFailed, e.message, static_cast<int>(e.code), fetched);
  }

  // Handles one event. During an install only acknowledgements, connects and
  // an abort of the campaign being installed are handled; the rest waits.
  Status handle(const mqtt::Event& ev) {
    switch (ev.kind) {
      case mqtt::Event::Kind::kConnected: on_connected(ev); return ok();
      case mqtt::Event::Kind::kDisconnected: return ok();
      case mqtt::Event::Kind::kPublished: acknowledged(ev.mid, ev.reason); return ok();
      case mqtt::Event::Kind::kMessage: break;
    }
    if (is_sync(ev.message.topic)) {
      on_sync();
      return ok();
    }
    // About to reboot: documents come again (retained) after the reboot.
    if (reboot_requested) return ok();
    if (!installing.empty()) {
      if (campaign_id_of(ev.message.topic) == installing) {
        auto v = accept(ev.message.topic, ev.message.payload);
        if (v && v->control.state == cp::RunState::kAborted) cancel = true;
        if (v) deferred.push_back(ev);  // looked at again once the install ends
      } else {
        deferred.push_back(ev);
      }
      return ok();
    }
    auto v = accept(ev.message.topic, ev.message.payload);
    if (!v) return ok();
    OTA_TRY(act(*v));
    return track_observation(*v);
  }

  // ---- health signals (regression campaigns) ----

  // After act(): a committed campaign begins its observation (updated), a
  // waiting one too (control); a control device whose wave opened leaves
  // the control group.
  Status track_observation(const cp::Verified& v) {
    if (!v.campaign.regression) return ok();
    auto it = rec.campaigns.find(v.campaign.id);
    if (it == rec.campaigns.end()) return ok();
    CampaignRecord& r = it->second;
    const bool updated = r.phase == cp::Phase::kSucceeded, waiting = r.phase == cp::Phase::kWaiting;
    if ((updated && (!r.observation || r.observation->control)) || (waiting && !r.observation)) {
      Observation ob;
      ob.control = waiting;
      ob.since = now();
      ob.observe_s = v.campaign.regression->observe_s;
      ob.interval_s = v.campaign.regression->interval_s;
      r.observation = ob;
      observation_due[v.campaign.id] = std::chrono::steady_clock::now() + std::chrono::seconds(ob.interval_s);
      log("observing health signals for " + v.campaign.id + (waiting ? " (control group)" : ""));
      return save_records();
    }
    if (!updated && !waiting && r.observation && r.observation->control) {
      r.observation.reset();
      observation_due.erase(v.campaign.id);
      return save_records();
    }
    return ok();
  }

  // Every start not preceded by a reboot the daemon asked for is an
  // unexpected reboot for the campaigns it observes.
  Status count_restart() {
    bool changed = false;
    for (auto& [id, r] : rec.campaigns) {
      if (!r.observation || !r.observation->active) continue;
      if (r.observation->restart_expected) r.observation->restart_expected = false;
      else ++r.observation->signals.unexpected_reboots;
      changed = true;
    }
    return changed ? save_records() : ok();
  }
  Status expect_restart() {
    bool changed = false;
    for (auto& [id, r] : rec.campaigns)
      if (r.observation && r.observation->active) changed = r.observation->restart_expected = true;
    return changed ? save_records() : ok();
  }

  // The observations due: the health check, the counter, a report.
  Status observe_due() {
    if (!installing.empty() || reboot_requested) return ok();
    const auto wall = std::chrono::steady_clock::now();
    // By id: save_records() may trim finished records from the map.
    std::vector<std::string> ids;
    for (const auto& [id, r] : rec.campaigns)
      if (r.observation && r.observation->active) ids.push_back(id);
    for (const auto& id : ids) {
      auto it = rec.campaigns.find(id);
      if (it == rec.campaigns.end() || !it->second.observation) continue;
      CampaignRecord& r = it->second;
      Observation& ob = *r.observation;
      auto [due, fresh] = observation_due.try_emplace(id, wall + std::chrono::seconds(ob.interval_s));
      if (fresh || wall < due->second) continue;
      due->second = wall + std::chrono::seconds(ob.interval_s);
      if (ob.control ? r.phase != cp::Phase::kWaiting : r.phase != cp::Phase::kSucceeded) {
        ob.active = false;  // reverted, aborted, ...: nothing more to observe
        OTA_TRY(save_records());
        continue;
      }
      if (dev.health_check) {
        if (auto st = dev.health_check(); !st) {
          ++ob.signals.health_failures;
          log("health signals for " + id + ": the health check failed: " + st.error().message);
        }
      }
      if (o.counter) {
        if (auto n = o.counter(); n) {
          if (ob.counter_known && *n > ob.counter_last) ob.signals.counter += *n - ob.counter_last;
          ob.counter_last = *n;  // lower: the counter was reset (taken as the new base)
          ob.counter_known = true;
        } else {
          log("health signals for " + id + ": the counter command failed: " + n.error().message);
        }
      }
      const trust::Time t = now();
      ob.signals.observed_s = std::clamp<std::int64_t>(t - ob.since, 0, ob.observe_s);
      if (t - ob.since >= ob.observe_s) ob.active = false;
      const cp::Phase phase = r.phase;
      const std::string why = std::string(ob.active ? "observing health signals" : "observed health signals") +
                              (ob.control ? " (control group)" : "");
      OTA_TRY(save_records());  // r and ob may be gone after it (trimmed): report by id
      OTA_TRY(report(id, phase, why));
    }
    return ok();
  }

  void pump(std::chrono::milliseconds wait) {
    if (!client) return;
    while (auto ev = client->next(wait)) {
      if (auto st = handle(*ev); !st) log(st.error().message);
      wait = std::chrono::milliseconds(0);
    }
  }

  // A trial pending at start: the boot evidence and the health check decide,
  // and the campaign hears.
  Status settle_trial() {
    OTA_TRY_ASSIGN(auto s, agent->state());
    if (s.install.stage != Stage::kTrial && s.install.stage != Stage::kWritten) return ok();
    const std::string id = rec.current;
    if (auto st = agent->boot_check(); !st) {
      if (st.error().code != ErrorCode::kTrialNotBooted) return fail(st.error());
      // Still on the old slot: the reboot did not happen. Nothing is committed.
      if (!id.empty()) {
        CampaignRecord& r = rec.campaigns[id];
        if (r.phase == cp::Phase::kRebooting || r.phase == cp::Phase::kReverting) {
          OTA_TRY(move(r, CampaignEvent::kRebootFailed));
        } else if (r.phase == cp::Phase::kDownloading) {
          // Killed between the agent's trial record and ours: the install is
          // done and its trial waits for the reboot (never an install again).
          OTA_TRY(move(r, CampaignEvent::kInstalled));
          OTA_TRY(save_records());
        }
      }
      log(st.error().message);
      reboot_again_at = std::chrono::steady_clock::now() + std::chrono::seconds(o.retry_delay_s);
      const bool reverting = !id.empty() && rec.campaigns[id].phase == cp::Phase::kReverting;
      return report(id, reverting ? cp::Phase::kReverting : cp::Phase::kRebooting, st.error().message,
                    static_cast<int>(st.error().code), 0, true);
    }
    OTA_TRY_ASSIGN(auto after, agent->state());
    if (after.install.stage != Stage::kNone) return ok();
    const bool rolled_back = after.outcome == Outcome::kRolledBack;
    if (!id.empty()) {
      CampaignRecord& r = rec.campaigns[id];
      const bool reverting = r.phase == cp::Phase::kReverting;
      if (r.phase == cp::Phase::kRebooting || reverting) {
        OTA_TRY(move(r, rolled_back ? CampaignEvent::kRolledBack : CampaignEvent::kCommitted));
      } else {
        // The record was cut before it said rebooting: the outcome is the same.
        r.phase = rolled_back ? cp::Phase::kRolledBack : cp::Phase::kSucceeded;
      }
      r.done = true;
      rec.current.clear();
      OTA_TRY(save_records());
      // A revert rolled back: the previous image failed its health check and
      // the new one boots again.
      OTA_TRY(report(id, r.phase,
                     rolled_back ? (reverting ? "the previous image was rolled back, the new image runs again: " : "") +
                                       after.last_result
                                 : reverting ? after.last_result : std::string(),
                     rolled_back ? static_cast<int>(ErrorCode::kRolledBack) : 0));
    }
    // After a rollback the old image must run again: reboot into it.
    if (rolled_back) {
      auto running = agent->running_slot();
      auto bs = boot::BootControl(*dev.env).state();
      if (running && bs && *running != bs->boot_slot) reboot_requested = true;
    }
    return ok();
  }

  Status connect() {
    mqtt::Options mo = o.mqtt;
    if (mo.client_id.empty()) mo.client_id = o.device_id;
    mo.will = mqtt::Message{cp::availability_topic(o.fleet, o.device_id),
                            cp::encode_availability({o.device_id, boot, false}), 1, true, 0, {}};
    OTA_TRY_ASSIGN(auto c, o.connect ? o.connect(mo) : mqtt::connect(mo));
    client = std::move(c);
    OTA_TRY(client->subscribe("ota/" + o.fleet + "/campaigns/+", 1));
    // For brokers whose retained store does not span every node (docs/protocol.md,
    // "What a broker must provide"). Best effort: an ACL written before these
    // topics existed refuses them, and everything else still works.
    for (const auto& f : {cp::sync_filter(o.fleet), cp::device_campaigns_filter(o.fleet, o.device_id)})
      if (auto st = client->subscribe(f, 1); !st) log("not subscribed to " + f + ": " + st.error().message);
    return ok();
  }

  // Waits (bounded) for the outbox to drain before a reboot.
  void drain(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!out.pending.empty() && std::chrono::steady_clock::now() < end && !stopping()) pump(std::chrono::milliseconds(100));
  }

  // Acts again on the newest document accepted for the campaign in `slot`
  // (and clears it), if it is still fresh now: a pause or an abort that came
  // meanwhile is what act() sees.
  Status act_again(std::optional<std::string>& slot, const std::string& what) {
    const std::string id = *slot;
    slot.reset();
    auto it = latest.find(id);
    if (it == latest.end() || rec.campaigns[id].done) return ok();
    if (auto fresh = cp::check_control_fresh(it->second.campaign, it->second.control, now()); !fresh) {
      log(what + id + " waits for fresh control: " + fresh.error().message);
      return ok();
    }
    const cp::Verified v = it->second;
    return act(v);
  }

  Status session() {
    boot = random_hex(8);
    reboot_requested = false;
    reboot_again_at.reset();
    deferred.clear();
    latest.clear();
    retry.reset();
    recheck.reset();
    deferred_why.clear();
    agent = std::make_unique<Agent>(dev);
    load();
    observation_due.clear();
    OTA_TRY(settle_trial());
    OTA_TRY(count_restart());
    OTA_TRY(connect());
    if (out.last_state.empty()) OTA_TRY(report(std::string(), cp::Phase::kIdle));
    while (!stopping() && !reboot_requested) {
      if (reboot_again_at && std::chrono::steady_clock::now() >= *reboot_again_at) {
        reboot_again_at.reset();
        reboot_requested = true;
        break;
      }
      if (!deferred.empty()) {
        mqtt::Event ev = std::move(deferred.front());
        deferred.pop_front();
        if (auto st = handle(ev); !st) log(st.error().message);
        continue;
      }
      pump(std::chrono::milliseconds(250));
      // A failed download's retry; a deferred campaign whose window opened,
      // whose delay ended, or whose conditions are due to be checked again.
      if (retry && std::chrono::steady_clock::now() >= retry_at && installing.empty()) OTA_TRY(act_again(retry, "retry of "));
      if (recheck && std::chrono::steady_clock::now() >= recheck_at && installing.empty()) OTA_TRY(act_again(recheck, "deferred "));
      if (auto st = observe_due(); !st) log(st.error().message);
    }
    if (reboot_requested) {
      if (auto st = expect_restart(); !st) log(st.error().message);
      drain(std::chrono::seconds(5));
    }
    client->stop();
    client.reset();
    return ok();
  }

  Result<bool> run_session() {
    OTA_TRY(session());
    return reboot_requested;
  }

  Status run() {
    while (!stopping()) {
      OTA_TRY(session());
      if (!reboot_requested) break;
      if (!real_reboot)
        return fail(ErrorCode::kRebootPending, "a reboot is needed and no reboot command is configured");
      // A reboot command that fails leaves the trial pending: the next start
      // (systemd's restart) finds it not booted and asks again.
      if (auto st = real_reboot(); !st)
        return fail(ErrorCode::kRebootPending, "the reboot command failed: " + st.error().message);
      // A real reboot stops this process; until it does, nothing else happens
      // here (a new session would judge a trial that has not booted).
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(o.reboot_wait_s);
      while (!stopping() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!stopping())
        return fail(ErrorCode::kRebootPending, "the reboot command succeeded but the system did not reboot within " +
                                                   std::to_string(o.reboot_wait_s) + " s");
    }
    return ok();
  }
};

Daemon::Daemon(Device device, storage::StateStore& state, DaemonOptions o)
    : impl_(std::make_unique<Impl>(std::move(device), state, std::move(o))) {}
Daemon::~Daemon() = default;
Status Daemon::run() { return impl_->run(); }
Result<bool> Daemon::run_session() { return impl_->run_session(); }

}  // namespace ota::agent
