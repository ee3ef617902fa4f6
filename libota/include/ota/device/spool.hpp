// A download spool: the bytes of a bundle source the agent already fetched,
// kept on the device so that an install restarted after a kill or a power cut
// fetches only what it never had (docs/design.md, "Download spool").
//
// Contract:
//  - The spool lives in a BlockStore of fixed capacity (a sparse file in the
//    state directory, default 64 MiB): a header naming the source (BLAKE2b of
//    its URL) and a random generation, then records of (source offset,
//    length, BLAKE2b over the generation, offset, length and bytes, bytes),
//    appended in order. Opening reads the records back and keeps the valid
//    ones up to the first that is torn, cut short or of another generation;
//    a store holding another source's spool, or nothing valid, starts a new
//    generation. A power cut or a kill at any write loses at most what was
//    not synced, never makes the spool lie about its bytes.
//  - Nothing in the spool is trusted beyond that: the bytes go through the
//    bundle reader's signature and chunk checks like any fetched byte, so a
//    spool that holds another file's bytes (the server replaced the bundle at
//    the same URL) costs a failed install, after which the caller discards it
//    (agent::install_from_source retries once without it).
//  - Full: appends are refused (false), what is held stays usable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/device/fetch.hpp"
#include "ota/device/storage.hpp"

namespace ota::fetch {

inline constexpr std::uint64_t kDefaultSpoolBytes = std::uint64_t{64} << 20;
inline constexpr std::uint32_t kMaxSpoolRecord = 1u << 20;  // bytes of one record

class Spool {
 public:
  // Opens the spool kept in `store` for the source named `key` (its URL).
  // Writes nothing until the first append. `sync_every`: bytes appended
  // between two syncs of the store (0: every append).
  static Result<std::unique_ptr<Spool>> open(storage::BlockStore& store, std::string_view key,
                                             std::uint64_t sync_every = std::uint64_t{1} << 20);

  // Bytes held contiguously from `offset` (0: none).
  std::uint64_t held(std::uint64_t offset) const;
  // The first held offset above `offset`, or UINT64_MAX.
  std::uint64_t next_held(std::uint64_t offset) const;
  // Fills `out` with the held bytes at `offset`; out.size() <= held(offset).
  Status read(std::uint64_t offset, MutableByteSpan out) const;
  // Keeps `data`, read from the source at `offset` (at most kMaxSpoolRecord
  // bytes, not already held); false when it does not fit.
  Result<bool> append(std::uint64_t offset, ByteSpan data);
  // Makes every append durable.
  Status sync();
  // Source bytes held, and store bytes in use (header and records).
  std::uint64_t bytes_held() const { return held_bytes_; }
  std::uint64_t store_used() const { return end_; }

 private:
  struct Entry {
    std::uint32_t length = 0;
    std::uint64_t data_at = 0;  // in the store
  };
  Spool(storage::BlockStore& store, std::uint64_t sync_every) : store_(store), sync_every_(sync_every) {}
  Status load(const Digest& key);
  Status start(const Digest& key);
  Digest record_hash(std::uint64_t offset, std::uint32_t length, ByteSpan data) const;

  storage::BlockStore& store_;
  std::uint64_t sync_every_;
  std::uint8_t generation_[16] = {};
  bool started_ = false;      // the header of this generation is written
  Digest key_{};
  std::map<std::uint64_t, Entry> entries_;  // by source offset, disjoint
  std::uint64_t end_ = 0;                   // store offset of the next record
  std::uint64_t held_bytes_ = 0, unsynced_ = 0;
};

// The spool file at `path`: created as a sparse file of `capacity` bytes
// (mode 0600) when missing, else opened at its size.
Result<std::unique_ptr<storage::BlockStore>> open_spool_file(const std::string& path,
                                                             std::uint64_t capacity = kDefaultSpoolBytes);
// Removes the spool file (missing is fine).
Status remove_spool_file(const std::string& path);

// A SourceReader over `inner` that reads what `spool` holds from the spool
// (no transfer) and keeps what it reads from `inner` in it. The spool's own
// failures never fail a read: the spool is then no longer written.
// stats() is inner's, with bytes_from_spool.
class SpooledReader final : public SourceReader {
 public:
  SpooledReader(SourceReader& inner, Spool& spool) : inner_(inner), spool_(spool) {}
  Result<std::size_t> read(MutableByteSpan out) override;
  Result<std::uint64_t> skip(std::uint64_t n) override;
  void hint(std::uint64_t upcoming) override;
  const Stats& stats() const override;

 private:
  Status catch_up();  // moves inner to pos_

  SourceReader& inner_;
  Spool& spool_;
  bool spool_ok_ = true;
  std::uint64_t pos_ = 0, inner_pos_ = 0;
  std::uint64_t hint_end_ = 0;  // 0: none
  bool hint_pending_ = false;
  std::uint64_t from_spool_ = 0;
  mutable Stats stats_;
};

}  // namespace ota::fetch
