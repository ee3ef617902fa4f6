// How the front ends (ota, ota-patch, ota-agent) write an error: one shape,
// written here and nowhere else (docs/error-codes.md, "In the CLI";
// schemas/error-result.schema.json).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"

namespace ota::front_end {

// The exit code of a command that fails with e: its code's pinned value
// (kInternal for kOk, which is no failure).
inline int exit_code(const Error& e) {
  const int code = static_cast<int>(e.code);
  return code == 0 ? static_cast<int>(ErrorCode::kInternal) : code;
}

// The error as JSON: {"code": exit_code(e), "name": "<error_code_name>",
// "message": "..."}; without the message when with_message is false (a
// failed check in `ota verify --json`, whose message is the document's).
inline nlohmann::ordered_json error_json(const Error& e, bool with_message = true) {
  nlohmann::ordered_json j;
  j["code"] = exit_code(e);
  j["name"] = std::string(error_code_name(e.code));
  if (with_message) j["message"] = e.message;
  return j;
}

// The document a command prints on stdout under --json when it fails:
// {"ok": false, "command": COMMAND, "error": error_json(e)}.
inline nlohmann::ordered_json error_document(std::string_view command, const Error& e) {
  nlohmann::ordered_json doc;
  doc["ok"] = false;
  doc["command"] = std::string(command);
  doc["error"] = error_json(e);
  return doc;
}

}  // namespace ota::front_end
