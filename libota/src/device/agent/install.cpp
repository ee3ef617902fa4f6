// The agent's life cycle: install (verify, choose, stream, check, trial),
// boot-check (health check, commit or roll back), commit, rollback.
#include <algorithm>

#include "ota/core/hash.hpp"
#include "ota/device/agent.hpp"
#include "ota/device/install.hpp"
#include "ota/device/spool.hpp"

namespace ota::agent {

// What prepare_reuse() learnt: the index and the plan, for write_reuse().
struct Agent::ReuseState {
  std::size_t payload = 0;
  chunks::Index index;
  reuse::Plan plan;
};

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

int index_of(boot::Slot s) { return s == boot::Slot::kA ? 0 : 1; }

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
  Hasher hasher;
  OTA_TRY(hash_range(*d_.banks[index_of(slot)], 0, size, hasher));
  const Digest h = hasher.finish();
  // Keep the version of a known image; a factory image stays unversioned.
  if (!info || info->size != size) info = BankInfo{info && info->size == size ? info->version : "", size, h};
  return h;
}

Result<InstallReport> Agent::install(Reader& bundle, const std::function<Result<std::unique_ptr<Reader>>()>& reopen) {
  auto first = install_once(bundle, static_cast<bool>(reopen));
  if (!first && first.error().code == ErrorCode::kNewMismatch && failed_delta_ && reopen) {
    // The delta did not make its target here: once more, without it.
    OTA_TRY_ASSIGN(auto again, reopen());
    return install_once(*again, false);
  }
  if (first || first.error().code != ErrorCode::kOldMismatch || !reopen) return first;
  // The speculative delta did not apply (its base hash is cached now): once
  // more from the start of the bundle, which picks another payload.
  OTA_TRY_ASSIGN(auto again, reopen());
  return install_once(*again, false);
}

// ---- the steps (ota/device/install.hpp) ----

Result<VerifiedBundle> verify_bundle(Reader& in, trust::TrustStore& trust, storage::StateStore& state,
                                     const bundle::VerifyOptions& options) {
  VerifiedBundle v;
  OTA_TRY_ASSIGN(v.reader, bundle::BundleReader::open(in));
  const std::uint64_t root_before = trust.root().version;
  auto m = v.reader->verify(trust, options);
  // A root update the bundle carried is kept before anything else happens,
  // even when the rest of the verification failed (it chained on its own).
  if (trust.root().version > root_before) OTA_TRY(persist_trust(state, trust));
  if (!m) return fail(m.error());
  v.manifest = std::move(*m);
  v.manifest_hash = content_hash(v.reader->manifest_bytes());
  return v;
}

Status unlock_bundle(VerifiedBundle& v, const std::function<Result<encryption::SecretKey>()>& key_source) {
  if (!v.manifest.encryption) return ok();
  if (!key_source)
    return fail(ErrorCode::kDecryptionKey,
                "the bundle is encrypted and no decryption key is configured (decryption.key or decryption.command)");
  auto key = key_source();
  if (!key) {
    if (key.error().code == ErrorCode::kDecryptionKey) return fail(key.error());
    return fail(ErrorCode::kDecryptionKey, "the decryption key: " + key.error().message);
  }
  OTA_TRY_ASSIGN(auto content, encryption::open(*v.manifest.encryption, *key));
  v.reader = encryption::decrypting(std::move(v.reader), v.manifest, std::move(content));
  return ok();
}

Result<PayloadChoice> choose_payload(const ChooseInput& in) {
  const auto& payloads = in.manifest->payloads;
  if (in.resuming) {
    for (std::size_t i = 0; i < payloads.size(); ++i)
      if (payloads[i].name == *in.resuming) return PayloadChoice{i, false};
    return fail(ErrorCode::kNoPayload, "the payload in progress (" + *in.resuming + ") is not in the bundle");
  }
  auto fits = [&](const manifest::Payload& p) {
    return p.kind == manifest::PayloadKind::kDelta && p.base_size <= in.active_bank_size &&
           !(in.excluded && p.name == *in.excluded);
  };
  const std::optional<BankInfo>& info = *in.active;
  // One delta that could apply and no cached hash of the active bank for its
  // size: take it, and let the patcher hash the active bank while it writes
  // the inactive one. A wrong base fails at the end with kOldMismatch before
  // anything is marked bootable.
  // Not with a chunks payload: a wrong guess would fetch the whole delta
  // before reuse, and reuse reads the active bank anyway.
  const bool has_chunks = std::any_of(payloads.begin(), payloads.end(),
                                      [](const auto& p) { return p.kind == manifest::PayloadKind::kChunks; });
  if (in.speculate && !has_chunks) {
    std::optional<std::size_t> only;
    std::size_t count = 0;
    for (std::size_t i = 0; i < payloads.size(); ++i)
      if (fits(payloads[i])) ++count, only = i;
    if (count == 1 && !(info && info->size == payloads[*only].base_size)) return PayloadChoice{*only, true};
  }
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    if (!fits(payloads[i])) continue;
    auto h = in.active_hash(payloads[i].base_size);
    if (!h) return fail(h.error().with_context("hashing the active bank"));
    if (*h == payloads[i].base_hash) return PayloadChoice{i, false};
  }
  std::optional<std::size_t> full, chunked;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i].kind == manifest::PayloadKind::kFull && !full) full = i;
    if (payloads[i].kind == manifest::PayloadKind::kChunks && !chunked) chunked = i;
  }
  // Reuse when it fetches less than the full image. Its index is read first,
  // so only a chunks payload before the full one in the stream is weighed.
  if (chunked && !full) return PayloadChoice{*chunked, false};
  if (chunked && *chunked < *full && in.reuse_cost) {
    auto cost = in.reuse_cost(*chunked);
    if (!cost) return fail(cost.error().with_context("planning reuse"));
    if (*cost < payloads[*full].size) return PayloadChoice{*chunked, false};
  }
  if (full) return PayloadChoice{*full, false};
  return fail(ErrorCode::kNoPayload, "no payload applies: no full image and no delta from the active bank's content");
}

Status stream_payload(bundle::BundleReader& reader, const manifest::Manifest& m, std::size_t index,
                      delta::PayloadSink& sink,
                      const std::function<void(std::uint64_t, std::uint64_t)>& progress,
                      const std::function<bool()>& cancelled) {
  const manifest::Payload* p = nullptr;
  while (!p) {
    OTA_TRY_ASSIGN(auto idx, reader.next_payload());
    if (!idx) return fail(ErrorCode::kMalformed, "bundle ended before payload " + std::to_string(index));
    if (*idx == index) p = &m.payloads.at(index);
  }
  while (true) {
    const std::uint64_t at = reader.payload_position(), want = sink.next_offset();
    const std::uint64_t size = manifest::readable_size(m, *p);
    if (want > size) return fail(ErrorCode::kUsage, "resume point beyond the payload");
    if (want > at) {
      OTA_TRY(reader.skip_to(want));
      OTA_TRY(sink.skip(want - at));
    }
    OTA_TRY_ASSIGN(auto chunk, reader.read_view());
    if (chunk.empty()) return ok();
    OTA_TRY(sink.feed(chunk));
    if (progress) progress(reader.payload_position(), size);
    if (cancelled && cancelled()) return fail(ErrorCode::kCancelled, "install cancelled");
  }
}

Status check_target(const storage::BlockStore& bank, std::uint64_t size, const Digest& hash) {
  Hasher hasher;
  OTA_TRY(hash_range(bank, 0, size, hasher));
  if (hasher.finish() != hash)
    return fail(ErrorCode::kPayloadMismatch, "the bank no longer holds the installed image");
  return ok();
}

// ---- install: the steps in order ----

Result<InstallReport> Agent::install_once(Reader& bundle_in, bool speculate) {
  InstallReport report;
  CountingReader in(bundle_in);
  auto loaded = state();
  if (!loaded) return fail(loaded.error().with_context("agent state"));
  State s = std::move(*loaded);
  boot::BootControl bc(*d_.env);
  OTA_TRY_ASSIGN(const boot::Slot active, ready_to_install(s, bc));
  const boot::Slot target = boot::other(active);
  storage::BlockStore& target_bank = *d_.banks[index_of(target)];

  // 1. Signatures, then policy: nothing of a payload is read before this.
  bundle::VerifyOptions vo;
  vo.policy.now = d_.now();
  vo.policy.hardware = d_.hardware_id;
  vo.policy.security_floor = s.security_floor;
  if (const auto& a = s.banks[index_of(active)]; a && !a->version.empty()) vo.policy.installed_version = a->version;
  OTA_TRY_ASSIGN(auto v, verify_bundle(in, *d_.trust, *d_.state, vo));
  const manifest::Manifest& m = v.manifest;
  if (d_.accept) OTA_TRY(d_.accept(m, v.manifest_hash));
  OTA_TRY(unlock_bundle(v, d_.decryption_key));
  if (m.target_size > target_bank.size())
    return fail(ErrorCode::kLimitExceeded, "the image (" + std::to_string(m.target_size) +
                                               " bytes) does not fit bank " + boot::slot_name(target));

  // 2. The payload.
  const bool resuming = s.install.stage != Stage::kNone && s.install.manifest_hash == v.manifest_hash &&
                        s.install.target == target;
  if (resuming) OTA_TRY(advance(s.install.stage, InstallEvent::kResume));
  ChooseInput ci;
  ci.manifest = &m;
  ci.resuming = resuming ? &s.install.payload : nullptr;
  ci.active = &s.banks[index_of(active)];
  ci.active_bank_size = d_.banks[index_of(active)]->size();
  ci.speculate = speculate;
  if (failed_delta_ && failed_delta_->first == v.manifest_hash) ci.excluded = &failed_delta_->second;
  ci.active_hash = [&](std::uint64_t size) { return bank_hash(active, size, s); };
  reuse_.reset();
  ci.reuse_cost = [&](std::size_t index) -> Result<std::uint64_t> {
    OTA_TRY(prepare_reuse(s, v, index, active, 0));
    return reuse_->plan.fetch_bytes;
  };
  OTA_TRY_ASSIGN(const PayloadChoice choice, choose_payload(ci));
  const manifest::Payload& p = m.payloads[choice.index];
  report.payload = p.name;
  report.delta = p.kind == manifest::PayloadKind::kDelta;
  report.reuse = p.kind == manifest::PayloadKind::kChunks;
  report.resumed = resuming && s.install.stage == Stage::kWriting && s.install.resume.has_value();

  // 3. The install record, durable before the first bank write.
  if (!resuming) OTA_TRY(persist_intent(s, m, v.manifest_hash, p, target));

  if (s.install.stage == Stage::kWriting) {
    // 4. Stream: chunk check -> patcher or full-image decoder -> bank, hashed as
    // written; or reuse: local chunks copied, the others fetched, each checked.
    if (report.reuse)
      OTA_TRY(write_reuse(s, v, choice.index, active, report));
    else
      OTA_TRY(write_payload(s, v, choice.index, active, report));
  } else {
    // 5. Written before a power cut: check the bank still holds the image.
    if (Status held = check_target(target_bank, s.install.target_size, s.install.target_hash); !held) {
      if (held.error().code != ErrorCode::kPayloadMismatch) return fail(held.error());
      OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
      s.install = InstallRecord{};
      OTA_TRY(save(s));
      return fail(ErrorCode::kPayloadMismatch, "bank " + std::string(boot::slot_name(target)) +
                                                   " no longer holds the installed image; install again");
    }
  }
  report.bytes_read = in.count;

  // 5b. The running image, recorded before the trial so that the install can
  // be reverted (revert()): a delta's base (verified), or an image an earlier
  // install committed (versioned); else the whole running bank is hashed now
  // (it is never written, so its hash now is its hash at install). A hash
  // cached for another delta's base size covers only a prefix: not a record.
  if (const auto& running = s.banks[index_of(active)];
      d_.record_previous && !report.delta && (!running || running->version.empty())) {
    const std::uint64_t whole = d_.banks[index_of(active)]->size();
    if (!running || running->size != whole) {
      OTA_TRY_ASSIGN(auto h, bank_hash(active, whole, s));
      (void)h;  // recorded in s
      OTA_TRY(save(s));
    }
  }

  // 6. Only now: boot the target once, then reboot into it; unless the
  // caller holds the trial (a rollout policy's download-early: written and
  // verified now, switched in a window): the record stays written, and the
  // same install later resumes at step 5, re-hashing the bank.
  if (d_.hold_trial && d_.hold_trial()) {
    report.held = true;
    return report;
  }
  OTA_TRY(begin_trial(s, bc));
  return report;
}

Result<boot::Slot> Agent::ready_to_install(const State& s, boot::BootControl& bc) const {
  auto bs = bc.state();
  if (!bs) return fail(bs.error().with_context("boot environment"));
  if (s.install.stage == Stage::kTrial || bs->upgrade_available)
    return fail(ErrorCode::kTrialPending, "a trial boot is pending: run boot-check, commit or rollback first");
  // The bank that runs comes from the boot, not from the environment.
  OTA_TRY_ASSIGN(auto running, running_slot());
  if (running != bs->boot_slot)
    return fail(ErrorCode::kRebootPending, std::string("the device runs slot ") + boot::slot_name(running) +
                                               " but boots slot " + boot::slot_name(bs->boot_slot) + " next: reboot first");
  return running;
}

Status Agent::persist_intent(State& s, const manifest::Manifest& m, const Digest& manifest_hash,
                             const manifest::Payload& p, boot::Slot target) {
  // Another bundle's install in progress is abandoned (never its trial: refused before).
  if (s.install.stage != Stage::kNone) OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
  s.install = InstallRecord{Stage::kNone, manifest_hash, target, p.name, m.version, m.security_version,
                            m.target_size, m.target_hash, std::nullopt};
  OTA_TRY(advance(s.install.stage, InstallEvent::kBegin));
  s.banks[index_of(target)].reset();
  return save(s);
}

Status Agent::write_payload(State& s, VerifiedBundle& v, std::size_t index, boot::Slot active, InstallReport& report) {
  const manifest::Manifest& m = v.manifest;
  const manifest::Payload& p = m.payloads[index];
  storage::BlockStore& target_bank = *d_.banks[index_of(s.install.target)];
  const storage::BlockStore& active_bank = *d_.banks[index_of(active)];  // only ever read
  const std::uint64_t start = s.install.resume ? s.install.resume->new_offset : 0;
  storage::BankWriter bank_out(target_bank, start);
  const SliceSource written(target_bank, 0, m.target_size);
  delta::SinkOptions so;
  so.resume = s.install.resume;
  so.written_prefix = &written;
  // A checkpoint: the bank synced up to it, then the state.
  so.on_frame = [&](const delta::ResumePoint& rp) -> Status {
    OTA_TRY(advance(s.install.stage, InstallEvent::kCheckpoint));
    OTA_TRY(bank_out.sync());
    s.install.resume = rp;
    return save(s);
  };
  Status done = ok();
  if (report.delta) {
    const SliceSource old_image(active_bank, 0, p.base_size);
    delta::PatchOptions po;
    static_cast<delta::SinkOptions&>(po) = so;
    const auto& info = s.banks[index_of(active)];
    const bool base_known = info && info->size == p.base_size && info->hash == p.base_hash;
    // The one base check: the hash cached in the state, else hashed while
    // patching (the inactive bank is not bootable until the end).
    po.base_check = base_known ? delta::BaseCheck::kKnownHash : delta::BaseCheck::kHashWhilePatching;
    po.known_old_hash = p.base_hash;
    po.max_window_log = std::max<std::uint8_t>(p.window_log, 10);
    OTA_TRY_ASSIGN(auto patcher, delta::Patcher::create(old_image, bank_out, std::move(po)));
    OTA_TRY(stream_payload(*v.reader, m, index, *patcher, d_.progress, d_.cancelled));
    done = patcher->finish();  // NEW's hash, the prefix read back included
    if (!done && done.error().code == ErrorCode::kOldMismatch) {
      // Not the delta's base: abandon it, cache the active bank's hash so
      // the next install picks another payload.
      OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
      s.install = InstallRecord{};
      OTA_TRY_ASSIGN(auto h, bank_hash(active, p.base_size, s));
      (void)h;  // cached in s
      OTA_TRY(save(s));
      return fail(ErrorCode::kOldMismatch,
                  "the active bank is not the base of " + p.name + "; install again to use another payload");
    }
    if (!done && done.error().code == ErrorCode::kNewMismatch && !report.resumed) {
      // Written from its start and still not the target: not a damaged
      // checkpoint but the delta itself on this device. Abandoned and left
      // out, so that the next choice is another payload.
      failed_delta_.emplace(v.manifest_hash, p.name);
      OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
      s.install = InstallRecord{};
      OTA_TRY(save(s));
      return fail(done.error().with_context("the delta " + p.name + " does not make the target on this device; "
                                             "install again to use another payload"));
    }
    if (done) {
      const auto* h = patcher->header();
      if (h->new_size != m.target_size || h->new_hash != m.target_hash)
        return fail(ErrorCode::kPayloadMismatch, "the delta does not produce the manifest's target image");
      if (!base_known) {  // verified by the patcher: remember it
        auto& a = s.banks[index_of(active)];
        a = BankInfo{a && a->size == p.base_size ? a->version : "", p.base_size, p.base_hash};
      }
    }
  } else {
    delta::FullImageOptions fo;
    static_cast<delta::SinkOptions&>(fo) = so;
    fo.name = "payload " + p.name;
    fo.zstd = p.compression != manifest::Compression::kNone;
    fo.window_log = p.window_log;
    fo.target_size = m.target_size;
    fo.target_hash = m.target_hash;
    OTA_TRY_ASSIGN(auto full, delta::make_full_image_decoder(bank_out, std::move(fo)));
    OTA_TRY(stream_payload(*v.reader, m, index, *full, d_.progress, d_.cancelled));
    done = full->finish();
  }
  if (!done) {
    const bool prefix_suspect = report.delta ? done.error().code == ErrorCode::kNewMismatch : true;
    if (prefix_suspect && s.install.resume) {  // the checkpointed prefix may be what is wrong: start over next time
      s.install.resume.reset();
      OTA_TRY(save(s));
    }
    return done;
  }
  report.bytes_written = bank_out.position() - start;
  OTA_TRY(bank_out.sync());
  OTA_TRY(target_bank.sync());
  OTA_TRY(advance(s.install.stage, InstallEvent::kVerified));
  s.install.resume.reset();
  return save(s);
}

Status Agent::prepare_reuse(State& s, VerifiedBundle& v, std::size_t index, boot::Slot active, std::size_t first_chunk) {
  if (reuse_ && reuse_->payload == index) return ok();
  const manifest::Manifest& m = v.manifest;
  const manifest::Payload& p = m.payloads.at(index);
  while (true) {
    OTA_TRY_ASSIGN(auto idx, v.reader->next_payload());
    if (!idx) return fail(ErrorCode::kMalformed, "bundle ended before payload " + p.name);
    if (*idx == index) break;
  }
  auto st = std::make_shared<ReuseState>();
  st->payload = index;
  OTA_TRY_ASSIGN(st->index, reuse::read_index(*v.reader, p, m));
  // The active bank's image (its whole size when the image size is unknown),
  // and all of the inactive bank: an older image, or an interrupted attempt.
  const storage::BlockStore& active_bank = *d_.banks[index_of(active)];
  const storage::BlockStore& other_bank = *d_.banks[1 - index_of(active)];
  const auto& info = s.banks[index_of(active)];
  const std::uint64_t active_size = info && info->size <= active_bank.size() ? info->size : active_bank.size();
  OTA_TRY_ASSIGN(auto in_active, reuse::scan(active_bank, active_size, st->index.params));
  OTA_TRY_ASSIGN(auto in_other, reuse::scan(other_bank, other_bank.size(), st->index.params));
  st->plan = reuse::plan(st->index, in_active, in_other, first_chunk);
  reuse_ = std::move(st);
  return ok();
}

Status Agent::write_reuse(State& s, VerifiedBundle& v, std::size_t index, boot::Slot active, InstallReport& report) {
  const manifest::Manifest& m = v.manifest;
  const manifest::Payload& p = m.payloads[index];
  storage::BlockStore& target_bank = *d_.banks[index_of(s.install.target)];
  const storage::BlockStore& active_bank = *d_.banks[index_of(active)];  // only ever read
  const std::uint64_t start = s.install.resume ? s.install.resume->new_offset : 0;
  // After a restart the plan is made again, from the checkpoint on.
  OTA_TRY(prepare_reuse(s, v, index, active, s.install.resume ? static_cast<std::size_t>(s.install.resume->frame) : 0));
  storage::BankWriter bank_out(target_bank, start);
  reuse::WriteOptions wo;
  wo.resume = s.install.resume;
  wo.checkpoint_bytes = d_.reuse_checkpoint_bytes;
  wo.on_checkpoint = [&](const delta::ResumePoint& rp) -> Status {
    OTA_TRY(advance(s.install.stage, InstallEvent::kCheckpoint));
    OTA_TRY(bank_out.sync());
    s.install.resume = rp;
    return save(s);
  };
  wo.progress = d_.progress;
  wo.cancelled = d_.cancelled;
  OTA_TRY_ASSIGN(auto rep, reuse::write_chunks(*v.reader, p, reuse_->index, reuse_->plan, active_bank, target_bank,
                                               bank_out, wo));
  OTA_TRY(bank_out.sync());
  OTA_TRY(target_bank.sync());
  // Every chunk matched its signed hash; this covers the prefix a resumed
  // install did not write itself.
  if (Status whole = check_target(target_bank, m.target_size, m.target_hash); !whole) {
    if (s.install.resume) {  // the checkpointed prefix is what is wrong: start over next time
      s.install.resume.reset();
      OTA_TRY(save(s));
    }
    return fail(ErrorCode::kPayloadMismatch, "payload " + p.name + ": the written image does not match the target hash");
  }
  report.bytes_written = bank_out.position() - start;
  report.bytes_reused = rep.local_bytes;
  OTA_TRY(advance(s.install.stage, InstallEvent::kVerified));
  s.install.resume.reset();
  return save(s);
}

Status Agent::begin_trial(State& s, boot::BootControl& bc) {
  OTA_TRY(advance(s.install.stage, InstallEvent::kTrialBegun));
  OTA_TRY(bc.begin_trial(s.install.target));
  OTA_TRY(save(s));
  if (d_.reboot) OTA_TRY(d_.reboot());
  return ok();
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
  s.last_result = (s.install.payload == kRevertPayload ? "reverted to " : "installed ") + version;
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

Status Agent::revert(const std::string& version) {
  OTA_TRY_ASSIGN(auto loaded, state());
  State s = std::move(loaded);
  boot::BootControl bc(*d_.env);
  if (s.install.stage == Stage::kWritten && s.install.payload == kRevertPayload) {
    // Cut after the record, before the trial: the bank is checked again.
    if (Status held = check_target(*d_.banks[index_of(s.install.target)], s.install.target_size, s.install.target_hash);
        !held) {
      if (held.error().code != ErrorCode::kPayloadMismatch) return fail(held.error());
      OTA_TRY(advance(s.install.stage, InstallEvent::kAbandon));
      s.install = InstallRecord{};
      OTA_TRY(save(s));
      return fail(ErrorCode::kPayloadMismatch, "the previous image no longer verifies; the running image stays");
    }
    return begin_trial(s, bc);
  }
  OTA_TRY_ASSIGN(const boot::Slot running, ready_to_install(s, bc));
  if (s.install.stage != Stage::kNone)
    return fail(ErrorCode::kTrialPending, "an install is in progress (" + std::string(stage_name(s.install.stage)) + ")");
  const auto& now_running = s.banks[index_of(running)];
  if (!now_running || now_running->version != version)
    return fail(ErrorCode::kUsage, "the device does not run version " + version + " (it runs " +
                                       (now_running && !now_running->version.empty() ? now_running->version : "an unknown image") +
                                       "): nothing to revert");
  const boot::Slot previous = boot::other(running);
  const auto prev = s.banks[index_of(previous)];
  if (!prev || prev->size == 0)
    return fail(ErrorCode::kUsage, "no previous image was recorded when " + version + " was installed");
  if (prev->size > d_.banks[index_of(previous)]->size() ||
      !check_target(*d_.banks[index_of(previous)], prev->size, prev->hash))
    return fail(ErrorCode::kPayloadMismatch, std::string("bank ") + boot::slot_name(previous) + " no longer holds " +
                                                 (prev->version.empty() ? "the previous image" : prev->version) +
                                                 " (its hash differs from the one recorded at install); the running image stays");
  // The previous image is written and verified: the install record of a
  // revert starts at written, and takes the install's trial from there. No
  // security version: the floor is not lowered.
  s.install = InstallRecord{Stage::kNone, Digest{}, previous, kRevertPayload, prev->version, 0,
                            prev->size, prev->hash, std::nullopt};
  OTA_TRY(advance(s.install.stage, InstallEvent::kRevert));
  OTA_TRY(save(s));
  return begin_trial(s, bc);
}

namespace {

// Failures after which the spool is kept for the next attempt: the transfer
// stopped (network, cancel, a cut-off stream), not the content.
bool keeps_spool(ErrorCode code) {
  switch (code) {
    case ErrorCode::kFetch:
    case ErrorCode::kCancelled:
    case ErrorCode::kIo:
    case ErrorCode::kMalformed:  // a stream cut short reads as a truncated bundle
    case ErrorCode::kPatchTruncated:
    case ErrorCode::kTimedOut:
      return true;
    default:
      return false;
  }
}

bool is_http(const std::string& source) { return source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0; }

// A reader install() may own that reads through one it does not.
class Forward final : public Reader {
 public:
  explicit Forward(Reader& r) : r_(r) {}
  Result<std::size_t> read(MutableByteSpan out) override { return r_.read(out); }
  Result<std::uint64_t> skip(std::uint64_t n) override { return r_.skip(n); }
  void hint(std::uint64_t upcoming) override { r_.hint(upcoming); }

 private:
  Reader& r_;
};

void add(fetch::Stats& sum, const fetch::Stats& s) {
  sum.bytes_received += s.bytes_received;
  sum.requests += s.requests;
  sum.retries += s.retries;
  sum.bytes_copied += s.bytes_copied;
  sum.bytes_from_spool += s.bytes_from_spool;
}

}  // namespace

Result<InstallReport> install_from_source(Agent& agent, fetch::SourceReader& first, const std::string& source,
                                          const fetch::Options& options, fetch::Stats* stats, const OpenSource& open) {
  // The download spool (ota/device/spool.hpp) for an http(s) source; a spool
  // that cannot be opened only costs its savings.
  const bool spooling = !options.spool_path.empty() && is_http(source);
  std::unique_ptr<storage::BlockStore> spool_store;
  std::unique_ptr<fetch::Spool> spool;
  if (spooling) {
    auto st = fetch::open_spool_file(options.spool_path, options.spool_bytes);
    if (st) {
      auto sp = fetch::Spool::open(**st, source);
      if (sp) {
        spool_store = std::move(*st);
        spool = std::move(*sp);
      }
    }
  }
  // Readers opened here stay owned here (install() drops its reader) so
  // their transfer can be counted afterwards; install() gets forwarding readers.
  std::vector<std::unique_ptr<fetch::SourceReader>> opened;
  std::vector<std::unique_ptr<fetch::SpooledReader>> spooled;
  auto through_spool = [&](fetch::SourceReader& r) -> fetch::SourceReader& {
    if (!spool) return r;
    spooled.push_back(std::make_unique<fetch::SpooledReader>(r, *spool));
    return *spooled.back();
  };
  auto reopen = [&]() -> Result<std::unique_ptr<Reader>> {
    OTA_TRY_ASSIGN(auto again, open ? open(source, options) : fetch::open(source, options));
    opened.push_back(std::move(again));
    return std::unique_ptr<Reader>(std::make_unique<Forward>(through_spool(*opened.back())));
  };
  fetch::SourceReader& in = through_spool(first);
  auto rep = agent.install(in, reopen);
  std::uint64_t from_spool = 0;
  for (const auto& r : spooled) from_spool += r->stats().bytes_from_spool;
  if (spool && !rep && from_spool > 0 && !keeps_spool(rep.error().code)) {
    // The spool's bytes may be what failed (the bundle at this URL changed):
    // once more, from the source alone.
    spooled.clear();
    spool.reset();
    spool_store.reset();
    (void)fetch::remove_spool_file(options.spool_path);
    auto again = reopen();
    if (again) rep = agent.install(**again, reopen);
  }
  if (spooling && (rep || !keeps_spool(rep.error().code))) {
    spooled.clear();
    spool.reset();
    spool_store.reset();
    (void)fetch::remove_spool_file(options.spool_path);  // done with: a stale spool only costs its space
  } else if (spool) {
    (void)spool->sync();
  }
  if (stats) {
    *stats = first.stats();
    for (const auto& r : opened) add(*stats, r->stats());
    stats->bytes_from_spool = from_spool;
  }
  return rep;
}

}  // namespace ota::agent
