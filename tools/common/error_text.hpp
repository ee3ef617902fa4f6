// error_json.hpp's document, {"ok": false, "command": ..., "error": {"code",
// "name", "message"}}, written without a JSON library for ota-patch. The
// Cli.StaticPatcherAndInProcessPatchAgree test parses both and compares them.
#pragma once

#include <string>
#include <string_view>

#include "json_text.hpp"
#include "ota/core/error.hpp"

namespace ota::front_end {

inline std::string error_document_text(std::string_view command, const Error& e) {
  const int code = static_cast<int>(e.code) == 0 ? static_cast<int>(ErrorCode::kInternal) : static_cast<int>(e.code);
  JsonObject error;
  error.add("code", code).add("name", error_code_name(e.code)).add("message", e.message);
  JsonObject doc;
  doc.add("ok", false).add("command", command).add("error", error);
  return doc.str();
}

}  // namespace ota::front_end
