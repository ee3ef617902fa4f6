// Banks and the agent's state store (the power-loss simulator under both is
// in ota/testing/power_cut.hpp, a test-support library).
//
// Contract:
// - A BlockStore is a fixed-size bank (a partition, or a file in tests).
//   write_at() may be cached; only sync() makes writes durable. A Writer
//   adapter (BankWriter) writes sequentially from an offset, for the patcher.
// - StateStore keeps small named records (the agent's state, the cached hash
//   of the active bank). replace() is atomic and durable: on a file system it
//   writes a temporary file, fsyncs it, renames it over the record and fsyncs
//   the directory. A reader sees the old or the new record, never a mix.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::storage {

// A bank is a Source (its whole size; SliceSource gives the image at its
// front), so the patcher reads OLD from it and hash_range() hashes it.
class BlockStore : public Source {
 public:
  // Fixed for the life of the store.
  std::uint64_t size() const override = 0;
  // Fills out exactly from offset (seeing writes not yet synced); a range
  // past size() is kIo, as for any Source.
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override = 0;
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

// Writes sequentially into a bank from an offset; sync() syncs the bank.
// A failed write leaves position() unchanged; an empty write does nothing.
class BankWriter final : public Writer {
 public:
  BankWriter(BlockStore& bank, std::uint64_t offset) : bank_(bank), pos_(offset), flushed_(offset) {}
  // Bounds are checked at once. Pieces of 32 KiB or more (the payload
  // sinks' output buffers) are written as they are; smaller ones are
  // collected into writes of up to 64 KiB.
  Status write(ByteSpan data) override;
  // Writes out what is collected (not durable until sync()).
  Status flush();
  Status sync() override;
  std::uint64_t position() const override { return pos_; }

 private:
  static constexpr std::size_t kBuffer = 64 * 1024;
  static constexpr std::size_t kDirect = 32 * 1024;
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

}  // namespace ota::storage
