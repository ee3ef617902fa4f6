// Internal: the boundary between libota (pkcs11.cpp) and the p11-kit module
// (token.cpp, libota-pkcs11.so), built from this tree by the same compiler, so
// C++ types cross it; the key is deleted through its virtual destructor, which
// lives in the module.
#pragma once

#include <memory>
#include <string>

#include "ota/release/pkcs11.hpp"

namespace ota::pkcs11 {

struct ModuleArgs {
  const std::string* uri;
  std::unique_ptr<TokenKey>* out;  // set on success (0)
  Error* error;                    // set on failure (non-zero)
};
using OpenFn = int (*)(const ModuleArgs*);
inline constexpr char kModuleEntry[] = "ota_pkcs11_open_v1";

}  // namespace ota::pkcs11
