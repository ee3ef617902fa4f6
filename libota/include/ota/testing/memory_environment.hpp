// Test support (not part of libota, not installed): a bootloader
// environment in memory (ota/device/boot.hpp's Environment) that counts its
// stores, for unit tests and the fleet simulator.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "ota/device/boot.hpp"

namespace ota::boot {

// Checks names and values as every back-end does (kUsage, nothing stored);
// an empty change set stores nothing.
class MemoryEnvironment final : public Environment {
 public:
  Result<Vars> read() override { return vars; }
  Status write(const std::map<std::string, std::optional<std::string>>& changes) override;
  Vars vars;
  std::uint64_t stores = 0;
};

}  // namespace ota::boot
