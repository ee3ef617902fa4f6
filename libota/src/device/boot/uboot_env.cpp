// The U-Boot environment through libubootenv (the library behind Debian's
// fw_printenv/fw_setenv). Only this file includes <libuboot.h>.
#include <cerrno>
#include <cstddef>  // libuboot.h 0.3.2 uses size_t without including it
#include <cstring>

#include <libuboot.h>

#include "device/boot/changes.hpp"
#include "ota/device/boot.hpp"

namespace ota::boot {

namespace {

struct ContextDeleter {
  void operator()(uboot_ctx* ctx) const { libuboot_exit(ctx); }
};
using Context = std::unique_ptr<uboot_ctx, ContextDeleter>;

// libubootenv returns negative errno values (and, from a short device
// write, whatever else the write returned).
std::string describe_rc(int rc) {
  std::string text = "libubootenv returned " + std::to_string(rc);
  if (rc < 0) text += std::string(" (") + std::strerror(-rc) + ")";
  if (rc == -ENODATA) text += ": no copy of the environment has a valid CRC";
  return text;
}

// libuboot_open loads the variables and takes libubootenv's lock
// (/var/lock/fw_printenv.lock, skipped silently when it cannot be opened);
// libuboot_close drops both, and must follow every libuboot_open, failed or not.
class Session {
 public:
  explicit Session(uboot_ctx* ctx) : ctx_(ctx), rc_(libuboot_open(ctx)) {}
  ~Session() { libuboot_close(ctx_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  int rc() const { return rc_; }

 private:
  uboot_ctx* ctx_;
  int rc_;
};

class UbootEnvironment final : public Environment {
 public:
  UbootEnvironment(Context ctx, std::string config) : ctx_(std::move(ctx)), config_(std::move(config)) {}

  Result<Vars> read() override {
    Session session(ctx_.get());
    if (session.rc() != 0) return fail(error("cannot load", session.rc()));
    Vars vars;
    for (void* e = libuboot_iterator(ctx_.get(), nullptr); e; e = libuboot_iterator(ctx_.get(), e)) {
      const char* name = libuboot_getname(e);
      const char* value = libuboot_getvalue(e);
      if (name) vars[name] = value ? value : "";
    }
    return vars;
  }

  Status write(const std::map<std::string, std::optional<std::string>>& changes) override {
    OTA_TRY(check_changes(changes, true));
    if (changes.empty()) return ok();
    // Load, change in memory, store once: libubootenv writes the whole image
    // to the older copy with a higher flags byte, so the switch is atomic.
    Session session(ctx_.get());
    if (session.rc() != 0) return fail(error("cannot load", session.rc()));
    for (const auto& [name, value] : changes) {
      int rc = libuboot_set_env(ctx_.get(), name.c_str(), value ? value->c_str() : nullptr);
      if (rc != 0) return fail(error("cannot set '" + name + "'", rc));
    }
    // A full environment fails with -ENOMEM (0.3.2 then leaks its image buffer).
    int rc = libuboot_env_store(ctx_.get());
    if (rc != 0) return fail(error("cannot store", rc));
    return ok();
  }

 private:
  Error error(const std::string& what, int rc) const {
    return Error{ErrorCode::kIo, what + " U-Boot environment of '" + config_ + "': " + describe_rc(rc)};
  }

  Context ctx_;
  std::string config_;
};

}  // namespace

Result<std::unique_ptr<Environment>> open_uboot_env(const std::string& config_path) {
  uboot_ctx* raw = nullptr;
  int rc = libuboot_initialize(&raw, nullptr);
  if (rc != 0) return fail(ErrorCode::kIo, "cannot initialize libubootenv: " + describe_rc(rc));
  Context ctx(raw);
  rc = libuboot_read_config(ctx.get(), config_path.c_str());
  if (rc != 0)
    return fail(ErrorCode::kIo, "cannot use U-Boot environment config '" + config_path +
                                    "' (missing, empty, or naming a device that does not exist): " +
                                    describe_rc(rc));
  auto env = std::make_unique<UbootEnvironment>(std::move(ctx), config_path);
  OTA_TRY(env->read());
  return std::unique_ptr<Environment>(std::move(env));
}

}  // namespace ota::boot
