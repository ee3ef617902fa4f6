#include "ota/core/io.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

namespace ota {

namespace {

Error io_error(const std::string& what, const std::string& path, int err) {
  return Error{ErrorCode::kIo, what + " '" + path + "': " + std::strerror(err)};
}

std::string dir_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

// ---- memory ----

Result<std::size_t> MemoryReader::read(MutableByteSpan out) {
  std::size_t n = std::min(out.size(), data_.size() - pos_);
  if (n) std::memcpy(out.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

Result<std::uint64_t> MemoryReader::skip(std::uint64_t n) {
  const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, data_.size() - pos_));
  pos_ += k;
  return std::uint64_t{k};
}

Status VectorWriter::write(ByteSpan data) {
  data_.insert(data_.end(), data.begin(), data.end());
  return ok();
}

Status MemorySource::read_at(std::uint64_t offset, MutableByteSpan out) const {
  if (offset > data_.size() || out.size() > data_.size() - offset)
    return fail(ErrorCode::kIo, "read past the end of a memory source");
  if (!out.empty()) std::memcpy(out.data(), data_.data() + offset, out.size());
  return ok();
}

namespace {
std::atomic<std::uint64_t> g_copied{0};
}  // namespace

void count_copy(std::size_t n) { g_copied.fetch_add(n, std::memory_order_relaxed); }
std::uint64_t bytes_copied() { return g_copied.load(std::memory_order_relaxed); }

Status SliceSource::read_at(std::uint64_t offset, MutableByteSpan out) const {
  if (offset > size_ || out.size() > size_ - offset)
    return fail(ErrorCode::kIo, "read past the image at offset " + std::to_string(offset));
  return base_.read_at(offset_ + offset, out);
}

// ---- FileSource ----

Result<std::unique_ptr<FileSource>> FileSource::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(io_error("cannot open", path, errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return fail(io_error("cannot stat", path, err));
  }
  std::uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<std::uint64_t>(st.st_size);
  } else {
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) {
      int err = errno;
      ::close(fd);
      return fail(io_error("cannot size", path, err));
    }
    size = static_cast<std::uint64_t>(end);
  }
  return std::unique_ptr<FileSource>(new FileSource(fd, size, path));
}

FileSource::~FileSource() { ::close(fd_); }

Status FileSource::read_at(std::uint64_t offset, MutableByteSpan out) const {
  if (offset > size_ || out.size() > size_ - offset)
    return fail(ErrorCode::kIo, "read past the end of '" + path_ + "'");
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(io_error("cannot read", path_, errno));
    }
    if (n == 0) return fail(ErrorCode::kIo, "'" + path_ + "' shrank while being read");
    done += static_cast<std::size_t>(n);
  }
  return ok();
}

// ---- Reader ----

Result<std::uint64_t> Reader::skip(std::uint64_t n) {
  std::uint8_t buf[16 * 1024];
  std::uint64_t done = 0;
  while (done < n) {
    OTA_TRY_ASSIGN(auto got,
                   read(MutableByteSpan(buf, static_cast<std::size_t>(std::min<std::uint64_t>(n - done, sizeof buf)))));
    if (got == 0) break;
    done += got;
  }
  return done;
}

// ---- FileReader ----

Result<std::unique_ptr<FileReader>> FileReader::open(const std::string& path) {
  if (path == "-") return std::unique_ptr<FileReader>(new FileReader(0, false, "<stdin>"));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(io_error("cannot open", path, errno));
  return std::unique_ptr<FileReader>(new FileReader(fd, true, path));
}

FileReader::~FileReader() {
  if (owned_) ::close(fd_);
}

Result<std::size_t> FileReader::read(MutableByteSpan out) {
  for (;;) {
    ssize_t n = ::read(fd_, out.data(), out.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return fail(io_error("cannot read", path_, errno));
  }
}

Result<std::uint64_t> FileReader::skip(std::uint64_t n) {
  struct stat st{};
  const off_t at = ::lseek(fd_, 0, SEEK_CUR);
  // Only a regular file seeks; a pipe or terminal is read over.
  if (at < 0 || ::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return Reader::skip(n);
  const std::uint64_t here = static_cast<std::uint64_t>(at), end = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t k = here >= end ? 0 : std::min(n, end - here);
  if (::lseek(fd_, static_cast<off_t>(k), SEEK_CUR) < 0) return fail(io_error("cannot seek in", path_, errno));
  return k;
}

// ---- AtomicFileWriter ----

namespace {
constexpr std::size_t kWriteBuffer = 64 * 1024;
constexpr std::uint64_t kWritebackStep = std::uint64_t{8} << 20;

Status write_all(int fd, const std::uint8_t* p, std::size_t n, const std::string& path) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail(io_error("cannot write", path, errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return ok();
}
}  // namespace

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::create(const std::string& path,
                                                                   unsigned mode) {
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".tmp.%08x", static_cast<unsigned>(rd()));
    std::string tmp = path + suffix;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (fd >= 0) {
      // open() honours the umask; make the final mode exact (and never wider than asked).
      ::fchmod(fd, mode & 0777);
      auto w = std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(fd, path, tmp));
      w->buf_.reserve(kWriteBuffer);
      return w;
    }
    if (errno != EEXIST) return fail(io_error("cannot create", tmp, errno));
  }
  return fail(ErrorCode::kIo, "cannot create a temporary file beside '" + path + "'");
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

Status AtomicFileWriter::flush_buffer() {
  if (buf_.empty()) return ok();
  auto st = write_all(fd_, buf_.data(), buf_.size(), path_);
  buf_.clear();
  return st;
}

// Starts writing back what is in the page cache every kWritebackStep bytes, so
// that commit()'s fsync waits for the last few MiB instead of the whole file
// (dpkg does the same). Asynchronous; failures surface at the fsync.
void AtomicFileWriter::start_writeback() {
#if defined(__linux__)
  const std::uint64_t written = pos_ - buf_.size();
  if (written - writeback_ < kWritebackStep) return;
  ::sync_file_range(fd_, static_cast<off_t>(writeback_), static_cast<off_t>(written - writeback_),
                    SYNC_FILE_RANGE_WRITE);
  writeback_ = written;
#endif
}

Status AtomicFileWriter::write(ByteSpan data) {
  if (committed_) return fail(ErrorCode::kInternal, "write after commit");
  pos_ += data.size();
  if (buf_.size() + data.size() <= kWriteBuffer && !(buf_.empty() && data.size() >= kWriteBuffer / 4)) {
    buf_.insert(buf_.end(), data.begin(), data.end());
    return ok();
  }
  OTA_TRY(flush_buffer());
  // Large pieces go straight to the file: one copy less.
  if (data.size() >= kWriteBuffer / 4) {
    OTA_TRY(write_all(fd_, data.data(), data.size(), path_));
  } else {
    buf_.insert(buf_.end(), data.begin(), data.end());
  }
  start_writeback();
  return ok();
}

Status AtomicFileWriter::sync() {
  OTA_TRY(flush_buffer());
  if (::fsync(fd_) != 0) return fail(io_error("cannot sync", tmp_, errno));
  return ok();
}

Status AtomicFileWriter::commit() {
  OTA_TRY(sync());
  if (::close(fd_) != 0) {
    fd_ = -1;
    return fail(io_error("cannot close", tmp_, errno));
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return fail(io_error("cannot rename into", path_, errno));
  committed_ = true;
  std::string dir = dir_of(path_);
  // The rename is durable only once the directory is: a failure here is an
  // error (the new file is in place, but may not survive a power cut).
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail(io_error("cannot open the directory of", path_, errno));
  const int r = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  // Some file systems cannot fsync a directory (EINVAL); they order renames.
  if (r != 0 && err != EINVAL) return fail(io_error("cannot fsync the directory of", path_, err));
  return ok();
}

// ---- helpers ----

namespace {
// A whole image in memory is read at random by the generator (suffix sort,
// match search): ask for transparent huge pages (2 MiB) before the pages are
// first touched, where the kernel's policy is madvise.
void advise_huge_pages(void* p, std::size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  if (n < 4 * kHuge) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}
}  // namespace

Result<Bytes> read_file(const std::string& path) {
  OTA_TRY_ASSIGN(auto src, FileSource::open(path));
  Bytes data;
  try {
    const auto size = static_cast<std::size_t>((src)->size());
    data.reserve(size);
    advise_huge_pages(data.data(), size);
    data.resize(size);
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kOutOfMemory, "cannot hold '" + path + "' in memory");
  }
  OTA_TRY((src)->read_at(0, data));
  return data;
}

Status write_file_atomic(const std::string& path, ByteSpan data, unsigned mode) {
  OTA_TRY_ASSIGN(auto w, AtomicFileWriter::create(path, mode));
  OTA_TRY((w)->write(data));
  return (w)->commit();
}

Result<std::uint64_t> copy(Reader& in, Writer& out) {
  Bytes buf(64 * 1024);
  std::uint64_t total = 0;
  for (;;) {
    OTA_TRY_ASSIGN(auto n, in.read(buf));
    if (n == 0) return total;
    OTA_TRY(out.write(ByteSpan(buf.data(), n)));
    total += n;
  }
}

}  // namespace ota
