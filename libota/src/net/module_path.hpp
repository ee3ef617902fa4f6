// Internal: where libota looks for its optional modules (libota-fetch-http.so,
// libota-mqtt.so) and how it loads one: $ENV_VAR, else where the build put it,
// else next to the executable (EXE/../LIBDIR/ota, for relocated installs), else
// where `make install` put it. Loaded once, never unloaded.
#pragma once

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "ota/error.hpp"

namespace ota::net {

inline std::vector<std::string> module_candidates(const char* env_var, const std::string& build_path,
                                                  const std::string& install_path) {
  std::vector<std::string> out;
  if (const char* env = std::getenv(env_var); env && *env) out.emplace_back(env);
  out.push_back(build_path);
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir.resize(dir.find_last_of('/'));
    const std::string name = install_path.substr(install_path.find_last_of('/') + 1);
    out.push_back(dir + "/../" + OTA_MODULE_RELATIVE_DIR + "/" + name);
  }
  out.push_back(install_path);
  return out;
}

// dlopen()s the first candidate that loads and has `entry`; kUnsupported
// naming every path tried otherwise.
template <typename Fn>
Result<Fn> load_module(const std::vector<std::string>& candidates, const char* entry, const std::string& what) {
  std::string tried;
  for (const auto& path : candidates) {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* why = ::dlerror();
      tried += "\n  " + path + ": " + (why ? why : "cannot load");
      continue;
    }
    if (auto fn = reinterpret_cast<Fn>(::dlsym(h, entry))) return fn;
    tried += "\n  " + path + ": no " + entry;
  }
  return fail(ErrorCode::kUnsupported, what + ", not found:" + tried);
}

}  // namespace ota::net
