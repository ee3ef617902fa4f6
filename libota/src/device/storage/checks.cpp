#include "device/storage/checks.hpp"

namespace ota::storage::detail {

namespace {

std::string range_message(std::string_view verb, std::uint64_t size, std::uint64_t offset, std::size_t len,
                          std::string_view what) {
  return std::string(verb) + " of " + std::to_string(len) + " bytes at offset " + std::to_string(offset) +
         " is past the end of " + std::string(what) + " (" + std::to_string(size) + " bytes)";
}

bool in_range(std::uint64_t size, std::uint64_t offset, std::size_t len) {
  return offset <= size && len <= size - offset;
}

constexpr std::string_view kTempInfix = ".tmp.";
constexpr std::size_t kTempHexDigits = 8;
constexpr std::size_t kMaxNameLength = 64;

}  // namespace

Status check_read(std::uint64_t size, std::uint64_t offset, std::size_t len, std::string_view what) {
  if (in_range(size, offset, len)) return ok();
  return fail(ErrorCode::kIo, range_message("read", size, offset, len, what));
}

Status check_write(std::uint64_t size, std::uint64_t offset, std::size_t len, std::string_view what) {
  if (in_range(size, offset, len)) return ok();
  return fail(ErrorCode::kLimitExceeded, range_message("write", size, offset, len, what));
}

bool is_temp_name(std::string_view name) {
  if (name.size() < kTempInfix.size() + kTempHexDigits) return false;
  std::string_view tail = name.substr(name.size() - kTempHexDigits);
  for (char c : tail)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return name.substr(name.size() - kTempHexDigits - kTempInfix.size(), kTempInfix.size()) == kTempInfix;
}

Status check_record_name(std::string_view name) {
  auto bad = [&](const char* why) {
    return fail(ErrorCode::kUsage, "invalid record name '" + std::string(name) + "': " + why);
  };
  if (name.empty() || name.size() > kMaxNameLength) return bad("must be 1 to 64 characters");
  for (char c : name) {
    bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                   c == '_' || c == '-';
    if (!allowed) return bad("only A-Z a-z 0-9 . _ - are allowed");
  }
  if (name == "." || name == "..") return bad("'.' and '..' name directories");
  if (is_temp_name(name)) return bad("names ending in .tmp.<8 hex digits> are reserved for temporary files");
  return ok();
}

}  // namespace ota::storage::detail
