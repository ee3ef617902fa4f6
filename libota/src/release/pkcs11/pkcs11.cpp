// The loader of the PKCS#11 module (ota/release/pkcs11.hpp).
#include "ota/release/pkcs11.hpp"

#include <mutex>

#include "core/module_path.hpp"
#include "release/pkcs11/pkcs11_module.hpp"

namespace ota::pkcs11 {

bool is_uri(std::string_view key) { return key.substr(0, 7) == "pkcs11:"; }

namespace {

Result<OpenFn> load_pkcs11_module() {
  static std::mutex m;
  static OpenFn entry = nullptr;
  std::lock_guard<std::mutex> lock(m);
  if (entry) return entry;
  OTA_TRY_ASSIGN(auto fn, net::load_module<OpenFn>(
                              net::module_candidates(net::module_search("OTA_PKCS11_MODULE", OTA_BUILD_DIR,
                                                                        OTA_PKCS11_BUILD_PATH, OTA_PKCS11_INSTALL_PATH,
                                                                        OTA_MODULE_RELATIVE_DIR)),
                              kModuleEntry, "signing with a PKCS#11 token needs the libota-pkcs11.so module (p11-kit)"));
  entry = fn;
  return entry;
}

}  // namespace

Result<std::unique_ptr<TokenKey>> open(const std::string& uri) {
  OTA_TRY_ASSIGN(auto fn, load_pkcs11_module());
  std::unique_ptr<TokenKey> key;
  Error e{ErrorCode::kInternal, "pkcs11 module: no result"};
  const ModuleArgs args{&uri, &key, &e};
  if (fn(&args) != 0 || !key) return fail(e);
  return key;
}

}  // namespace ota::pkcs11
