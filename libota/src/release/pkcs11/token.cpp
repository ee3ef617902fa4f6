// The PKCS#11 module (libota-pkcs11.so): p11-kit parses the RFC 7512 URI and
// loads the token's module; the token signs with CKM_EDDSA
// (ota/release/pkcs11.hpp has the contract).
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>
#include <sodium.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "release/pkcs11/pkcs11_module.hpp"

namespace ota::pkcs11 {
namespace {

std::string rv_text(CK_RV rv) {
  const char* m = p11_kit_strerror(rv);
  return m ? std::string(m) : "error " + std::to_string(rv);
}

// Ed25519's curve as CKA_EC_PARAMS: the PrintableString "edwards25519"
// (PKCS#11 3.0 §2.3.10, what SoftHSM2 writes) or the OID 1.3.101.112.
bool is_ed25519_params(const std::vector<CK_BYTE>& p) {
  static const CK_BYTE printable[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};
  static const CK_BYTE oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
  return (p.size() == sizeof printable && std::memcmp(p.data(), printable, sizeof printable) == 0) ||
         (p.size() == sizeof oid && std::memcmp(p.data(), oid, sizeof oid) == 0);
}

class Token final : public TokenKey {
 public:
  ~Token() override { close(); }

  Status open(const std::string& text) {
    uri_ = p11_kit_uri_new();
    if (!uri_) return fail(ErrorCode::kOutOfMemory, "pkcs11: out of memory");
    if (const int rc = p11_kit_uri_parse(text.c_str(), P11_KIT_URI_FOR_ANY, uri_); rc != P11_KIT_URI_OK)
      return fail(ErrorCode::kUsage, std::string("pkcs11: not a PKCS#11 URI (RFC 7512): ") + p11_kit_uri_message(rc));
    if (const char* path = p11_kit_uri_get_module_path(uri_)) {
      module_ = p11_kit_module_load(path, 0);
      if (!module_) return fail(ErrorCode::kIo, std::string("pkcs11: cannot load the module ") + path + ": " + p11_kit_message());
    } else {
      module_ = p11_kit_module_load("p11-kit-proxy.so", 0);
      if (!module_) return fail(ErrorCode::kIo, "pkcs11: no module-path in the URI, and p11-kit's proxy cannot be loaded");
    }
    if (const CK_RV rv = p11_kit_module_initialize(module_); rv != CKR_OK)
      return fail(ErrorCode::kIo, "pkcs11: the module did not initialize: " + rv_text(rv));
    initialized_ = true;
    OTA_TRY(open_session());
    OTA_TRY(login());
    OTA_TRY(find_keys());
    return ok();
  }

  const keys::PublicKey& public_key() const override { return public_; }

  Result<keys::Signature> sign(ByteSpan message) override {
    CK_MECHANISM mech{CKM_EDDSA, nullptr, 0};
    if (const CK_RV rv = module_->C_SignInit(session_, &mech, private_); rv != CKR_OK) {
      if (rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID)
        return fail(ErrorCode::kUnsupported, "pkcs11: the token cannot sign with CKM_EDDSA");
      return fail(ErrorCode::kIo, "pkcs11: C_SignInit: " + rv_text(rv));
    }
    keys::Signature sig{};
    CK_ULONG len = sig.size();
    const CK_RV rv = module_->C_Sign(session_, const_cast<CK_BYTE_PTR>(message.data()), message.size(), sig.data(), &len);
    if (rv != CKR_OK) return fail(ErrorCode::kIo, "pkcs11: C_Sign: " + rv_text(rv));
    if (len != sig.size()) return fail(ErrorCode::kUnsupported, "pkcs11: the token's signature is not 64 bytes");
    if (crypto_sign_verify_detached(sig.data(), message.data(), message.size(), public_.bytes.data()) != 0)
      return fail(ErrorCode::kBadSignature,
                  "pkcs11: the token's signature does not verify under its public key (do the objects match?)");
    return sig;
  }

 private:
  Status open_session() {
    CK_ULONG n = 0;
    if (const CK_RV rv = module_->C_GetSlotList(CK_TRUE, nullptr, &n); rv != CKR_OK)
      return fail(ErrorCode::kIo, "pkcs11: C_GetSlotList: " + rv_text(rv));
    std::vector<CK_SLOT_ID> slots(n);
    if (n > 0) {
      if (const CK_RV rv = module_->C_GetSlotList(CK_TRUE, slots.data(), &n); rv != CKR_OK)
        return fail(ErrorCode::kIo, "pkcs11: C_GetSlotList: " + rv_text(rv));
      slots.resize(n);
    }
    std::vector<CK_SLOT_ID> matching;
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info{};
      if (module_->C_GetTokenInfo(s, &info) != CKR_OK) continue;
      if (p11_kit_uri_match_token_info(uri_, &info) == 1) {
        matching.push_back(s);
        if (matching.size() == 1) token_flags_ = info.flags;
      }
    }
    if (matching.empty()) return fail(ErrorCode::kUsage, "pkcs11: no token matches the URI");
    if (matching.size() > 1)
      return fail(ErrorCode::kUsage, "pkcs11: " + std::to_string(matching.size()) + " tokens match the URI (name one with token=)");
    if (const CK_RV rv = module_->C_OpenSession(matching.front(), CKF_SERIAL_SESSION, nullptr, nullptr, &session_);
        rv != CKR_OK)
      return fail(ErrorCode::kIo, "pkcs11: C_OpenSession: " + rv_text(rv));
    has_session_ = true;
    return ok();
  }

  Status login() {
    std::string pin;
    struct Wipe {
      std::string& p;
      ~Wipe() { sodium_memzero(p.data(), p.size()); }
    } wipe{pin};
    bool have_pin = false;
    if (const char* source = p11_kit_uri_get_pin_source(uri_)) {
      std::string path = source;
      if (path.rfind("file:", 0) == 0) path = path.substr(5);
      std::ifstream in(path);
      if (!in || !std::getline(in, pin)) return fail(ErrorCode::kIo, "pkcs11: cannot read the PIN from " + path);
      have_pin = true;
    } else if (const char* value = p11_kit_uri_get_pin_value(uri_)) {
      pin = value;
      have_pin = true;
    }
    if (!have_pin && !(token_flags_ & CKF_LOGIN_REQUIRED)) return ok();
    const CK_RV rv = module_->C_Login(session_, CKU_USER, have_pin ? reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()) : nullptr,
                                      have_pin ? pin.size() : 0);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_EXPIRED || rv == CKR_PIN_LOCKED)
      return fail(ErrorCode::kBadPassphrase, "pkcs11: the token refused the PIN (" + rv_text(rv) + ")");
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
      return fail(ErrorCode::kIo, "pkcs11: C_Login: " + rv_text(rv) + (have_pin ? "" : " (no pin-source in the URI)"));
    return ok();
  }

  // The objects of class `cls` the URI's attributes name.
  Result<std::vector<CK_OBJECT_HANDLE>> find(CK_OBJECT_CLASS cls) {
    CK_ULONG n = 0;
    CK_ATTRIBUTE* attrs = p11_kit_uri_get_attributes(uri_, &n);
    std::vector<CK_ATTRIBUTE> tmpl;
    for (CK_ULONG i = 0; i < n; ++i)
      if (attrs[i].type != CKA_CLASS) tmpl.push_back(attrs[i]);
    tmpl.push_back({CKA_CLASS, &cls, sizeof cls});
    if (const CK_RV rv = module_->C_FindObjectsInit(session_, tmpl.data(), tmpl.size()); rv != CKR_OK)
      return fail(ErrorCode::kIo, "pkcs11: C_FindObjectsInit: " + rv_text(rv));
    std::vector<CK_OBJECT_HANDLE> out(2);
    CK_ULONG found = 0;
    const CK_RV rv = module_->C_FindObjects(session_, out.data(), out.size(), &found);
    module_->C_FindObjectsFinal(session_);
    if (rv != CKR_OK) return fail(ErrorCode::kIo, "pkcs11: C_FindObjects: " + rv_text(rv));
    out.resize(found);
    return out;
  }

  Result<std::vector<CK_BYTE>> attribute(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, const char* name) {
    CK_ATTRIBUTE a{type, nullptr, 0};
    if (const CK_RV rv = module_->C_GetAttributeValue(session_, h, &a, 1); rv != CKR_OK || a.ulValueLen > 4096)
      return fail(ErrorCode::kUnsupported, std::string("pkcs11: the public key has no readable ") + name);
    std::vector<CK_BYTE> v(a.ulValueLen);
    a.pValue = v.data();
    if (const CK_RV rv = module_->C_GetAttributeValue(session_, h, &a, 1); rv != CKR_OK)
      return fail(ErrorCode::kUnsupported, std::string("pkcs11: the public key has no readable ") + name);
    v.resize(a.ulValueLen);
    return v;
  }

  Status find_keys() {
    OTA_TRY_ASSIGN(auto priv, find(CKO_PRIVATE_KEY));
    if (priv.empty()) return fail(ErrorCode::kUsage, "pkcs11: no private key in the token matches the URI");
    if (priv.size() > 1)
      return fail(ErrorCode::kUsage, "pkcs11: several private keys match the URI (name one with object= or id=)");
    private_ = priv.front();
    CK_KEY_TYPE type = 0;
    CK_ATTRIBUTE t{CKA_KEY_TYPE, &type, sizeof type};
    if (module_->C_GetAttributeValue(session_, private_, &t, 1) != CKR_OK || type != CKK_EC_EDWARDS)
      return fail(ErrorCode::kUnsupported, "pkcs11: the key is not an Edwards-curve (Ed25519) key");
    OTA_TRY_ASSIGN(auto pub, find(CKO_PUBLIC_KEY));
    if (pub.size() != 1)
      return fail(ErrorCode::kUsage, "pkcs11: the token needs exactly one public key object with the URI's attributes (found " +
                                         std::to_string(pub.size()) + ")");
    OTA_TRY_ASSIGN(auto params, attribute(pub.front(), CKA_EC_PARAMS, "CKA_EC_PARAMS"));
    if (!is_ed25519_params(params)) return fail(ErrorCode::kUnsupported, "pkcs11: the key's curve is not Ed25519");
    OTA_TRY_ASSIGN(auto point, attribute(pub.front(), CKA_EC_POINT, "CKA_EC_POINT"));
    // A DER OCTET STRING of the 32 bytes (what PKCS#11 3.0 asks for), or the bytes alone.
    const CK_BYTE* bytes = nullptr;
    if (point.size() == 34 && point[0] == 0x04 && point[1] == 0x20) bytes = point.data() + 2;
    else if (point.size() == 32) bytes = point.data();
    if (!bytes) return fail(ErrorCode::kUnsupported, "pkcs11: the public key's CKA_EC_POINT is not an Ed25519 point");
    std::memcpy(public_.bytes.data(), bytes, 32);
    return ok();
  }

  void close() {
    if (has_session_) module_->C_CloseSession(session_);
    has_session_ = false;
    if (initialized_) p11_kit_module_finalize(module_);
    initialized_ = false;
    if (module_) p11_kit_module_release(module_);
    module_ = nullptr;
    if (uri_) p11_kit_uri_free(uri_);
    uri_ = nullptr;
  }

  P11KitUri* uri_ = nullptr;
  CK_FUNCTION_LIST* module_ = nullptr;
  bool initialized_ = false;
  bool has_session_ = false;
  CK_SESSION_HANDLE session_ = 0;
  CK_FLAGS token_flags_ = 0;
  CK_OBJECT_HANDLE private_ = 0;
  keys::PublicKey public_;
};

}  // namespace
}  // namespace ota::pkcs11

// The module's one entry point (pkcs11_module.hpp).
extern "C" __attribute__((visibility("default"))) int ota_pkcs11_open_v1(const ota::pkcs11::ModuleArgs* a) {
  try {
    if (sodium_init() < 0) {
      *a->error = ota::Error{ota::ErrorCode::kInternal, "pkcs11: libsodium did not initialize"};
      return 1;
    }
    auto t = std::make_unique<ota::pkcs11::Token>();
    if (auto st = t->open(*a->uri); !st) {
      *a->error = st.error();
      return 1;
    }
    *a->out = std::move(t);
    return 0;
  } catch (const std::exception& e) {
    *a->error = ota::Error{ota::ErrorCode::kInternal, std::string("pkcs11: ") + e.what()};
    return 1;
  }
}
