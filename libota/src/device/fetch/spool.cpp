// The download spool (ota/device/spool.hpp).
#include "ota/device/spool.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ota::fetch {

namespace {

constexpr char kMagic[8] = {'O', 'T', 'A', 'S', 'P', 'O', 'O', 'L'};
constexpr std::size_t kHeaderSize = 8 + 32 + 16 + 32;  // magic, key, generation, hash of those
constexpr std::size_t kRecordHead = 8 + 4 + 32;        // offset, length, hash

void put_le(std::uint8_t* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get_le(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::open(storage::BlockStore& store, std::string_view key,
                                           std::uint64_t sync_every) {
  if (store.size() < kHeaderSize + kRecordHead + 1)
    return fail(ErrorCode::kLimitExceeded, "the download spool's store is too small");
  std::unique_ptr<Spool> s(new Spool(store, sync_every));
  OTA_TRY(s->load(content_hash(ByteSpan(reinterpret_cast<const std::uint8_t*>(key.data()), key.size()))));
  return s;
}

Digest Spool::record_hash(std::uint64_t offset, std::uint32_t length, ByteSpan data) const {
  std::uint8_t head[12];
  put_le(head, offset, 8);
  put_le(head + 8, length, 4);
  Hasher h;
  h.update(ByteSpan(generation_, sizeof generation_));
  h.update(ByteSpan(head, sizeof head));
  h.update(data);
  return h.finish();
}

Status Spool::start(const Digest& key) {
  key_ = key;
  randombytes_buf(generation_, sizeof generation_);
  started_ = false;
  entries_.clear();
  end_ = kHeaderSize;
  held_bytes_ = 0;
  return ok();
}

Status Spool::load(const Digest& key) {
  std::uint8_t header[kHeaderSize];
  OTA_TRY_CTX(store_.read_at(0, MutableByteSpan(header, sizeof header)), "reading the download spool");
  const Digest stored_hash = [&] {
    Digest d{};
    std::memcpy(d.data(), header + 56, d.size());
    return d;
  }();
  if (std::memcmp(header, kMagic, sizeof kMagic) != 0 || std::memcmp(header + 8, key.data(), key.size()) != 0 ||
      content_hash(ByteSpan(header, 56)) != stored_hash)
    return start(key);  // another source's spool, or none
  key_ = key;
  std::memcpy(generation_, header + 40, sizeof generation_);
  started_ = true;
  end_ = kHeaderSize;
  Bytes data;
  for (;;) {
    std::uint8_t head[kRecordHead];
    if (end_ + kRecordHead > store_.size()) break;
    OTA_TRY_CTX(store_.read_at(end_, MutableByteSpan(head, sizeof head)), "reading the download spool");
    const std::uint64_t offset = get_le(head, 8);
    const std::uint64_t length = get_le(head + 8, 4);
    if (length == 0 || length > kMaxSpoolRecord || end_ + kRecordHead + length > store_.size() ||
        offset > UINT64_MAX - length)
      break;
    data.resize(static_cast<std::size_t>(length));
    OTA_TRY_CTX(store_.read_at(end_ + kRecordHead, data), "reading the download spool");
    Digest h{};
    std::memcpy(h.data(), head + 12, h.size());
    if (record_hash(offset, static_cast<std::uint32_t>(length), data) != h) break;  // torn, or an older generation
    // Records are disjoint when written; one that is not is left out.
    auto next = entries_.lower_bound(offset);
    const bool overlaps = (next != entries_.end() && next->first < offset + length) ||
                          (next != entries_.begin() && std::prev(next)->first + std::prev(next)->second.length > offset);
    if (!overlaps) {
      entries_[offset] = Entry{static_cast<std::uint32_t>(length), end_ + kRecordHead};
      held_bytes_ += length;
    }
    end_ += kRecordHead + length;
  }
  return ok();
}

std::uint64_t Spool::held(std::uint64_t offset) const {
  auto it = entries_.upper_bound(offset);
  if (it == entries_.begin()) return 0;
  --it;
  std::uint64_t end = it->first + it->second.length;
  if (end <= offset) return 0;
  for (++it; it != entries_.end() && it->first == end; ++it) end += it->second.length;
  return end - offset;
}

std::uint64_t Spool::next_held(std::uint64_t offset) const {
  auto it = entries_.upper_bound(offset);
  return it == entries_.end() ? UINT64_MAX : it->first;
}

Status Spool::read(std::uint64_t offset, MutableByteSpan out) const {
  if (out.size() > held(offset)) return fail(ErrorCode::kUsage, "the download spool does not hold those bytes");
  auto it = std::prev(entries_.upper_bound(offset));
  std::size_t done = 0;
  while (done < out.size()) {
    const std::uint64_t at = offset + done;
    const std::uint64_t in_entry = at - it->first;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size() - done, it->second.length - in_entry));
    OTA_TRY_CTX(store_.read_at(it->second.data_at + in_entry, out.subspan(done, n)), "reading the download spool");
    done += n;
    ++it;
  }
  return ok();
}

Result<bool> Spool::append(std::uint64_t offset, ByteSpan data) {
  while (!data.empty()) {
    const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::size_t>(data.size(), kMaxSpoolRecord));
    if (held(offset) > 0 || next_held(offset) < offset + n)
      return fail(ErrorCode::kUsage, "the download spool already holds some of those bytes");
    if (end_ + kRecordHead + n > store_.size()) return false;
    if (!started_) {
      std::uint8_t header[kHeaderSize];
      std::memcpy(header, kMagic, sizeof kMagic);
      std::memcpy(header + 8, key_.data(), key_.size());
      std::memcpy(header + 40, generation_, sizeof generation_);
      const Digest h = content_hash(ByteSpan(header, 56));
      std::memcpy(header + 56, h.data(), h.size());
      OTA_TRY_CTX(store_.write_at(0, ByteSpan(header, sizeof header)), "writing the download spool");
      started_ = true;
    }
    std::uint8_t head[kRecordHead];
    put_le(head, offset, 8);
    put_le(head + 8, n, 4);
    const Digest h = record_hash(offset, n, data.first(n));
    std::memcpy(head + 12, h.data(), h.size());
    OTA_TRY_CTX(store_.write_at(end_ + kRecordHead, data.first(n)), "writing the download spool");
    OTA_TRY_CTX(store_.write_at(end_, ByteSpan(head, sizeof head)), "writing the download spool");
    entries_[offset] = Entry{n, end_ + kRecordHead};
    end_ += kRecordHead + n;
    held_bytes_ += n;
    unsynced_ += n;
    offset += n;
    data = data.subspan(n);
    if (unsynced_ >= sync_every_) OTA_TRY(sync());
  }
  return true;
}

Status Spool::sync() {
  if (unsynced_ == 0) return ok();
  OTA_TRY_CTX(store_.sync(), "syncing the download spool");
  unsynced_ = 0;
  return ok();
}

Result<std::unique_ptr<storage::BlockStore>> open_spool_file(const std::string& path, std::uint64_t capacity) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(ErrorCode::kIo, "cannot open the download spool " + path + ": " + std::strerror(errno));
  struct stat st {};
  bool ok_size = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (ok_size && static_cast<std::uint64_t>(st.st_size) != capacity)
    ok_size = ::ftruncate(fd, static_cast<off_t>(capacity)) == 0;  // sparse: blocks are used as records arrive
  const int err = errno;
  ::close(fd);
  if (!ok_size) return fail(ErrorCode::kIo, "cannot size the download spool " + path + ": " + std::strerror(err));
  return storage::open_file_bank(path);
}

Status remove_spool_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return fail(ErrorCode::kIo, "cannot remove the download spool " + path + ": " + std::strerror(errno));
  return ok();
}

// ---- SpooledReader ----

Status SpooledReader::catch_up() {
  if (inner_pos_ < pos_) {
    OTA_TRY_ASSIGN(auto k, inner_.skip(pos_ - inner_pos_));
    inner_pos_ += k;
  }
  if (hint_pending_) {
    inner_.hint(hint_end_ > pos_ ? hint_end_ - pos_ : 0);
    hint_pending_ = false;
  }
  return ok();
}

Result<std::size_t> SpooledReader::read(MutableByteSpan out) {
  if (out.empty()) return std::size_t{0};
  if (spool_ok_) {
    if (const std::uint64_t h = spool_.held(pos_); h > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), h));
      if (spool_.read(pos_, out.first(n))) {
        count_copy(n);  // from the spool's file into the caller's buffer
        pos_ += n;
        from_spool_ += n;
        return n;
      }
      spool_ok_ = false;  // an unreadable spool is only not used
    }
  }
  OTA_TRY(catch_up());
  std::size_t want = out.size();
  if (spool_ok_) {
    const std::uint64_t next = spool_.next_held(pos_);
    if (next != UINT64_MAX) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, next - pos_));
  }
  OTA_TRY_ASSIGN(auto n, inner_.read(out.first(want)));
  inner_pos_ += n;
  if (n > 0 && spool_ok_) {
    auto kept = spool_.append(pos_, out.first(n));
    if (!kept) spool_ok_ = false;  // full (false) is fine; an error stops the spool, never the download
  }
  pos_ += n;
  return n;
}

Result<std::uint64_t> SpooledReader::skip(std::uint64_t n) {
  if (inner_pos_ == pos_ && !(spool_ok_ && (spool_.held(pos_) > 0 || spool_.next_held(pos_) < pos_ + n))) {
    OTA_TRY_ASSIGN(auto k, inner_.skip(n));  // nothing held there: the source jumps as it would
    pos_ += k;
    inner_pos_ += k;
    return k;
  }
  pos_ += n;  // the source follows when it is next read
  return n;
}

void SpooledReader::hint(std::uint64_t upcoming) {
  hint_end_ = upcoming ? pos_ + upcoming : 0;
  if (inner_pos_ == pos_) {
    inner_.hint(upcoming);
    hint_pending_ = false;
  } else {
    hint_pending_ = true;
  }
}

const Stats& SpooledReader::stats() const {
  stats_ = inner_.stats();
  stats_.bytes_from_spool = from_spool_;
  return stats_;
}

}  // namespace ota::fetch
