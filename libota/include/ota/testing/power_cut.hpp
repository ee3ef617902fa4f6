// Test support (not part of libota, not installed): a power-loss simulator
// under the device's storage interfaces (ota/device/storage.hpp).
//
// Contract:
// - PowerCut counts every write (bank writes, state replaces, and, through
//   the same counter, environment stores) and "cuts power" at the N-th one:
//   that write and every later one fail with kIo ("power cut"). Afterwards,
//   survivors() of a SimulatedBank gives what survives: the synced data, plus
//   (depending on the mode) none, a seeded random subset, or all but a torn
//   last sector of the unsynced writes; records() of a SimulatedStateStore
//   is already durable. A test then starts a fresh agent on the survivors,
//   as after a real reboot.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/device/storage.hpp"

namespace ota::storage {

// ---- power-loss simulation ----

// What SimulatedBank::survivors() keeps of the unsynced writes (a write that
// failed at the cut was never recorded, so it is not among them).
enum class LossMode {
  // Every unsynced write is lost.
  kDropUnsynced,
  // Each unsynced write survives, whole, with probability 1/2 (one draw of
  // rng() per write, in write order); the survivors are applied in order.
  kRandomSubset,
  // Every unsynced write but the last survives. The last keeps only its
  // bytes before a 512-byte-aligned device offset strictly inside it, one
  // such boundary drawn with rng(); with none inside it, it is lost.
  kTornSector,
};

class PowerCut {
 public:
  // cut_at: the 1-based index of the write that fails first (0: never).
  explicit PowerCut(std::uint64_t cut_at = 0, LossMode mode = LossMode::kDropUnsynced, std::uint64_t seed = 1)
      : cut_at_(cut_at), mode_(mode), rng_(seed) {}
  // Counts one write; from the cut_at-th on, kIo "power cut at write <cut_at>".
  Status on_write();
  // True from the cut_at-th write on.
  bool cut() const { return cut_; }
  // Writes counted so far, the failed ones included (a run with cut_at = 0
  // tells how many cut points there are to enumerate).
  std::uint64_t writes() const { return writes_; }
  LossMode mode() const { return mode_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::uint64_t cut_at_;
  LossMode mode_;
  std::mt19937_64 rng_;
  std::uint64_t writes_ = 0;
  bool cut_ = false;
};

// A bank in memory whose writes stay volatile until sync(), under a PowerCut.
// write_at() checks the range, then counts one write (an out-of-range write
// is not counted); a write that fails at the cut records nothing. Reads see
// the durable bytes overlaid with the unsynced writes in order, like a page
// cache. sync() is not counted, but fails with kIo once the power is cut.
class SimulatedBank final : public BlockStore {
 public:
  SimulatedBank(Bytes durable, PowerCut& power) : durable_(std::move(durable)), power_(power) {}
  std::uint64_t size() const override { return durable_.size(); }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override;
  Status write_at(std::uint64_t offset, ByteSpan data) override;
  Status sync() override;
  // The bank's bytes after losing power now: the durable bytes plus what the
  // PowerCut's mode keeps of the unsynced writes (everything, once all is
  // synced). Changes nothing but the state of the PowerCut's rng().
  Bytes survivors();

 private:
  struct Pending {
    std::uint64_t offset;
    Bytes data;
  };
  Bytes durable_;
  std::vector<Pending> pending_;
  PowerCut& power_;
};

// A state store in memory under a PowerCut: each replace() and remove() with
// a valid name is one counted write, atomic and durable once it returns (a
// cut at it leaves the old record); get() is not counted.
class SimulatedStateStore final : public StateStore {
 public:
  explicit SimulatedStateStore(PowerCut& power, std::map<std::string, Bytes> records = {})
      : records_(std::move(records)), power_(power) {}
  Result<std::optional<Bytes>> get(const std::string& name) const override;
  Status replace(const std::string& name, ByteSpan data) override;
  Status remove(const std::string& name) override;
  const std::map<std::string, Bytes>& records() const { return records_; }

 private:
  std::map<std::string, Bytes> records_;
  PowerCut& power_;
};

}  // namespace ota::storage
