// The golden fixtures (tests/data/golden): a small release made by the real
// build path, the same bundle tampered in each region, a root chain and a
// campaign document, all from fixed keys, times and images, so that every
// run produces the same bytes. scripts/make-golden.sh writes them;
// tests/unit/golden_test.cpp reads the committed files and checks that this
// generator still reproduces them byte for byte.
#pragma once

#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/release/keys.hpp"

namespace ota::golden {

struct File {
  std::string name;
  Bytes bytes;
};

// Every fixture, B2SUMS last (`b2sum -l 256 -c B2SUMS` checks the others).
// scratch_dir: an existing directory for the images the build path reads.
Result<std::vector<File>> generate(const std::string& scratch_dir);

// Fixture key n (fixed seed): 0 and 1 are root 1's keys, 1 and 2 root 2's
// (0 revoked), 1 signs the release and the campaign, 3 is the campaign's
// controller key.
Result<keys::SecretKey> fixture_key(std::uint8_t n);

// The fixture times: made at kCreated, checked at kNow, all expiring in 2099.
inline constexpr const char* kCreated = "2026-01-01T00:00:00Z";
inline constexpr const char* kNow = "2026-06-01T00:00:00Z";
inline constexpr const char* kHardware = "golden-board";

}  // namespace ota::golden
