// Boot control: which bank boots next, trial boots, commit and roll back,
// over a bootloader environment (U-Boot through libubootenv, GRUB through
// grub-editenv; in memory for unit tests: ota/testing/memory_environment.hpp), plus a simulator of U-Boot's
// bootcount rules so that a "reboot" in a test runs the real logic.
//
// Contract (U-Boot conventions, as Mender and RAUC use them):
// - `ota_slot` ("a" or "b") names the slot the bootloader boots.
// - `upgrade_available` = "1" marks a trial: on every boot the bootloader
//   increments `bootcount`; once `bootcount` exceeds `bootlimit` it runs
//   `altbootcmd`, which here means: boot the other slot and clear the trial.
// - begin_trial(slot) writes ota_slot=slot, upgrade_available=1, bootcount=0
//   in ONE environment store (libubootenv's redundant copies make a store
//   atomic), so a power cut leaves either the old or the new settings.
// - commit() clears upgrade_available and bootcount; rollback() points
//   ota_slot back at the other slot and clears the trial; each is one store.
// - Missing variables read as: ota_slot=a, upgrade_available=0, bootcount=0,
//   bootlimit=3. Malformed values are kMalformed, never guessed. Accepted:
//   ota_slot "a" or "b"; upgrade_available "0" or "1"; bootlimit a decimal
//   1..1000 (U-Boot reads 0 as "no limit", a trial that can never fall back,
//   so 0 is refused); bootcount a decimal 0..1001 (1001 is what a boot that
//   exceeds the largest limit stores). Digits only: no sign, space or "0x".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ota/core/error.hpp"

namespace ota::boot {

enum class Slot : std::uint8_t { kA = 0, kB = 1 };
inline Slot other(Slot s) { return s == Slot::kA ? Slot::kB : Slot::kA; }
inline const char* slot_name(Slot s) { return s == Slot::kA ? "a" : "b"; }

using Vars = std::map<std::string, std::string>;

// A bootloader's key-value environment.
class Environment {
 public:
  virtual ~Environment() = default;
  virtual Result<Vars> read() = 0;
  // Applies all changes in one store (nullopt deletes a variable); an empty
  // change set stores nothing. A name that is empty or holds '=', NUL or a
  // newline, or a value that holds NUL, is kUsage and nothing is stored.
  virtual Status write(const std::map<std::string, std::optional<std::string>>& changes) = 0;
};

// U-Boot environment through libubootenv, configured by an explicit
// fw_env.config-style file (never /etc/fw_env.config implicitly). Two lines
// in the file make a redundant environment. Each read() and write() opens and
// closes the environment (holding libubootenv's lock only meanwhile); open
// fails with kIo when neither copy has a valid CRC.
Result<std::unique_ptr<Environment>> open_uboot_env(const std::string& config_path);
// GRUB environment block through grub-editenv (searched in PATH unless it
// holds a '/'), created with `grub-editenv FILE create` when missing. Values
// with a newline are kUsage (`grub-editenv list` could not give them back).
Result<std::unique_ptr<Environment>> open_grub_env(const std::string& env_file,
                                                   const std::string& grub_editenv = "grub-editenv");
struct BootState {
  Slot boot_slot = Slot::kA;       // what the bootloader boots next
  bool upgrade_available = false;  // a trial is pending
  std::uint32_t bootcount = 0;
  std::uint32_t bootlimit = 3;
};

class BootControl {
 public:
  explicit BootControl(Environment& env) : env_(env) {}
  Result<BootState> state();
  Status begin_trial(Slot target);
  Status commit();
  // Reads ota_slot, then points it at the other slot; every call switches.
  Status rollback();

 private:
  Environment& env_;
};

// What U-Boot does at power-on with these variables: counts a trial boot,
// falls back to the other slot once the count exceeds the limit, and returns
// the slot it boots. Precisely: with upgrade_available=1 it stores
// bootcount+1 (one write, as U-Boot saves the count before it looks at the
// limit); if that exceeds bootlimit it stores ota_slot=other,
// upgrade_available=0, bootcount=0 (a second write, "altbootcmd") and boots
// the other slot. Every store also records ota_booted=<the slot it boots>,
// the simulator's boot evidence (as the real boot scripts put ota.slot= on
// the kernel command line); a boot without a trial stores ota_booted alone,
// and only when it changes.
Result<Slot> simulate_boot(Environment& env);

// ---- Boot evidence: the slot that is running ---------------------------------
//
// The environment says what boots NEXT; only the boot itself can say what
// runs NOW. The agent commits a trial only when the evidence names the trial
// slot, and writes only the slot the evidence does not name.
using BootedSlot = std::function<Result<Slot>()>;

// The kernel command line (default /proc/cmdline, read at each call) holds
// "ota.slot=a" or "ota.slot=b" as one whitespace-separated word, put there by
// the boot script (examples/u-boot/boot.cmd, examples/grub/grub.cfg). No
// marker, or two that disagree, is kNoBootEvidence; another value kMalformed.
BootedSlot booted_from_cmdline(std::string path = "/proc/cmdline");
// Parses a command line's text as above (for tests and other sources).
Result<Slot> parse_cmdline_slot(std::string_view cmdline);

// The simulator (simulate_boot) as the bootloader: ota_booted in env. An
// environment without ota_booted was never booted by the simulator, so the
// device still runs its factory slot: ota_slot, or, while a trial the agent
// began is pending, the slot before it (other(ota_slot)); this is exact
// because only simulate_boot can move the running slot. A malformed value is
// kMalformed.
BootedSlot booted_from_simulator(Environment& env);

}  // namespace ota::boot
