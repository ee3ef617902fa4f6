// Ed25519 signing with a key that lives in a PKCS#11 token (an HSM, a
// smart card, SoftHSM2), named by an RFC 7512 URI wherever a secret key file
// is taken (ota sign, ota build, ota root sign, ota publish: sign_with_keys),
// and wherever a public key file is (keys::load_public: ota root init --key):
//
//   pkcs11:token=LABEL;object=LABEL[;id=%01]?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path/pin
//
// Contract:
// - The private key never leaves the token: the token signs (CKM_EDDSA, the
//   pure Ed25519 of RFC 8032, as libsodium's) and only the 64-byte signature
//   comes back. The public key is read from the token's public key object
//   with the same attributes (CKA_EC_POINT), so the key id is known before
//   anything is signed; every signature is checked against it before it is
//   returned (a token whose public and private objects do not match is an
//   error, never a bad signature in a bundle).
// - The URI must name exactly one private key of type CKK_EC_EDWARDS on
//   Ed25519 (token and object attributes as RFC 7512 defines them; id=,
//   object=, token=, manufacturer=, serial=, model=, library-...=). None or
//   several: kUsage naming what matched.
// - The PKCS#11 module is the URI's module-path; without one, the modules
//   p11-kit is configured with (p11-kit-proxy). The PIN is the URI's
//   pin-source (file:PATH or a bare path: its first line) or pin-value; none
//   logs in only when the token needs it, with no PIN (a protected
//   authentication path). PINs never appear in errors or logs.
// - Errors: kUsage (a malformed URI, nothing or several matching), kIo (the
//   module cannot be loaded, the PIN file cannot be read), kBadPassphrase (the
//   token refused the PIN), kUnsupported (not an Ed25519 key, or the module
//   cannot sign with CKM_EDDSA), kBadSignature (the token's signature does not
//   verify under its own public key).
// - p11-kit lives in a module (libota-pkcs11.so) that only signing with a
//   token loads; the agent never maps it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"
#include "ota/release/keys.hpp"

namespace ota::pkcs11 {

// Whether a --key argument is a PKCS#11 URI (it starts with "pkcs11:").
bool is_uri(std::string_view key);

// An open session on the token, logged in when a PIN was given.
class TokenKey {
 public:
  virtual ~TokenKey() = default;
  virtual const keys::PublicKey& public_key() const = 0;
  // The token's Ed25519 signature of message, verified before it is returned.
  virtual Result<keys::Signature> sign(ByteSpan message) = 0;
};

Result<std::unique_ptr<TokenKey>> open(const std::string& uri);

}  // namespace ota::pkcs11
