// A private temporary directory per test, removed with everything in it.
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

#include "ota/core/io.hpp"

namespace ota::test {

class TempDir {
 public:
  // Creates $TMPDIR/ota-test-XXXXXX (or /tmp/...). Throws if it cannot.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory, sorted.
  std::vector<std::string> list() const;

 private:
  std::string path_;
};

// Plain (non-atomic) whole-file helpers for test fixtures; they throw on error.
void write_bytes(const std::string& path, const Bytes& data);
Bytes read_bytes(const std::string& path);
bool file_exists(const std::string& path);

// Sets the process umask and restores it at scope exit.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : saved_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(saved_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t saved_;
};

// The permission bits of a file (07777), or 0 when it cannot be stat'ed.
unsigned mode_of(const std::string& path);

}  // namespace ota::test
