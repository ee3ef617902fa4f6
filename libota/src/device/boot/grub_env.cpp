// The GRUB environment block through grub-editenv, run with fork/exec (no shell).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "device/boot/changes.hpp"
#include "ota/device/boot.hpp"
#include "ota/core/io.hpp"

namespace ota::boot {

namespace {

// grub-editenv rewrites 1 KiB; anything near this is a hung tool.
constexpr int kToolTimeoutSeconds = 30;

struct ToolResult {
  int exit_code = -1;  // -1 when killed by a signal
  int term_signal = 0;
  std::string out;
  std::string err;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

Error sys_error(const std::string& what, int err) {
  return Error{ErrorCode::kIo, what + ": " + std::strerror(err)};
}

// In the child: makes fd the descriptor `target`, inherited across exec.
void move_fd(int fd, int target) {
  if (fd == target) {
    ::fcntl(fd, F_SETFD, 0);
  } else {
    ::dup2(fd, target);
  }
}

// Runs argv[0] (a path) with stdin from /dev/null, capturing stdout and stderr.
Result<ToolResult> run_tool(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail(sys_error("pipe", errno));
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail(sys_error("pipe", errno));
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);
  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) return fail(sys_error("cannot open /dev/null", errno));

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return fail(sys_error("fork", errno));
  if (pid == 0) {
    move_fd(null_fd.get(), STDIN_FILENO);
    move_fd(out_w.get(), STDOUT_FILENO);
    move_fd(err_w.get(), STDERR_FILENO);
    ::execv(args[0], args.data());
    static const char msg[] = "exec failed\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  out_w.reset();
  err_w.reset();
  null_fd.reset();

  ToolResult result;
  const int fds[2] = {out_r.get(), err_r.get()};
  std::string* sinks[2] = {&result.out, &result.err};
  bool live[2] = {true, true};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kToolTimeoutSeconds);
  bool killed = false;
  char buf[4096];
  while (live[0] || live[1]) {
    pollfd pfd[2];
    int which[2];
    nfds_t n = 0;
    for (int i = 0; i < 2; ++i) {
      if (!live[i]) continue;
      pfd[n] = pollfd{fds[i], POLLIN, 0};
      which[n++] = i;
    }
    int r = ::poll(pfd, n, 200);
    if (r < 0 && errno != EINTR) break;
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    for (nfds_t k = 0; r > 0 && k < n; ++k) {
      if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(pfd[k].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[which[k]]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        live[which[k]] = false;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail(sys_error("waitpid", errno));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  if (killed) return fail(ErrorCode::kIo, argv[0] + " did not finish within " +
                                              std::to_string(kToolTimeoutSeconds) + " s");
  return result;
}

// PATH lookup done in the parent (execv in the child does none).
Result<std::string> find_program(const std::string& name) {
  if (name.empty()) return fail(ErrorCode::kUsage, "no grub-editenv program given");
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) return fail(sys_error("cannot run '" + name + "'", errno));
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    std::size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return fail(ErrorCode::kIo, "cannot find '" + name + "' in PATH (Debian package grub-common)");
}

std::string last_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  auto nl = text.find_last_of('\n');
  if (nl != std::string::npos) text = text.substr(nl + 1);
  return text.empty() ? "no message" : text;
}

class GrubEnvironment final : public Environment {
 public:
  GrubEnvironment(std::string file, std::string tool) : file_(std::move(file)), tool_(std::move(tool)) {}

  // `grub-editenv -- FILE COMMAND ARGS...`; "--" keeps a file or a name that
  // starts with '-' from being read as an option.
  Result<std::string> editenv(const std::string& file, const std::string& command,
                              const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {tool_, "--", file, command};
    argv.insert(argv.end(), args.begin(), args.end());
    auto run = run_tool(argv);
    if (!run) return fail(std::move(run).error().with_context("grub-editenv '" + file + "' " + command));
    if (run->exit_code != 0) {
      std::string how = run->term_signal ? "killed by signal " + std::to_string(run->term_signal)
                                         : "exit status " + std::to_string(run->exit_code);
      return fail(ErrorCode::kIo, "grub-editenv '" + file + "' " + command + ": " + how + ": " + last_line(run->err));
    }
    return std::move(run->out);
  }

  Result<Vars> read() override {
    OTA_TRY_ASSIGN(auto out, editenv(file_, "list", {}));
    Vars vars;
    std::size_t pos = 0;
    while (pos < out.size()) {
      std::size_t end = out.find('\n', pos);
      if (end == std::string::npos) end = out.size();
      std::string line = out.substr(pos, end - pos);
      pos = end + 1;
      auto eq = line.find('=');
      if (eq == std::string::npos || eq == 0)
        return fail(ErrorCode::kMalformed, "GRUB environment '" + file_ + "': line '" + line.substr(0, 64) +
                                               "' is not name=value (a value with a newline?)");
      vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return vars;
  }

  Status write(const std::map<std::string, std::optional<std::string>>& changes) override {
    OTA_TRY(check_changes(changes, false));
    std::vector<std::string> sets, unsets;
    for (const auto& [name, value] : changes) {
      if (value) {
        sets.push_back(name + "=" + *value);
      } else {
        unsets.push_back(name);
      }
    }
    if (unsets.empty() && sets.empty()) return ok();
    std::vector<Edit> edits;
    if (!sets.empty()) edits.push_back({"set", sets});
    if (!unsets.empty()) edits.push_back({"unset", unsets});
    return store(edits, /*from_existing=*/true);
  }

  // Writes a new, empty block (open_grub_env on a missing file).
  Status create() { return store({{"create", {}}}, /*from_existing=*/false); }

 private:
  struct Edit {
    std::string command;
    std::vector<std::string> args;
  };

  // Every write of the environment goes through here, so each is one atomic
  // and durable store: the edits run on a copy (grub-editenv itself renames
  // its FILE.new over FILE without any fsync, and a set plus an unset are two
  // commands), the copy is fsync'ed and renamed over the file, and the
  // directory is fsync'ed so that the rename survives a power cut. A failed
  // directory fsync is an error: the new environment might not persist.
  Status store(const std::vector<Edit>& edits, bool from_existing) {
    std::string tmp = file_ + ".ota-XXXXXX";
    Fd fd(::mkostemp(tmp.data(), O_CLOEXEC));
    if (fd.get() < 0) return fail(sys_error("cannot create a copy of '" + file_ + "'", errno));
    auto result = [&]() -> Status {
      // The copy keeps the file's mode (a new block: 0644, as grub-editenv makes it).
      struct stat st {};
      const mode_t mode = from_existing && ::stat(file_.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
      if (::fchmod(fd.get(), mode) != 0) return fail(sys_error("cannot set the mode of '" + tmp + "'", errno));
      if (from_existing) {
        OTA_TRY_ASSIGN(auto bytes, read_file(file_));
        const std::uint8_t* p = bytes.data();
        std::size_t left = bytes.size();
        while (left) {
          ssize_t w = ::write(fd.get(), p, left);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return fail(sys_error("cannot write '" + tmp + "'", errno));
          p += w;
          left -= static_cast<std::size_t>(w);
        }
      }
      fd.reset();
      for (const auto& e : edits) OTA_TRY(editenv(tmp, e.command, e.args));
      Fd synced(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
      if (synced.get() < 0 || ::fsync(synced.get()) != 0) return fail(sys_error("cannot sync '" + tmp + "'", errno));
      if (::rename(tmp.c_str(), file_.c_str()) != 0)
        return fail(sys_error("cannot rename '" + tmp + "' to '" + file_ + "'", errno));
      return ok();
    }();
    if (!result) {
      ::unlink(tmp.c_str());
      ::unlink((tmp + ".new").c_str());  // grub-editenv's own temporary, if it stopped midway
      return fail(std::move(result).error().with_context("GRUB environment '" + file_ + "'"));
    }
    const auto slash = file_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : file_.substr(0, slash));
    Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0)
      return fail(sys_error("GRUB environment '" + file_ + "': cannot sync its directory '" + dir + "'", errno));
    return ok();
  }

  std::string file_;
  std::string tool_;
};

}  // namespace

Result<std::unique_ptr<Environment>> open_grub_env(const std::string& env_file, const std::string& grub_editenv) {
  if (env_file.empty()) return fail(ErrorCode::kUsage, "no GRUB environment file given");
  OTA_TRY_ASSIGN(auto tool, find_program(grub_editenv));
  auto env = std::make_unique<GrubEnvironment>(env_file, tool);
  struct stat st {};
  if (::stat(env_file.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail(sys_error("cannot stat '" + env_file + "'", errno));
    OTA_TRY(env->create());
  }
  OTA_TRY(env->read());
  return std::unique_ptr<Environment>(std::move(env));
}

}  // namespace ota::boot
