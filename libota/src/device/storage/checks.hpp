// Checks shared by the real stores (bank.cpp, state_dir.cpp) and the
// simulated ones (simulated.cpp), so a test fake refuses what a device refuses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"

namespace ota::storage::detail {

// kIo when [offset, offset+len) is not inside a store of `size` bytes
// (the error Source::read_at implementations give).
Status check_read(std::uint64_t size, std::uint64_t offset, std::size_t len, std::string_view what);

// kLimitExceeded when [offset, offset+len) is not inside a store of `size` bytes.
Status check_write(std::uint64_t size, std::uint64_t offset, std::size_t len, std::string_view what);

// True for the names AtomicFileWriter gives its temporary files:
// "<anything>.tmp.<8 lowercase hex digits>".
bool is_temp_name(std::string_view name);

// kUsage unless name is a valid record name: 1..64 of [A-Za-z0-9._-], not "."
// or "..", and not a temporary-file name (is_temp_name).
Status check_record_name(std::string_view name);

}  // namespace ota::storage::detail
