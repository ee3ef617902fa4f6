// The in-memory bootloader environment of the unit tests.
#include "ota/testing/memory_environment.hpp"

#include "device/boot/changes.hpp"

namespace ota::boot {

Status MemoryEnvironment::write(const Changes& changes) {
  OTA_TRY(check_changes(changes, true));
  if (changes.empty()) return ok();
  for (const auto& [name, value] : changes) {
    if (value) {
      vars[name] = *value;
    } else {
      vars.erase(name);
    }
  }
  ++stores;
  return ok();
}

}  // namespace ota::boot
