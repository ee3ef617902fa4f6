// Checks shared by every Environment back-end before anything is stored.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "ota/core/error.hpp"

namespace ota::boot {

using Changes = std::map<std::string, std::optional<std::string>>;

// kUsage for a name that is empty or holds '=', NUL or '\n', and for a value
// that holds NUL (or '\n' when newline_in_value is false).
Status check_changes(const Changes& changes, bool newline_in_value);

}  // namespace ota::boot
