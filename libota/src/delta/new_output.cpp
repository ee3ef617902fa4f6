#include "delta/new_output.hpp"

#include <algorithm>
#include <cstring>

namespace ota::delta::detail {

NewOutput::NewOutput(Writer& out, bool background) : out_(out) {
  ring_.resize(kChunk * (background ? kChunks : 1));
  if (background) thread_ = std::thread([this] { run(); });
}

Status NewOutput::write(ByteSpan data) {
  if (fill_ == 0 && !thread_.joinable() && data.size() >= kChunk) {
    OTA_TRY(out_.write(data));
    written_.store(written_.load(std::memory_order_relaxed) + data.size(), std::memory_order_release);
    hasher_.update(data);
    return ok();
  }
  while (!data.empty()) {
    MutableByteSpan room = space();
    const std::size_t n = std::min(data.size(), room.size());
    std::memcpy(room.data(), data.data(), n);
    count_copy(n);
    data = data.subspan(n);
    OTA_TRY(produced(n));
  }
  return ok();
}

Status NewOutput::drain() {
  if (fill_) OTA_TRY(flush());
  if (!thread_.joinable()) return ok();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (written_chunks_ == produced_ && hashed_ == produced_) return failure_;
    if (!write_some(lock)) freed_.wait(lock);
  }
}

Result<Digest> NewOutput::finish() {
  OTA_TRY(drain());
  stop();
  return hasher_.finish();
}

void NewOutput::abandon() {
  fill_ = 0;
  if (!thread_.joinable()) return;
  std::unique_lock<std::mutex> lock(mu_);
  discard_ = true;
  work_.notify_one();
  freed_.wait(lock, [&] { return !writing_ && hashed_ == produced_; });
}

Status NewOutput::flush() {
  const std::size_t size = fill_;
  fill_ = 0;
  if (!thread_.joinable()) {
    const ByteSpan chunk(ring_.data(), size);
    OTA_TRY(out_.write(chunk));
    written_.store(written_.load(std::memory_order_relaxed) + size, std::memory_order_release);
    hasher_.update(chunk);
    return ok();
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!failure_) return failure_;
  sizes_[produced_ % kChunks] = size;
  ++produced_;
  work_.notify_one();
  while (produced_ - std::min(hashed_, written_chunks_) >= kChunks)
    if (!write_some(lock)) freed_.wait(lock);
  return failure_;
}

bool NewOutput::write_some(std::unique_lock<std::mutex>& lock) {
  if (writing_ || written_chunks_ == produced_) return false;
  writing_ = true;
  const std::uint64_t first = written_chunks_;
  std::uint64_t last = first + 1;  // exclusive
  std::size_t bytes = sizes_[first % kChunks];
  while (last < produced_ && last % kChunks != 0 && sizes_[(last - 1) % kChunks] == kChunk)
    bytes += sizes_[last++ % kChunks];
  const bool skip = !failure_ || discard_;
  lock.unlock();
  Status st = ok();
  if (!skip) {
    st = out_.write(ByteSpan(ring_.data() + (first % kChunks) * kChunk, bytes));
    if (st) written_.store(written_.load(std::memory_order_relaxed) + bytes, std::memory_order_release);
  }
  lock.lock();
  if (!st && failure_) failure_ = std::move(st);
  written_chunks_ = last;
  writing_ = false;
  freed_.notify_one();
  work_.notify_one();
  return true;
}

void NewOutput::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (hashed_ < produced_) {
      const ByteSpan chunk(ring_.data() + (hashed_ % kChunks) * kChunk, sizes_[hashed_ % kChunks]);
      const bool skip = !failure_ || discard_;
      lock.unlock();
      if (!skip) hasher_.update(chunk);
      lock.lock();
      ++hashed_;
      freed_.notify_one();
      continue;
    }
    if (write_some(lock)) continue;
    if (stopping_) return;
    work_.wait(lock);
  }
}

void NewOutput::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    discard_ = true;  // finish() drained first; otherwise the patch is being abandoned
  }
  work_.notify_one();
  thread_.join();
}

}  // namespace ota::delta::detail
