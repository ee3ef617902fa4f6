// Internal: where libota looks for its optional modules (libota-fetch-http.so,
// libota-mqtt.so) and how it loads one. Loaded once, never unloaded.
//
// Where, in order:
// - $ENV_VAR (OTA_FETCH_HTTP_MODULE, OTA_MQTT_MODULE): whoever sets the
//   environment already chooses what the process runs (LD_PRELOAD). Read with
//   secure_getenv, so a set-id process ignores it.
// - A binary that runs from the build tree (its /proc/self/exe lies below the
//   CMake build directory compiled in as OTA_BUILD_DIR): the module the same
//   build made, then the places below.
// - Any other binary (installed, relocated, staged): never a build-tree path.
//   The same executable file is both (`cmake --install` copies it), so no
//   compile-time flag can tell them apart: the decision is taken at run time
//   from where the executable is. First EXE_DIR/../LIBDIR/ota/NAME, the
//   binary's own install tree (for /usr/bin/ota that is the install path; for
//   a relocated install or DESTDIR staging it is the module built with this
//   binary, and it is as trustworthy as the binary next to it), then the
//   configured install path.
// A build directory left writable after the build could otherwise plant code
// in an installed agent (security review, issue 14).
#pragma once

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "ota/core/error.hpp"

namespace ota::net {

// Everything the search depends on, so the order can be tested without a
// process of each kind.
struct ModuleSearch {
  std::string env;           // the override variable's value; empty: unset
  std::string exe;           // the running executable, canonical; empty: unknown
  std::string build_dir;     // the CMake build directory, canonical
  std::string build_path;    // the module where that build put it
  std::string install_path;  // the module where `cmake --install` puts it
  std::string relative_dir;  // LIBDIR/ota, relative to the install prefix
};

// Whether path lies strictly below dir (both canonical; "/b/build2" is not below "/b/build").
inline bool is_below(const std::string& path, const std::string& dir) {
  if (dir.empty() || dir == "/" || path.size() <= dir.size()) return false;
  const bool slash = dir.back() == '/';
  return path.compare(0, dir.size(), dir) == 0 && (slash || path[dir.size()] == '/');
}

// The paths to try, in order (see the top of this file).
inline std::vector<std::string> module_candidates(const ModuleSearch& s) {
  std::vector<std::string> out;
  if (!s.env.empty()) out.push_back(s.env);
  const bool from_build_tree = is_below(s.exe, s.build_dir);
  if (from_build_tree && !s.build_path.empty()) out.push_back(s.build_path);
  const auto slash = s.exe.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string name = s.install_path.substr(s.install_path.find_last_of('/') + 1);
    out.push_back(s.exe.substr(0, slash) + "/../" + s.relative_dir + "/" + name);
  }
  out.push_back(s.install_path);
  return out;
}

// The running executable (/proc/self/exe, which the kernel resolves); empty
// when unknown.
inline std::string self_exe() {
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  return n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string();
}

// path with symbolic links resolved (the build directory may be reached
// through one); path itself when it does not exist (any more).
inline std::string canonical_or_same(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return path;
  std::string out(real);
  std::free(real);
  return out;
}

// This process's search for a module.
inline ModuleSearch module_search(const char* env_var, const std::string& build_dir, const std::string& build_path,
                                  const std::string& install_path, const std::string& relative_dir) {
  ModuleSearch s;
  if (const char* env = ::secure_getenv(env_var); env && *env) s.env = env;
  s.exe = self_exe();
  s.build_dir = canonical_or_same(build_dir);
  s.build_path = build_path;
  s.install_path = install_path;
  s.relative_dir = relative_dir;
  return s;
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
