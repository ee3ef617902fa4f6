// The controller's append-only journal on disk.
#include "ota/fleet/campaign.hpp"

#include "core/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ota::campaign {

// ---- Journal ----

Result<Journal> Journal::open(const std::string& path) {
  Journal j;
  j.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (j.fd_ < 0) return fail(ErrorCode::kIo, "journal " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::pread(j.fd_, buf, sizeof buf, static_cast<off_t>(text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrorCode::kIo, "journal " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    ++line;
    if (nl == std::string::npos) {
      // A crash cut the last append short: drop it (it was never acted on,
      // since a decision is acted on only after its record is synced).
      if (::ftruncate(j.fd_, static_cast<off_t>(pos)) != 0 || ::fdatasync(j.fd_) != 0)
        return fail(ErrorCode::kIo, "journal " + path + ": cutting a torn record: " + std::strerror(errno));
      break;
    }
    std::string rec = text.substr(pos, nl - pos);
    auto parsed = json::parse_strict(rec, 1u << 20, "journal record");
    if (!parsed || !parsed->is_object())
      return fail(ErrorCode::kMalformed, "journal " + path + ": line " + std::to_string(line) + " is not a JSON object");
    j.records_.push_back(std::move(rec));
    pos = nl + 1;
  }
  return j;
}

Journal::Journal(Journal&& o) noexcept : fd_(o.fd_), records_(std::move(o.records_)) { o.fd_ = -1; }
Journal& Journal::operator=(Journal&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
    records_ = std::move(o.records_);
  }
  return *this;
}
Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

Status Journal::sync() {
  if (::fdatasync(fd_) != 0) return fail(ErrorCode::kIo, std::string("journal: fsync: ") + std::strerror(errno));
  return ok();
}

Status Journal::append(const std::string& record, bool sync_now) {
  if (record.find('\n') != std::string::npos) return fail(ErrorCode::kInternal, "journal: a record spans lines");
  const std::string line = record + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrorCode::kIo, std::string("journal: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  if (sync_now) return sync();
  return ok();
}

}  // namespace ota::campaign
