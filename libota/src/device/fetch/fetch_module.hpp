// Internal: the boundary between libota (fetch.cpp) and the HTTP module
// (fetch_http.cpp, libota-fetch-http.so). Both are built from this tree by
// the same compiler, so C++ types cross it; the reader is deleted through
// its virtual destructor, which lives in the module.
#pragma once

#include <string>

#include "ota/device/fetch.hpp"

namespace ota::fetch {

struct ModuleArgs {
  const std::string* url;
  const Options* options;
  SourceReader** out;  // set on success (0)
  Error* error;        // set on failure (non-zero)
};
using OpenFn = int (*)(const ModuleArgs*);
inline constexpr char kModuleEntry[] = "ota_fetch_http_open_v1";

}  // namespace ota::fetch
