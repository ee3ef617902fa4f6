// Internal: the boundary between libota (http_server.cpp) and the
// libmicrohttpd module (httpd.cpp, libota-httpd.so), built from this tree by
// the same compiler, so C++ types cross it; the server is deleted through its
// virtual destructor, which lives in the module.
#pragma once

#include "ota/fleet/http_server.hpp"

namespace ota::httpd {

struct ModuleArgs {
  const ListenAddress* address;
  const Handler* handler;
  Server** out;  // set on success (0)
  Error* error;  // set on failure (non-zero)
};
using ServeFn = int (*)(const ModuleArgs*);
inline constexpr char kModuleEntry[] = "ota_httpd_serve_v1";

}  // namespace ota::httpd
