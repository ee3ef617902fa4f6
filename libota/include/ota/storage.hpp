// Banks and the agent's state store, and a power-loss simulator under both.
//
// Contract:
// - A BlockStore is a fixed-size bank (a partition, or a file in tests).
//   write_at() may be cached; only sync() makes writes durable. A Writer
//   adapter (BankWriter) writes sequentially from an offset, for the patcher.
// - StateStore keeps small named records (the agent's state, the cached hash
//   of the active bank). replace() is atomic and durable: on a file system it
//   writes a temporary file, fsyncs it, renames it over the record and fsyncs
//   the directory. A reader sees the old or the new record, never a mix.
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
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ota/error.hpp"
#include "ota/io.hpp"

namespace ota::storage {

class BlockStore {
 public:
  virtual ~BlockStore() = default;
  // Fixed for the life of the store.
  virtual std::uint64_t size() const = 0;
  // Fills out exactly from offset (seeing writes not yet synced); a range
  // past size() is kIo, as for any Source.
  virtual Status read_at(std::uint64_t offset, MutableByteSpan out) const = 0;
  // Writes all of data at offset; a range past size() is kLimitExceeded
  // (offsets in the message) and writes nothing.
  virtual Status write_at(std::uint64_t offset, ByteSpan data) = 0;
  // Makes every write so far durable.
  virtual Status sync() = 0;
};

enum class Access { kReadWrite, kReadOnly };

// A regular file or block device (pread/pwrite, fdatasync). Its size is the
// file's size (BLKGETSIZE64 for a device) at open; anything else (a
// directory, a character device, a pipe) is kUnsupported. kReadOnly opens it
// O_RDONLY (the bank the device runs from): write_at() and sync() fail with
// kUnsupported and write nothing, whatever the caller does.
Result<std::unique_ptr<BlockStore>> open_file_bank(const std::string& path, Access access = Access::kReadWrite);

// A bank as a random-access Source (the active bank as the OLD of a delta).
// The Source reads through to the bank, which must outlive it.
std::unique_ptr<Source> as_source(const BlockStore& bank);

// Writes sequentially into a bank from an offset; sync() syncs the bank.
// A failed write leaves position() unchanged; an empty write does nothing.
class BankWriter final : public Writer {
 public:
  BankWriter(BlockStore& bank, std::uint64_t offset) : bank_(bank), pos_(offset), flushed_(offset) {}
  // Bounds are checked at once; the bytes are collected into writes of up
  // to 64 KiB (a patcher emits many small pieces).
  Status write(ByteSpan data) override;
  // Writes out what is collected (not durable until sync()).
  Status flush();
  Status sync() override;
  std::uint64_t position() const override { return pos_; }

 private:
  static constexpr std::size_t kBuffer = 64 * 1024;
  BlockStore& bank_;
  std::uint64_t pos_;      // end of what was accepted
  std::uint64_t flushed_;  // end of what reached the bank
  Bytes buf_;
};

// Record names are 1 to 64 of [A-Za-z0-9._-], not "." or "..", and not
// ending in ".tmp." plus 8 lowercase hex digits (reserved for temporary
// files); any other name is kUsage in every call, so nothing escapes the
// directory.
class StateStore {
 public:
  virtual ~StateStore() = default;
  // nullopt when the record does not exist.
  virtual Result<std::optional<Bytes>> get(const std::string& name) const = 0;
  // Creates or replaces the record, atomically and durably; on failure the
  // old record (or its absence) stays.
  virtual Status replace(const std::string& name, ByteSpan data) = 0;
  // Deletes the record durably; removing a missing record succeeds.
  virtual Status remove(const std::string& name) = 0;
};

// Records as files (mode 0600) in a directory. The directory is created if
// missing (mode 0700 whatever the umask; its parent must exist) and an
// existing one keeps its mode. Opening removes the temporary files of
// replaces a crash interrupted. One process owns the directory at a time.
Result<std::unique_ptr<StateStore>> open_state_dir(const std::string& dir);

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
