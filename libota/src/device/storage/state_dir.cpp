// The agent's state store on a file system: one file per record.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "ota/device/storage.hpp"
#include "device/storage/checks.hpp"

namespace ota::storage {

namespace {

constexpr unsigned kDirMode = 0700;
constexpr unsigned kRecordMode = 0600;

Error io_error(const std::string& what, const std::string& path, int err) {
  return Error{ErrorCode::kIo, what + " '" + path + "': " + std::strerror(err)};
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Makes the directory's entries (creations, renames, unlinks) durable.
Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(io_error("cannot open directory", dir, errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return fail(io_error("cannot sync directory", dir, err));
  return ok();
}

// Temporary files of replaces that a crash interrupted ("<record>.tmp.<hex>").
Status remove_stale_temp_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return fail(io_error("cannot list", dir, errno));
  bool removed = false;
  Status status = ok();
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!detail::is_temp_name(name)) continue;
    std::string_view record = name.substr(0, name.size() - std::string_view(".tmp.00000000").size());
    if (!detail::check_record_name(record)) continue;
    std::string path = dir + "/" + std::string(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      status = fail(io_error("cannot remove stale temporary file", path, errno));
      break;
    }
    removed = true;
  }
  ::closedir(d);
  OTA_TRY(status);
  if (removed) OTA_TRY(fsync_dir(dir));
  return ok();
}

class StateDir final : public StateStore {
 public:
  explicit StateDir(std::string dir) : dir_(std::move(dir)) {}

  Result<std::optional<Bytes>> get(const std::string& name) const override {
    OTA_TRY(detail::check_record_name(name));
    std::string path = path_of(name);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      if (errno == ENOENT) return std::optional<Bytes>();
      return fail(io_error("cannot open state record", path, errno));
    }
    Result<std::optional<Bytes>> result = read_all(fd, path);
    ::close(fd);
    return result;
  }

  Status replace(const std::string& name, ByteSpan data) override {
    OTA_TRY(detail::check_record_name(name));
    // Temporary file beside the record, fsync, rename, fsync of the directory.
    OTA_TRY_CTX(write_file_atomic(path_of(name), data, kRecordMode), "state record '" + name + "'");
    return ok();
  }

  Status remove(const std::string& name) override {
    OTA_TRY(detail::check_record_name(name));
    std::string path = path_of(name);
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return ok();
      return fail(io_error("cannot remove state record", path, errno));
    }
    return fsync_dir(dir_);
  }

 private:
  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }

  static Result<std::optional<Bytes>> read_all(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail(io_error("cannot stat state record", path, errno));
    if (!S_ISREG(st.st_mode)) return fail(ErrorCode::kIo, "state record '" + path + "' is not a regular file");
    Bytes data;
    try {
      data.resize(static_cast<std::size_t>(st.st_size) + 1);
      std::size_t used = 0;
      for (;;) {
        if (used == data.size()) data.resize(data.size() * 2);
        ssize_t n = ::read(fd, data.data() + used, data.size() - used);
        if (n < 0) {
          if (errno == EINTR) continue;
          return fail(io_error("cannot read state record", path, errno));
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
      }
      data.resize(used);
    } catch (const std::bad_alloc&) {
      return fail(ErrorCode::kOutOfMemory, "cannot hold state record '" + path + "' in memory");
    }
    return std::optional<Bytes>(std::move(data));
  }

  std::string dir_;
};

}  // namespace

Result<std::unique_ptr<StateStore>> open_state_dir(const std::string& dir) {
  if (dir.empty()) return fail(ErrorCode::kUsage, "the state directory path is empty");
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();

  if (::mkdir(path.c_str(), kDirMode) == 0) {
    // mkdir honours the umask; make the mode exact.
    if (::chmod(path.c_str(), kDirMode) != 0) return fail(io_error("cannot set the mode of", path, errno));
    OTA_TRY_CTX(fsync_dir(parent_of(path)), "state directory '" + path + "'");
  } else if (errno != EEXIST) {
    return fail(io_error("cannot create state directory", path, errno));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail(io_error("cannot stat state directory", path, errno));
  if (!S_ISDIR(st.st_mode)) return fail(ErrorCode::kIo, "state directory '" + path + "' is not a directory");
  OTA_TRY(remove_stale_temp_files(path));
  return std::unique_ptr<StateStore>(new StateDir(path));
}

}  // namespace ota::storage
