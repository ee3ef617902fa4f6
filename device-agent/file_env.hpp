// A boot environment kept as a JSON file (written atomically): the
// environment of the bootloader simulator, for demos and tests on a machine
// without U-Boot or GRUB.
#pragma once

#include <memory>
#include <string>

#include "ota/device/boot.hpp"

namespace ota::agent_cli {
Result<std::unique_ptr<boot::Environment>> open_file_env(const std::string& path);
}
