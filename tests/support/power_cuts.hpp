// The cut points of the power-cut enumerations (agent_test, daemon_test,
// spool_test): a run of `total` writes is cut at each write in turn, in each
// loss mode asked for.
//
// OTA_POWERCUT_STRIDE=k (read here only) thins them out for a slower build:
// unset, empty or 1 visits every write (the release run of scripts/test.sh,
// the complete proof); k >= 2 visits, per loss mode, the first and the last
// kAlwaysCut writes and every k-th write between them, shifted by one write
// per mode so the modes together cover different writes. The subset is a
// function of k and the write count alone (deterministic); scripts/test.sh sets
// it for the AddressSanitizer/UBSan run, whose purpose is memory and UB errors.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "ota/testing/power_cut.hpp"

namespace ota::test {

inline const std::vector<storage::LossMode> kEveryLossMode = {
    storage::LossMode::kDropUnsynced, storage::LossMode::kRandomSubset, storage::LossMode::kTornSector};

// Writes at each end of a run that every stride visits.
inline constexpr std::uint64_t kAlwaysCut = 3;

// OTA_POWERCUT_STRIDE as a number (1: every write); anything but digits fails
// the calling test and counts as 1.
inline std::uint64_t powercut_stride() {
  const char* v = std::getenv("OTA_POWERCUT_STRIDE");
  if (!v || !*v) return 1;
  char* end = nullptr;
  const unsigned long long k = std::strtoull(v, &end, 10);
  if (*end != '\0' || k == 0 || v[0] == '-') {
    ADD_FAILURE() << "OTA_POWERCUT_STRIDE=" << v << ": expected a positive whole number";
    return 1;
  }
  return k;
}

// The 1-based writes of a run of `total` to cut at with stride k; `shift`
// moves the stride (the loss mode's index in for_each_cut).
inline std::vector<std::uint64_t> cut_points(std::uint64_t total, std::uint64_t shift = 0,
                                             std::uint64_t k = powercut_stride()) {
  std::vector<std::uint64_t> points;
  for (std::uint64_t n = 1; n <= total; ++n) {
    if (k == 1 || n <= kAlwaysCut || n + kAlwaysCut > total || (n + shift) % k == 0) points.push_back(n);
  }
  return points;
}

struct Cut {
  std::uint64_t n;         // the write that fails first
  storage::LossMode mode;  // what survives of the unsynced writes
  std::string where;       // "cut at write n of total (mode m)", for failure messages
};

// Calls body(const Cut&) for each mode of `modes`, then each of its cut
// points; stops after the first call that leaves the test failed (its message
// names the cut). The property "powercut_stride" records a thinned run.
template <class Body>
void for_each_cut(std::uint64_t total, const std::vector<storage::LossMode>& modes, Body&& body) {
  const std::uint64_t k = powercut_stride();
  if (k > 1) ::testing::Test::RecordProperty("powercut_stride", std::to_string(k));
  for (std::size_t m = 0; m < modes.size(); ++m) {
    for (std::uint64_t n : cut_points(total, m, k)) {
      Cut cut{n, modes[m],
              "cut at write " + std::to_string(n) + " of " + std::to_string(total) + " (mode " +
                  std::to_string(static_cast<int>(modes[m])) + ")"};
      body(static_cast<const Cut&>(cut));
      if (::testing::Test::HasFailure()) return;
    }
  }
}

template <class Body>
void for_each_cut(std::uint64_t total, Body&& body) {
  for_each_cut(total, kEveryLossMode, std::forward<Body>(body));
}

}  // namespace ota::test
