// The device agent's life cycle: verified streaming install into the
// inactive bank, trial boot, health check, commit or roll back; every side
// effect behind an interface (banks, state store, boot environment, clock,
// commands), so the same code runs on a device and under the power-cut
// simulator.
//
// Contract of install() (its steps in ota/device/install.hpp, in order in agent/install.cpp):
//  1. Signatures are verified against the trust root before anything else of
//     the bundle is parsed; hardware, security floor, version order and
//     expiry are checked before a payload byte is read.
//  2. The delta whose base equals the active bank's content is chosen (the
//     active bank is hashed once, and the hash cached in the state store),
//     else reuse of a chunks payload when it fetches less than the full
//     image (ota/device/reuse.hpp), else the full payload.
//  3. The install record is persisted before the first bank write. Payload
//     chunks are checked against the signed manifest before they reach the
//     decoder; the result is hashed as it is written and must equal the
//     target hash; only then is the inactive bank marked to boot once.
//  4. Installs checkpoint after every frame (patch frame of a delta, zstd
//     frame of a full image), once the bank is synced; an install
//     interrupted by a power cut resumes at the last checkpoint when
//     install() is called again with the same bundle, skipping in the
//     bundle stream what it already wrote (a file seeks, HTTP asks a Range).
//  5. The running bank is never written. Which bank runs is taken from boot
//     evidence (Device::booted_slot: the kernel command line marker the boot
//     script sets, or the simulator's record), never from the environment's
//     next-boot choice; the running bank is only read (as the delta's base),
//     and a device whose environment boots the other slot next (a rollback
//     waiting for its reboot) installs nothing (kRebootPending). Until the
//     trial is begun, the boot environment points at the running bank;
//     after, the bootloader's bootcount rules fall back to it.
//  6. A trust root update carried by the bundle is saved in the state store
//     (atomically) before anything signed under it is acted on, even when the
//     install then fails; every entry point loads it back (load_trust).
//
// Contract of revert(): see the declaration; the same trial, boot check and
// rollback as an install, so the device always boots either image verified.
//
// Contract of boot_check(): a trial is committed only when the evidence says
// the device runs the trial slot and the health check passed. Before the
// reboot into it (or when the reboot command failed) it changes nothing and
// fails with kTrialNotBooted. Every stage change goes through the life-cycle
// table (lifecycle.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/device/boot.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/encryption.hpp"
#include "ota/delta/delta.hpp"
#include "ota/core/error.hpp"
#include "ota/device/fetch.hpp"
#include "ota/device/install.hpp"
#include "ota/device/lifecycle.hpp"
#include "ota/device/reuse.hpp"
#include "ota/device/storage.hpp"
#include "ota/release/trust.hpp"

namespace ota::agent {

// What the agent knows about one bank's content.
struct BankInfo {
  std::string version;  // empty when unknown (factory image)
  std::uint64_t size = 0;
  Digest hash{};
};

struct InstallRecord {
  Stage stage = Stage::kNone;
  Digest manifest_hash{};  // which bundle (content hash of its manifest bytes)
  boot::Slot target = boot::Slot::kB;
  std::string payload;     // payload name
  std::string version;
  std::uint64_t security_version = 0;
  std::uint64_t target_size = 0;
  Digest target_hash{};
  std::optional<delta::ResumePoint> resume;  // last synced checkpoint (delta frame, zstd frame, or chunk)
};

// The payload name of a revert's install record (Agent::revert): no bundle
// payload can be named so ([A-Za-z0-9._+-]), and the record keeps the
// state's format, so an agent that predates revert settles its trial.
inline constexpr char kRevertPayload[] = "(revert)";

// How the last install ended (what a daemon reports; last_result says why).
enum class Outcome { kNone, kInstalled, kRolledBack };

struct State {
  std::optional<BankInfo> banks[2];
  std::uint64_t security_floor = 0;
  InstallRecord install;
  std::string last_result;  // "installed 1.2.0", "rolled-back 1.2.0: health check failed", ...
  Outcome outcome = Outcome::kNone;
};

Bytes encode_state(const State& s);
Result<State> parse_state(ByteSpan bytes);

// The device's side effects.
struct Device {
  storage::BlockStore* banks[2] = {nullptr, nullptr};
  storage::StateStore* state = nullptr;
  boot::Environment* env = nullptr;
  // Which slot booted (see the contract); empty: the simulator's record in env.
  boot::BootedSlot booted_slot;
  trust::TrustStore* trust = nullptr;
  std::string hardware_id;
  std::function<trust::Time()> now;
  // Runs the health check: ok, or an error naming why it failed (timeout, exit code).
  std::function<Status()> health_check;
  // Asks for a reboot (on a device it does not return; in tests it returns).
  std::function<Status()> reboot;
  // Install progress: payload bytes consumed of the payload's size.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
  // Optional: called once the signatures and the policy checks passed,
  // before any payload byte is read; an error stops the install (a campaign
  // checks that the bundle is the one it names).
  std::function<Status(const manifest::Manifest&, const Digest& manifest_hash)> accept;
  // This device's X25519 key for encrypted bundles (from a file or a key
  // command, a TPM or secure element); asked only for an encrypted bundle,
  // after verification. Empty: none configured (an encrypted bundle then
  // fails with kDecryptionKey).
  std::function<Result<encryption::SecretKey>()> decryption_key;
  // Optional: polled between payload reads; true stops the install with
  // kCancelled before anything is marked bootable.
  std::function<bool()> cancelled;
  // A reuse install (a chunks payload) checkpoints at the first chunk
  // boundary after every this many image bytes.
  std::uint64_t reuse_checkpoint_bytes = std::uint64_t{16} << 20;
  // Hash the running bank before the trial when its content is not known
  // yet (a full or reuse install), so the install can be reverted
  // (revert()); a delta's base is known without it.
  bool record_previous = false;
  // Optional: asked once the image is written and verified, before the
  // trial begins; true leaves the install written (InstallReport::held),
  // to be resumed by the same install later.
  std::function<bool()> hold_trial;
};

struct InstallReport {
  std::string payload;       // chosen payload name
  bool delta = false;
  bool resumed = false;
  std::uint64_t bytes_read = 0;     // bundle bytes consumed
  std::uint64_t bytes_written = 0;  // bank bytes written in this run
  bool reuse = false;               // a chunks payload: local chunks copied, the rest fetched
  std::uint64_t bytes_reused = 0;   // reuse: image bytes copied from the banks in this run
  bool held = false;                // written and verified, the trial not begun (Device::hold_trial)
};

class Agent {
 public:
  explicit Agent(Device d) : d_(std::move(d)) {}

  // Installs the bundle read from `bundle` (see the contract above). With
  // `reopen` (the same bundle from its start), a device whose active bank's
  // hash is not cached yet takes the only delta that could apply at once and
  // checks its base while patching, falling back through reopen() if the
  // base was wrong; without it, the active bank is hashed first. A delta
  // that, written from its start, does not make the manifest's image
  // (kNewMismatch: a device whose compression library re-encodes a format
  // version 6 stream differently) is abandoned and left out from then on by
  // this Agent for that manifest: through reopen() the same call installs
  // another payload (the full image); without it, the next install does.
  Result<InstallReport> install(Reader& bundle,
                                const std::function<Result<std::unique_ptr<Reader>>()>& reopen = {});
  // Run on every boot: commits a trial that booted and passed the health
  // check, otherwise rolls back; no-op without a trial.
  Status boot_check();
  Status commit();
  Status rollback(const std::string& reason);
  // Revert on abort: the device runs `version` (the image a campaign
  // installed) and switches back to the image it ran before, as a trial
  // (then reboot; boot_check() commits it after the health check, or rolls
  // back to `version`). The previous image is the other bank's record, made
  // durable before the install's trial began (the delta's base, or the
  // running bank hashed with Device::record_previous); it must still hash to
  // it. Refused, changing nothing: no previous image recorded (kUsage), the
  // device does not run `version` (kUsage), the previous bank no longer
  // verifies (kPayloadMismatch), a trial or a reboot pending (kTrialPending,
  // kRebootPending). After a restart before the trial began (the record
  // says written, payload kRevertPayload) it resumes. The security floor
  // is not lowered.
  Status revert(const std::string& version);

  Result<State> state() const;
  // The slot the device runs, from the boot evidence.
  Result<boot::Slot> running_slot() const;

 private:
  // install() once through its steps (ota/device/install.hpp); the Agent's
  // own steps change the state record.
  Result<InstallReport> install_once(Reader& bundle, bool speculate);
  // No trial pending and the device runs the slot it boots: the active slot.
  Result<boot::Slot> ready_to_install(const State& s, boot::BootControl& bc) const;
  // 3. The install record, durable before the first bank write.
  Status persist_intent(State& s, const manifest::Manifest& m, const Digest& manifest_hash,
                        const manifest::Payload& p, boot::Slot target);
  // 4. Streams the chosen payload into the target bank through its sink,
  // checkpointing at frame boundaries; the bank synced and the stage
  // kWritten when it returns ok.
  Status write_payload(State& s, VerifiedBundle& v, std::size_t index, boot::Slot active, InstallReport& report);
  // 4 for a chunks payload (ota/device/reuse.hpp).
  Status write_reuse(State& s, VerifiedBundle& v, std::size_t index, boot::Slot active, InstallReport& report);
  // Reads the index of chunks payload `index`, scans both banks and plans,
  // once per install (reuse_ keeps it).
  Status prepare_reuse(State& s, VerifiedBundle& v, std::size_t index, boot::Slot active, std::size_t first_chunk);
  struct ReuseState;
  std::shared_ptr<ReuseState> reuse_;
  // The manifest and name of a delta that did not make its target from its
  // start (left out by choose_payload from then on).
  std::optional<std::pair<Digest, std::string>> failed_delta_;
  // 6. The target boots once; then the reboot.
  Status begin_trial(State& s, boot::BootControl& bc);
  Status save(const State& s);
  Result<Digest> bank_hash(boot::Slot slot, std::uint64_t size, State& s);
  Device d_;
};

// The state-store record that keeps the newest trust root the device accepted.
inline constexpr char kTrustRecord[] = "root.json";
// The device's trust: the root saved in `state` (kTrustRecord) or the
// provisioned anchor at anchor_path, whichever has the higher version (a
// device provisioned again with a newer anchor takes it). A saved root that
// does not parse or verify is an error, never silently replaced by the anchor.
Result<trust::TrustStore> load_trust(const storage::StateStore& state, const std::string& anchor_path);
// Saves t's root envelope as kTrustRecord when its version is newer than the
// saved one (or none is saved); atomic and durable (StateStore::replace).
Status persist_trust(storage::StateStore& state, const trust::TrustStore& t);

// Agent::install from a bundle source (a path, file://, http(s)://) already
// opened as `first` with fetch::open(source, options); the source is opened
// again when the agent rereads the bundle. `stats`, when given, receives the
// transfer summed over every opening.
// `open` opens the source again (default fetch::open).
using OpenSource = std::function<Result<std::unique_ptr<fetch::SourceReader>>(const std::string&, const fetch::Options&)>;
Result<InstallReport> install_from_source(Agent& agent, fetch::SourceReader& first, const std::string& source,
                                          const fetch::Options& options, fetch::Stats* stats = nullptr,
                                          const OpenSource& open = {});

}  // namespace ota::agent
