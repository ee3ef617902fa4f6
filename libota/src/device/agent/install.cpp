// The agent's life cycle: install (verify, choose, stream, check, trial),
// boot-check (health check, commit or roll back), commit, rollback.
#include <algorithm>

#include "delta/codec/zstd.hpp"
#include "ota/device/agent.hpp"
#include "ota/core/hash.hpp"

namespace ota::agent {

namespace {

constexpr char kStateRecord[] = "state.json";

// Counts the bundle bytes read (reported; tests check that nothing of a
// payload is read before verification); skipped bytes are not fetched.
class CountingReader final : public Reader {
 public:
  explicit CountingReader(Reader& in) : in_(in) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto n = in_.read(out);
    if (n) count += *n;
    return n;
  }
  Result<std::uint64_t> skip(std::uint64_t n) override { return in_.skip(n); }  // not fetched
  void hint(std::uint64_t upcoming) override { in_.hint(upcoming); }
  std::uint64_t count = 0;

 private:
  Reader& in_;
};

// The first `size` bytes of a bank: the image in it.
class PrefixSource final : public Source {
 public:
  PrefixSource(const storage::BlockStore& bank, std::uint64_t size) : bank_(bank), size_(size) {}
  std::uint64_t size() const override { return size_; }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override {
    if (offset > size_ || out.size() > size_ - offset)
      return fail(ErrorCode::kIo, "read past the image at offset " + std::to_string(offset));
    return bank_.read_at(offset, out);
  }

 private:
  const storage::BlockStore& bank_;
  std::uint64_t size_;
};

int index_of(boot::Slot s) { return s == boot::Slot::kA ? 0 : 1; }

// Feeds the first `size` bytes of a bank to a hasher.
Status hash_prefix_into(const storage::BlockStore& bank, std::uint64_t size, Hasher& h) {
  if (size > bank.size()) return fail(ErrorCode::kIo, "image larger than its bank");
  Bytes buf(256 * 1024);
  for (std::uint64_t off = 0; off < size;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
    OTA_TRY(bank.read_at(off, MutableByteSpan(buf.data(), n)));
    h.update(ByteSpan(buf.data(), n));
    off += n;
  }
  return ok();
}

Result<Digest> hash_prefix(const storage::BlockStore& bank, std::uint64_t size) {
  Hasher h;
  OTA_TRY(hash_prefix_into(bank, size, h));
  return h.finish();
}

// A stored full image is checkpointed every this many bytes.
constexpr std::uint64_t kStoredCheckpoint = std::uint64_t{16} << 20;

// The full payload into the bank: zstd frames (independent, so each frame
// boundary is a checkpoint) or stored bytes, hashed as written. The same
// push interface as delta::Patcher, so one loop drives both.
class FullDecoder {
 public:
  struct Options {
    const manifest::Payload* payload = nullptr;
    std::uint64_t target_size = 0;
    Digest target_hash{};
    std::optional<delta::ResumePoint> resume;
    const storage::BlockStore* bank = nullptr;  // reads back the written prefix when resuming
    std::function<Status(const delta::ResumePoint&)> on_frame;
  };

  static Result<std::unique_ptr<FullDecoder>> create(Writer& out, Options o) {
    std::unique_ptr<FullDecoder> d(new FullDecoder(out, std::move(o)));
    if (d->o_.payload->compression != manifest::Compression::kNone) {
      OTA_TRY_ASSIGN(auto dec, codec::ZstdDecoder::create(std::max<int>(d->o_.payload->window_log, 10)));
      d->dec_ = std::move(dec);
      d->obuf_.resize(128 * 1024);
    }
    if (d->o_.resume) {
      const auto& rp = *d->o_.resume;
      if (rp.new_offset > d->o_.target_size || rp.patch_offset > d->o_.payload->size)
        return fail(ErrorCode::kUsage, "resume point beyond the payload");
      OTA_TRY(hash_prefix_into(*d->o_.bank, rp.new_offset, d->hash_));
      d->written_ = rp.new_offset;
      d->frame_ = rp.frame;
      d->last_checkpoint_ = rp.new_offset;
    }
    return d;
  }

  std::uint64_t next_offset() const {
    return o_.resume && offset_ < o_.resume->patch_offset ? o_.resume->patch_offset : offset_;
  }

  Status skip(std::uint64_t n) {
    if (!o_.resume || offset_ + n > o_.resume->patch_offset)
      return fail(ErrorCode::kUsage, "skip only up to the resume point");
    offset_ += n;
    return ok();
  }

  Status feed(ByteSpan data) {
    if (o_.resume && offset_ < o_.resume->patch_offset) {  // bytes before the resume point
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), o_.resume->patch_offset - offset_));
      offset_ += k;
      data = data.subspan(k);
    }
    if (data.empty()) return ok();
    if (!dec_) {
      OTA_TRY(emit(data));
      offset_ += data.size();
      if (written_ - last_checkpoint_ >= kStoredCheckpoint) OTA_TRY(checkpoint());
      return ok();
    }
    while (true) {
      if (!in_frame_) {
        if (data.empty()) return ok();
        OTA_TRY(dec_->reset());
        in_frame_ = true;
      }
      auto step = dec_->decode(data, obuf_);
      if (!step) return fail(step.error().with_context("payload " + o_.payload->name));
      data = data.subspan(step->consumed);
      offset_ += step->consumed;
      if (step->produced) OTA_TRY(emit(ByteSpan(obuf_.data(), step->produced)));
      if (step->frame_done) {
        in_frame_ = false;
        ++frame_;
        OTA_TRY(checkpoint());
        continue;
      }
      if (data.empty() && step->produced < obuf_.size()) return ok();
    }
  }

  // The end of the payload: every frame complete, the image's size and hash.
  Status finish() {
    if (in_frame_)
      return fail(ErrorCode::kDecompress, "payload " + o_.payload->name + ": the zstd frame is truncated");
    if (written_ != o_.target_size || hash_.finish() != o_.target_hash)
      return fail(ErrorCode::kPayloadMismatch,
                  "payload " + o_.payload->name + " does not produce the manifest's target image");
    return ok();
  }

  std::uint64_t written() const { return written_; }

 private:
  FullDecoder(Writer& out, Options o) : out_(out), o_(std::move(o)) {}

  Status emit(ByteSpan data) {
    if (data.size() > o_.target_size - written_)
      return fail(ErrorCode::kPayloadMismatch, "payload " + o_.payload->name + " is longer than the target image");
    OTA_TRY(out_.write(data));
    hash_.update(data);
    written_ += data.size();
    return ok();
  }

  Status checkpoint() {
    last_checkpoint_ = written_;
    if (!o_.on_frame) return ok();
    return o_.on_frame(delta::ResumePoint{frame_, offset_, written_});
  }

  Writer& out_;
  Options o_;
  std::unique_ptr<codec::ZstdDecoder> dec_;
  Bytes obuf_;
  Hasher hash_;
  bool in_frame_ = false;
  std::uint64_t offset_ = 0, written_ = 0, frame_ = 0, last_checkpoint_ = 0;
};

// Reads the chosen payload from the bundle into a decoder (patcher or full),
// jumping over what the decoder does not need when it resumes.
template <class Sink>
Status pump(bundle::BundleReader& r, Sink& sink, const manifest::Payload& p,
            const std::function<void(std::uint64_t, std::uint64_t)>& progress, const std::function<bool()>& cancelled) {
  Bytes buf(64 * 1024);
  while (true) {
    const std::uint64_t at = r.payload_position(), want = sink.next_offset();
    if (want > at) {
      OTA_TRY(r.skip_to(want));
      OTA_TRY(sink.skip(want - at));
    }
    OTA_TRY_ASSIGN(auto n, r.read(buf));
    if (n == 0) return ok();
    OTA_TRY(sink.feed(ByteSpan(buf.data(), n)));
    if (progress) progress(r.payload_position(), p.size);
    if (cancelled && cancelled()) return fail(ErrorCode::kCancelled, "install cancelled");
  }
}

}  // namespace

Result<State> Agent::state() const {
  OTA_TRY_ASSIGN(auto rec, d_.state->get(kStateRecord));
  if (!rec) return State{};
  return parse_state(*rec);
}

Status Agent::save(const State& s) { return d_.state->replace(kStateRecord, encode_state(s)); }

Result<boot::Slot> Agent::running_slot() const {
  auto slot = d_.booted_slot ? d_.booted_slot() : boot::booted_from_simulator(*d_.env)();
  if (!slot) return fail(slot.error().with_context("which slot runs"));
  return slot;
}

Result<trust::TrustStore> load_trust(const storage::StateStore& state, const std::string& anchor_path) {
  auto anchor = trust::TrustStore::load(anchor_path);
  if (!anchor) return fail(anchor.error().with_context("trust anchor"));
  auto saved = state.get(kTrustRecord);
  if (!saved) return fail(saved.error().with_context("saved trust root"));
  if (!*saved) return anchor;
  auto e = trust::parse_envelope(std::string((*saved)->begin(), (*saved)->end()));
  if (!e) return fail(e.error().with_context("saved trust root"));
  auto t = trust::TrustStore::from_anchor(*e);
  if (!t) return fail(t.error().with_context("saved trust root"));
  if (anchor->root().version > t->root().version) return anchor;
  return t;
}

Status persist_trust(storage::StateStore& state, const trust::TrustStore& t) {
  auto saved = state.get(kTrustRecord);
  if (!saved) return fail(saved.error().with_context("saved trust root"));
  if (*saved) {
    auto e = trust::parse_envelope(std::string((*saved)->begin(), (*saved)->end()));
    if (e) {
      auto old = trust::TrustStore::from_anchor(*e);
      if (old && old->root().version >= t.root().version) return ok();
    }
  }
  const std::string text = trust::encode_envelope(t.envelope());
  OTA_TRY_CTX(state.replace(kTrustRecord, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())),
              "saving trust root version " + std::to_string(t.root().version));
  return ok();
}

// The hash of the first `size` bytes of a bank, cached in the state.
Result<Digest> Agent::bank_hash(boot::Slot slot, std::uint64_t size, State& s) {
  auto& info = s.banks[index_of(slot)];
  if (info && info->size == size) return info->hash;
  OTA_TRY_ASSIGN(auto h, hash_prefix(*d_.banks[index_of(slot)], size));
  // Keep the version of a known image; a factory image stays unversioned.
  if (!info || info->size != size) info = BankInfo{info && info->size == size ? info->version : "", size, h};
  return h;
}

Result<InstallReport> Agent::install(Reader& bundle, const std::function<Result<std::unique_ptr<Reader>>()>& reopen) {
  auto first = install_once(bundle, static_cast<bool>(reopen));
  if (first || first.error().code != ErrorCode::kOldMismatch || !reopen) return first;
  // The speculative delta did not apply (its base hash is cached now): once
  // more from the start of the bundle, which picks another payload.
  OTA_TRY_ASSIGN(auto again, reopen());
  return install_once(*again, false);
}

Result<InstallReport> Agent::install_once(Reader& bundle_in, bool speculate) {
  InstallReport report;
  CountingReader in(bundle_in);
  auto loaded = state();
  if (!loaded) return fail(loaded.error().with_context("agent state"));
  State s = std::move(*loaded);
  boot::BootControl bc(*d_.env);
  auto bs = bc.state();
  if (!bs) return fail(bs.error().with_context("boot environment"));
  if (s.install.stage == Stage::kTrial || bs->upgrade_available)
    return fail(ErrorCode::kTrialPending, "a trial boot is pending: run boot-check, commit or rollback first");
  // The bank that runs comes from the boot, not from the environment.
  auto running = running_slot();
  if (!running) return fail(running.error());
  if (*running != bs->boot_slot)
    return fail(ErrorCode::kRebootPending, std::string("the device runs slot ") + boot::slot_name(*running) +
                                               " but boots slot " + boot::slot_name(bs->boot_slot) + " next: reboot first");
  const boot::Slot active = *running;
  const boot::Slot target = boot::other(active);
  storage::BlockStore& target_bank = *d_.banks[index_of(target)];
  // The running bank is only ever read.
  const storage::BlockStore& active_bank = *d_.banks[index_of(active)];

  // 1. Signatures, then policy: nothing of a payload is read before this.
  OTA_TRY_ASSIGN(auto reader, bundle::BundleReader::open(in));
  bundle::VerifyOptions vo;
  vo.policy.now = d_.now();
  vo.policy.hardware = d_.hardware_id;
  vo.policy.security_floor = s.security_floor;
  if (const auto& a = s.banks[index_of(active)]; a && !a->version.empty()) vo.policy.installed_version = a->version;
  const std::uint64_t root_before = d_.trust->root().version;
  auto m = (reader)->verify(*d_.trust, vo);
  // A root update the bundle carried is kept before anything else happens,
  // even when the rest of the verification failed (it chained on its own).
  if (d_.trust->root().version > root_before) OTA_TRY(persist_trust(*d_.state, *d_.trust));
  if (!m) return fail(m.error());
  const Digest manifest_hash = content_hash((reader)->manifest_bytes());
  if (d_.accept) OTA_TRY(d_.accept(*m, manifest_hash));
  if (m->target_size > target_bank.size())
    return fail(ErrorCode::kLimitExceeded, "the image (" + std::to_string(m->target_size) +
                                               " bytes) does not fit bank " + boot::slot_name(target));

  // 2. The payload: resume the one in progress, else the delta from the
  // active bank's content, else the full image.
  const bool resuming = s.install.stage != Stage::kNone && s.install.manifest_hash == manifest_hash &&
                        s.install.target == target;
  if (resuming) OTA_TRY(advance(s.install.stage, InstallEvent::kResume));
  std::optional<std::size_t> chosen;
  if (resuming) {
    for (std::size_t i = 0; i < m->payloads.size(); ++i)
      if (m->payloads[i].name == s.install.payload) chosen = i;
  } else {
    // One delta that could apply, no cached hash of the active bank, and a
    // caller that can reopen the bundle: take it, and let the patcher hash
    // the active bank while it writes the inactive one (as `ota patch` does).
    // A wrong base fails at the end with kOldMismatch before anything is
    // marked bootable; install() then reads the bundle again, finds the hash
    // cached and takes another payload.
    std::vector<std::size_t> fits;
    for (std::size_t i = 0; i < m->payloads.size(); ++i)
      if (m->payloads[i].kind == manifest::PayloadKind::kDelta &&
          m->payloads[i].base_size <= active_bank.size())
        fits.push_back(i);
    const auto& info = s.banks[index_of(active)];
    if (speculate && fits.size() == 1 && !(info && info->size == m->payloads[fits[0]].base_size)) chosen = fits[0];
    for (std::size_t i = 0; i < m->payloads.size() && !chosen; ++i) {
      const auto& p = m->payloads[i];
      if (p.kind != manifest::PayloadKind::kDelta || p.base_size > active_bank.size()) continue;
      auto h = bank_hash(active, p.base_size, s);
      if (!h) return fail(h.error().with_context("hashing the active bank"));
      if (*h == p.base_hash) chosen = i;
    }
    for (std::size_t i = 0; i < m->payloads.size() && !chosen; ++i)
      if (m->payloads[i].kind == manifest::PayloadKind::kFull) chosen = i;
  }
  if (!chosen)
    return fail(ErrorCode::kNoPayload, "no payload applies: no full image and no delta from the active bank's content");
  const manifest::Payload& p = m->payloads[*chosen];
  report.payload = p.name;
  report.delta = p.kind == manifest::PayloadKind::kDelta;
  report.resumed = resuming && s.install.stage == Stage::kWriting && s.install.resume.has_value();

  // 3. The install record, durable before the first bank write.
  if (!resuming) {
    // Another bundle's install in progress is abandoned (never its trial: refused above).
    if (s.install.stage != Stage::kNone) OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
    s.install = InstallRecord{Stage::kNone, manifest_hash, target, p.name, m->version, m->security_version,
                              m->target_size, m->target_hash, std::nullopt};
    OTA_TRY(advance(s.install.stage, InstallEvent::kBegin));
    s.banks[index_of(target)].reset();
    OTA_TRY(save(s));
  }

  if (s.install.stage == Stage::kWriting) {
    // 4. Stream: chunk check -> decoder or patcher -> bank, hashed as written.
    while (true) {
      OTA_TRY_ASSIGN(auto idx, (reader)->next_payload());
      if (!idx) return fail(ErrorCode::kMalformed, "bundle ended before payload " + p.name);
      if (*idx == *chosen) break;
    }
    const std::uint64_t start = s.install.resume ? s.install.resume->new_offset : 0;
    storage::BankWriter bank_out(target_bank, start);
    // A checkpoint: the bank synced up to it, then the state.
    auto on_frame = [&](const delta::ResumePoint& rp) -> Status {
      OTA_TRY(advance(s.install.stage, InstallEvent::kCheckpoint));
      OTA_TRY(bank_out.sync());
      s.install.resume = rp;
      return save(s);
    };
    if (report.delta) {
      PrefixSource old_image(active_bank, p.base_size);
      PrefixSource written(target_bank, m->target_size);
      delta::PatchOptions po;
      const auto& info = s.banks[index_of(active)];
      const bool base_known = info && info->size == p.base_size && info->hash == p.base_hash;
      if (base_known) po.known_old_hash = p.base_hash;  // hashed before, cached in the state
      else po.verify_old_concurrently = true;          // hashed while patching, checked by finish()
      po.max_window_log = std::max<std::uint8_t>(p.window_log, 10);
      po.resume = s.install.resume;
      po.written_prefix = &written;
      po.on_frame = on_frame;
      auto patcher = delta::Patcher::create(old_image, bank_out, po);
      if (!patcher) return fail(patcher.error());
      OTA_TRY(pump(*reader, **patcher, p, d_.progress, d_.cancelled));
      if (Status done = (*patcher)->finish(); !done) {  // NEW's hash, the prefix read back included
        if (done.error().code == ErrorCode::kOldMismatch) {
          // Not the delta's base: abandon it, cache the active bank's hash
          // so the next install picks another payload.
          OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
          s.install = InstallRecord{};
          OTA_TRY_ASSIGN(auto h, bank_hash(active, p.base_size, s));
          OTA_TRY(save(s));
          return fail(ErrorCode::kOldMismatch, "the active bank is not the base of " + p.name +
                                                   "; install again to use another payload");
        }
        if (done.error().code == ErrorCode::kNewMismatch && s.install.resume) {
          // The checkpointed prefix is not what was written: start over next time.
          s.install.resume.reset();
          OTA_TRY(save(s));
        }
        return fail(done.error());
      }
      const auto* h = (*patcher)->header();
      if (h->new_size != m->target_size || h->new_hash != m->target_hash)
        return fail(ErrorCode::kPayloadMismatch, "the delta does not produce the manifest's target image");
      if (!base_known) {  // verified by the patcher: remember it
        auto& a = s.banks[index_of(active)];
        a = BankInfo{a && a->size == p.base_size ? a->version : "", p.base_size, p.base_hash};
      }
    } else {
      FullDecoder::Options fo;
      fo.payload = &p;
      fo.target_size = m->target_size;
      fo.target_hash = m->target_hash;
      fo.resume = s.install.resume;
      fo.bank = &target_bank;
      fo.on_frame = on_frame;
      OTA_TRY_ASSIGN(auto full, FullDecoder::create(bank_out, fo));
      OTA_TRY(pump(*reader, *full, p, d_.progress, d_.cancelled));
      if (Status done = (full)->finish(); !done) {
        if (s.install.resume) {  // the prefix may be what is wrong: start over next time
          s.install.resume.reset();
          OTA_TRY(save(s));
        }
        return fail(done.error());
      }
    }
    report.bytes_written = bank_out.position() - start;
    OTA_TRY(bank_out.sync());
    OTA_TRY(target_bank.sync());
    OTA_TRY(advance(s.install.stage, InstallEvent::kVerified));
    s.install.resume.reset();
    OTA_TRY(save(s));
  } else {
    // Written before a power cut: check the bank still holds the image.
    OTA_TRY_ASSIGN(auto h, hash_prefix(target_bank, s.install.target_size));
    if (h != s.install.target_hash) {
      OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
      s.install = InstallRecord{};
      OTA_TRY(save(s));
      return fail(ErrorCode::kPayloadMismatch, "bank " + std::string(boot::slot_name(target)) +
                                                   " no longer holds the installed image; install again");
    }
  }
  report.bytes_read = in.count;

  // 5. Only now: boot the target once, then reboot into it.
  OTA_TRY(advance(s.install.stage, InstallEvent::kTrialBegun));
  OTA_TRY(bc.begin_trial(target));
  OTA_TRY(save(s));
  if (d_.reboot) OTA_TRY(d_.reboot());
  return report;
}

Status Agent::boot_check() {
  auto loaded = state();
  if (!loaded) return fail(loaded.error().with_context("agent state"));
  State s = std::move(*loaded);
  boot::BootControl bc(*d_.env);
  auto bs = bc.state();
  if (!bs) return fail(bs.error().with_context("boot environment"));
  // A cut between the environment store and the state record.
  if (s.install.stage == Stage::kWritten && bs->upgrade_available && bs->boot_slot == s.install.target)
    OTA_TRY(advance(s.install.stage, InstallEvent::kTrialFound));
  if (s.install.stage != Stage::kTrial) return ok();
  const std::string version = s.install.version;
  const char* target = boot::slot_name(s.install.target);
  OTA_TRY_ASSIGN(auto running, running_slot());
  if (running != s.install.target) {
    if (bs->upgrade_available && bs->boot_slot == s.install.target) {
      // Not rebooted yet (or the reboot command failed): nothing to judge.
      OTA_TRY(advance(s.install.stage, InstallEvent::kNotBooted));
      return fail(ErrorCode::kTrialNotBooted, std::string("the trial of slot ") + target +
                                                  " has not booted yet (the device runs slot " +
                                                  boot::slot_name(running) + "): reboot first");
    }
    // The bootloader fell back (bootcount past bootlimit) or the trial was undone.
    OTA_TRY(advance(s.install.stage, InstallEvent::kFellBack));
    s.last_result = "rolled-back " + version + ": the bootloader fell back to slot " + boot::slot_name(bs->boot_slot);
    s.outcome = Outcome::kRolledBack;
    s.install = InstallRecord{};
    return save(s);
  }
  if (bs->boot_slot != s.install.target) {
    // Running the trial, but the environment already boots the old slot next
    // (a rollback cut before its record): finish the rollback.
    OTA_TRY(advance(s.install.stage, InstallEvent::kRollBack));
    s.last_result = "rolled-back " + version + ": the environment boots slot " + boot::slot_name(bs->boot_slot) + " next";
    s.outcome = Outcome::kRolledBack;
    s.install = InstallRecord{};
    OTA_TRY(save(s));
    if (d_.reboot) OTA_TRY(d_.reboot());
    return ok();
  }
  Status health = d_.health_check ? d_.health_check() : ok();
  if (!health) return rollback("health check failed: " + health.error().message);
  // Commit: the environment first (idempotent if cut before the state is saved).
  OTA_TRY(advance(s.install.stage, InstallEvent::kCommit));
  OTA_TRY(bc.commit());
  s.banks[index_of(s.install.target)] = BankInfo{version, s.install.target_size, s.install.target_hash};
  s.security_floor = std::max(s.security_floor, s.install.security_version);
  s.last_result = "installed " + version;
  s.outcome = Outcome::kInstalled;
  s.install = InstallRecord{};
  return save(s);
}

Status Agent::commit() {
  OTA_TRY_ASSIGN(auto loaded, state());
  if (loaded.install.stage != Stage::kTrial) return fail(ErrorCode::kUsage, "no trial to commit");
  Device saved = d_;
  d_.health_check = nullptr;  // an explicit commit skips the health check
  Status st = boot_check();
  d_ = std::move(saved);
  return st;
}

Status Agent::rollback(const std::string& reason) {
  OTA_TRY_ASSIGN(auto loaded, state());
  State s = std::move(loaded);
  if (s.install.stage == Stage::kNone) return fail(ErrorCode::kUsage, "nothing to roll back");
  boot::BootControl bc(*d_.env);
  OTA_TRY_ASSIGN(auto bs, bc.state());
  const bool trial = s.install.stage == Stage::kTrial;
  bool trial_runs = false;
  if (trial) {
    OTA_TRY_ASSIGN(auto running, running_slot());
    trial_runs = running == s.install.target;
  }
  OTA_TRY(advance(s.install.stage, trial ? InstallEvent::kRollBack : InstallEvent::kAbandon));
  if (trial && bs.boot_slot == s.install.target) OTA_TRY(bc.rollback());
  s.last_result = "rolled-back " + s.install.version + ": " + reason;
  s.outcome = Outcome::kRolledBack;
  s.install = InstallRecord{};
  OTA_TRY(save(s));
  // Only a trial that runs needs a reboot into the old image.
  if (trial_runs && d_.reboot) OTA_TRY(d_.reboot());
  return ok();
}

Result<InstallReport> install_from_source(Agent& agent, fetch::SourceReader& first, const std::string& source,
                                          const fetch::Options& options, fetch::Stats* stats, const OpenSource& open) {
  // A reopened source stays owned here (install() drops its reader) so its
  // transfer can be counted afterwards; install() gets a forwarding reader.
  class Forward final : public Reader {
   public:
    explicit Forward(Reader& r) : r_(r) {}
    Result<std::size_t> read(MutableByteSpan out) override { return r_.read(out); }
    Result<std::uint64_t> skip(std::uint64_t n) override { return r_.skip(n); }
    void hint(std::uint64_t upcoming) override { r_.hint(upcoming); }

   private:
    Reader& r_;
  };
  std::vector<std::unique_ptr<fetch::SourceReader>> reopened;
  auto rep = agent.install(first, [&]() -> Result<std::unique_ptr<Reader>> {
    OTA_TRY_ASSIGN(auto again, open ? open(source, options) : fetch::open(source, options));
    reopened.push_back(std::move(again));
    return std::unique_ptr<Reader>(std::make_unique<Forward>(*reopened.back()));
  });
  if (stats) {
    *stats = first.stats();
    for (const auto& r : reopened) {
      stats->bytes_received += r->stats().bytes_received;
      stats->requests += r->stats().requests;
      stats->retries += r->stats().retries;
    }
  }
  return rep;
}

}  // namespace ota::agent
