#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"
#include "ota/release/pkcs11.hpp"

namespace ota::trust {

Result<std::vector<keys::KeyId>> sign_with_keys(std::string_view type, ByteSpan body,
                                                const std::vector<std::string>& key_paths,
                                                const PassphraseSource& passphrase,
                                                std::vector<SignatureEntry>& into, const KeyFilter& filter) {
  std::vector<keys::KeyId> added;
  if (key_paths.empty()) return added;
  std::optional<std::string> pass;
  if (passphrase) {
    OTA_TRY_ASSIGN(pass, passphrase());
  }
  // Wiped on every way out.
  struct Wipe {
    std::optional<std::string>& p;
    ~Wipe() {
      if (p) keys::wipe(p->data(), p->size());
    }
  } wipe{pass};
  std::optional<std::string_view> pv;
  if (pass) pv = *pass;
  const Bytes message = signing_message(type, body);
  for (const auto& path : key_paths) {
    if (pkcs11::is_uri(path)) {
      // A key inside a token (an HSM): it signs there (ota/release/pkcs11.hpp).
      OTA_TRY_ASSIGN(auto token, pkcs11::open(path));
      if (filter) {
        OTA_TRY_ASSIGN(bool sign, filter(path, token->public_key()));
        if (!sign) continue;
      }
      OTA_TRY_ASSIGN(auto sig, token->sign(message));
      into.push_back({token->public_key().id(), sig});
      added.push_back(token->public_key().id());
      continue;
    }
    OTA_TRY_ASSIGN(auto key, keys::load_secret(path, pv));
    if (filter) {
      OTA_TRY_ASSIGN(bool sign, filter(path, key.public_key()));
      if (!sign) continue;
    }
    into.push_back({key.public_key().id(), key.sign(message)});
    added.push_back(key.public_key().id());
  }
  return added;
}

}  // namespace ota::trust
