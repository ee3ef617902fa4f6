// The storage suites' helpers (storage_test, storage_sim_test).
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <csignal>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "ota/core/io.hpp"
#include "ota/device/storage.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/random.hpp"
#include "support/temp_dir.hpp"

namespace ota::storage {
namespace {  // each test file its own copy

using test::mode_of;
using test::ScopedUmask;

using test::random_bytes;
using test::TempDir;

inline constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Reads a whole BlockStore.
inline Bytes read_all(const BlockStore& bank) {
  Bytes out(static_cast<std::size_t>(bank.size()));
  auto st = bank.read_at(0, out);
  EXPECT_TRUE(st) << st.error().message;
  return out;
}

inline std::unique_ptr<BlockStore> open_bank(const std::string& path) {
  auto bank = open_file_bank(path);
  EXPECT_TRUE(bank) << bank.error().message;
  return bank ? std::move(*bank) : nullptr;
}

inline std::unique_ptr<StateStore> open_dir(const std::string& path) {
  auto store = open_state_dir(path);
  EXPECT_TRUE(store) << store.error().message;
  return store ? std::move(*store) : nullptr;
}

// Record names a state store must refuse.
inline const std::vector<std::string>& bad_names() {
  static const std::vector<std::string> names = {
      "",      "../x", "a/b",  "/etc/passwd", ".", "..", "..a/../b", "a b", "a\\b", std::string("a\0b", 3),
      "é",     std::string(65, 'x'), "x.tmp.0123abcd", "state.tmp.deadbeef"};
  return names;
}

}  // namespace
}  // namespace ota::storage
