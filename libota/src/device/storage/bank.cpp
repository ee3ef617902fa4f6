// Banks on files and block devices, and the adapters over any BlockStore.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ota/device/storage.hpp"
#include "device/storage/checks.hpp"

namespace ota::storage {

namespace {

Error io_error(const std::string& what, const std::string& path, int err) {
  return Error{ErrorCode::kIo, what + " '" + path + "': " + std::strerror(err)};
}

class FileBank final : public BlockStore {
 public:
  FileBank(int fd, std::uint64_t size, std::string path, bool read_only)
      : fd_(fd), size_(size), path_(std::move(path)), read_only_(read_only) {}
  ~FileBank() override { ::close(fd_); }
  FileBank(const FileBank&) = delete;
  FileBank& operator=(const FileBank&) = delete;

  std::uint64_t size() const override { return size_; }

  Status read_at(std::uint64_t offset, MutableByteSpan out) const override {
    OTA_TRY(detail::check_read(size_, offset, out.size(), "'" + path_ + "'"));
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(io_error("cannot read at offset " + std::to_string(offset + done) + " of", path_, errno));
      }
      if (n == 0) return fail(ErrorCode::kIo, "'" + path_ + "' shrank while being read");
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }

  Status write_at(std::uint64_t offset, ByteSpan data) override {
    OTA_TRY(detail::check_write(size_, offset, data.size(), "'" + path_ + "'"));
    if (read_only_) return fail(ErrorCode::kUnsupported, "'" + path_ + "' is the running bank, opened read-only");
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(io_error("cannot write at offset " + std::to_string(offset + done) + " of", path_, errno));
      }
      // pwrite within the device never returns 0 for a non-empty buffer; don't spin if it does.
      if (n == 0)
        return fail(ErrorCode::kIo, "cannot write at offset " + std::to_string(offset + done) + " of '" + path_ +
                                        "': no progress");
      done += static_cast<std::size_t>(n);
    }
    return ok();
  }

  Status sync() override {
    if (read_only_) return fail(ErrorCode::kUnsupported, "'" + path_ + "' is the running bank, opened read-only");
    while (::fdatasync(fd_) != 0) {
      if (errno != EINTR) return fail(io_error("cannot sync", path_, errno));
    }
    return ok();
  }

 private:
  int fd_;
  std::uint64_t size_;
  std::string path_;
  bool read_only_;
};

}  // namespace

Result<std::unique_ptr<BlockStore>> open_file_bank(const std::string& path, Access access) {
  const bool read_only = access == Access::kReadOnly;
  int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return fail(io_error("cannot open bank", path, errno));
  auto close_with = [fd](Error e) {
    ::close(fd);
    return fail(std::move(e));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return close_with(io_error("cannot stat bank", path, errno));
  std::uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<std::uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) return close_with(io_error("cannot size bank", path, errno));
  } else {
    return close_with(Error{ErrorCode::kUnsupported, "bank '" + path + "' is neither a regular file nor a block device"});
  }
  return std::unique_ptr<BlockStore>(new FileBank(fd, size, path, read_only));
}


Status BankWriter::write(ByteSpan data) {
  if (data.empty()) return ok();
  if (pos_ > bank_.size() || data.size() > bank_.size() - pos_)
    return fail(ErrorCode::kLimitExceeded, "writing " + std::to_string(data.size()) + " bytes at offset " +
                                               std::to_string(pos_) + " would pass the end of the bank (" +
                                               std::to_string(bank_.size()) + " bytes)");
  if (data.size() >= kDirect) {  // a whole buffer from the sink: written where it is, not copied
    OTA_TRY(flush());
    OTA_TRY(bank_.write_at(flushed_, data));
    flushed_ += data.size();
  } else {
    if (buf_.size() + data.size() > kBuffer) OTA_TRY(flush());
    if (buf_.capacity() < kBuffer) buf_.reserve(kBuffer);
    count_copy(data.size());
    buf_.insert(buf_.end(), data.begin(), data.end());
  }
  pos_ += data.size();
  return ok();
}

Status BankWriter::flush() {
  if (buf_.empty()) return ok();
  OTA_TRY(bank_.write_at(flushed_, buf_));
  flushed_ += buf_.size();
  buf_.clear();
  return ok();
}

Status BankWriter::sync() {
  OTA_TRY(flush());
  return bank_.sync();
}

}  // namespace ota::storage
