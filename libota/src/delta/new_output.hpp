// Where NEW goes, for both payload sinks (the patcher and the full-image
// decoder): NEW is produced straight into a 32 KiB buffer (space() /
// produced()), and a full buffer is written to the Writer and hashed. Large
// pieces that are already in memory (write()) go to the Writer as they are,
// without a copy, when no buffer is pending.
//
// In the background mode the buffers form a ring of kChunks, and a second
// thread hashes them in order, so that hashing overlaps decoding and
// predicting. Writing is shared: the second thread writes whenever it has
// nothing to hash, and the patcher's thread writes instead of waiting when the
// ring is full, so neither thread idles while the other has both jobs (node:
// writing on either thread alone left that thread the bottleneck). Writes stay
// in order and never overlap: one thread at a time holds the write turn, and
// it writes every pending buffer that is contiguous in the ring in one call.
// drain() returns once everything produced has been written and hashed; a
// Writer error is reported by the next produced(), drain() or finish(), and
// after abandon() the Writer is no longer called.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"

namespace ota::delta::detail {

class NewOutput {
 public:
  static constexpr std::size_t kChunk = 32 * 1024;
  static constexpr std::size_t kChunks = 4;

  NewOutput(Writer& out, bool background);
  ~NewOutput() { stop(); }
  NewOutput(const NewOutput&) = delete;
  NewOutput& operator=(const NewOutput&) = delete;

  // Room for the next NEW bytes (never empty).
  MutableByteSpan space() {
    return MutableByteSpan(ring_.data() + (produced_ % slots()) * kChunk + fill_, kChunk - fill_);
  }
  // The first n bytes of space() are NEW's next bytes.
  Status produced(std::size_t n) {
    fill_ += n;
    return fill_ == kChunk ? flush() : ok();
  }
  // NEW's next bytes, from memory the caller owns: copied into the buffer,
  // or (a piece of at least kChunk with nothing buffered, not in the
  // background mode) written and hashed where they are.
  Status write(ByteSpan data);

  // The hash of NEW so far: a resumed sink first feeds it the NEW bytes
  // written before the resume point (nothing is buffered yet).
  Hasher& hasher() { return hasher_; }

  // Bytes the Writer accepted (produced bytes may still be buffered),
  // counted from n when resuming.
  std::uint64_t written() const { return written_.load(std::memory_order_acquire); }
  void resume_at(std::uint64_t n) { written_.store(n, std::memory_order_release); }

  // Everything produced so far has been written (and hashed).
  Status drain();

  Result<Digest> finish();

  // After a failure: buffers not yet written are dropped, and the Writer is
  // no longer in use when this returns (its position is written()).
  void abandon();

 private:
  std::size_t slots() const { return ring_.size() / kChunk; }

  // Hands the current buffer over (or writes and hashes it) and moves on,
  // writing while the ring is full.
  Status flush();

  // Takes the write turn if it is free and something is unwritten: writes the
  // pending buffers up to the ring's end (or a partial buffer) in one call.
  // Called and returns with lock held; false if there was nothing to take.
  bool write_some(std::unique_lock<std::mutex>& lock);

  // The second thread: hashes buffers in order; writes when there is nothing to hash.
  void run();

  void stop();

  Writer& out_;
  Hasher hasher_;
  Bytes ring_;
  std::size_t fill_ = 0;
  std::atomic<std::uint64_t> written_{0};  // bytes the Writer accepted
  // Under mu_ (background mode): buffers (chunks) produced, hashed and written
  // so far; chunk i lives in slot i % kChunks.
  std::uint64_t produced_ = 0, hashed_ = 0, written_chunks_ = 0;
  std::size_t sizes_[kChunks] = {};
  bool writing_ = false;   // a thread holds the write turn
  Status failure_ = ok();  // the first Writer error
  bool stopping_ = false, discard_ = false;
  std::mutex mu_;
  std::condition_variable work_, freed_;
  std::thread thread_;
};

}  // namespace ota::delta::detail
