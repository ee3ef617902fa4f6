#include "ota/release/keys.hpp"
#include "ota/release/pkcs11.hpp"

#include <sodium.h>

#include <cctype>
#include <cstring>
#include <memory>

#include "core/json.hpp"
#include "core/sodium.hpp"
#include "release/sign/secret_text.hpp"

namespace ota::keys {

namespace {

constexpr std::string_view kPublicFormat = "ota-public-key-v1";
constexpr std::string_view kSecretFormat = "ota-secret-key-v1";
constexpr std::size_t kMaxKeyFile = 4096;
constexpr std::uint64_t kMaxOpsLimit = 64;
constexpr std::uint64_t kMaxMemLimit = 4ull << 30;

// Wipes a string's bytes before it is freed.
struct Wiped {
  std::string s;
  ~Wiped() { sodium_memzero(s.data(), s.size()); }
};

constexpr std::string_view kSeedPlaceholder = "0000000000000000000000000000000000000000000000000000000000000000";

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The end of the string literal opening at text[open] (the index of its
// closing quote), or npos when unterminated.
std::size_t literal_end(const std::string& text, std::size_t open) {
  for (std::size_t i = open + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i;
    }
  }
  return std::string::npos;
}

Result<Bytes> hex_bytes(const std::string& hex, std::size_t n, std::string_view what) {
  if (hex.size() != 2 * n) return fail(ErrorCode::kMalformed, std::string(what) + " has the wrong length");
  Bytes out(n);
  std::size_t len = 0;
  if (sodium_hex2bin(out.data(), n, hex.data(), hex.size(), nullptr, &len, nullptr) != 0 || len != n)
    return fail(ErrorCode::kMalformed, std::string(what) + " is not hex");
  return out;
}

}  // namespace

namespace detail {

int take_hex_member(std::string& text, std::string_view key, char* out, std::size_t out_cap, std::size_t* out_len) {
  int found = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '"') {
      ++i;
      continue;
    }
    const std::size_t close = literal_end(text, i);
    if (close == std::string::npos) return found;  // nlohmann reports it
    const bool named = std::string_view(text).substr(i + 1, close - i - 1) == key;
    std::size_t j = close + 1;
    if (named) {
      while (j < text.size() && is_json_space(text[j])) ++j;
      if (j < text.size() && text[j] == ':') {
        ++j;
        while (j < text.size() && is_json_space(text[j])) ++j;
        if (j < text.size() && text[j] == '"') {
          const std::size_t vclose = literal_end(text, j);
          if (vclose == std::string::npos) return found;
          const std::size_t len = vclose - j - 1;
          bool hex = len <= out_cap;
          for (std::size_t k = j + 1; hex && k < vclose; ++k)
            hex = std::isxdigit(static_cast<unsigned char>(text[k])) != 0;
          if (!hex) {
            sodium_memzero(&text[j + 1], len);  // whatever it was, nlohmann does not get it
            return -1;
          }
          std::memcpy(out, &text[j + 1], len);
          *out_len = len;
          std::memset(&text[j + 1], '0', len);
          ++found;
          j = vclose + 1;
        }
      }
    }
    i = j;
  }
  return found;
}

}  // namespace detail

KeyId PublicKey::id() const { return content_hash(ByteSpan(bytes.data(), bytes.size())); }
std::string PublicKey::id_hex() const { return to_hex(id()); }

bool PublicKey::verify(ByteSpan message, const Signature& sig) const {
  ensure_sodium();
  return crypto_sign_verify_detached(sig.data(), message.data(), message.size(), bytes.data()) == 0;
}

std::optional<KeyId> key_id_from_hex(std::string_view hex) { return digest_from_hex(hex); }

Result<SecretKey> SecretKey::from_seed(ByteSpan seed) {
  ensure_sodium();
  if (seed.size() != crypto_sign_SEEDBYTES) return fail(ErrorCode::kMalformed, "an Ed25519 seed is 32 bytes");
  SecretKey k;
  k.sk_ = static_cast<std::uint8_t*>(sodium_malloc(crypto_sign_SECRETKEYBYTES));
  if (!k.sk_) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory for a secret key");
  crypto_sign_seed_keypair(k.public_.bytes.data(), k.sk_, seed.data());
  return k;
}

Result<SecretKey> SecretKey::generate() {
  ensure_sodium();
  auto* seed = static_cast<std::uint8_t*>(sodium_malloc(crypto_sign_SEEDBYTES));
  if (!seed) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory for a seed");
  randombytes_buf(seed, crypto_sign_SEEDBYTES);
  auto k = from_seed(ByteSpan(seed, crypto_sign_SEEDBYTES));
  sodium_free(seed);
  return k;
}

SecretKey::SecretKey(SecretKey&& o) noexcept : sk_(o.sk_), public_(o.public_) { o.sk_ = nullptr; }
SecretKey& SecretKey::operator=(SecretKey&& o) noexcept {
  if (this != &o) {
    if (sk_) sodium_free(sk_);
    sk_ = o.sk_;
    public_ = o.public_;
    o.sk_ = nullptr;
  }
  return *this;
}
SecretKey::~SecretKey() {
  if (sk_) sodium_free(sk_);
}

Signature SecretKey::sign(ByteSpan message) const {
  Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), sk_);
  return sig;
}

struct SecretKeyAccess {
  static ByteSpan seed(const SecretKey& k) { return ByteSpan(k.sk_, crypto_sign_SEEDBYTES); }
};

std::string encode_public(const PublicKey& key) {
  json::Ordered doc;
  doc["format"] = kPublicFormat;
  doc["type"] = "ed25519";
  doc["keyid"] = key.id_hex();
  doc["public"] = to_hex(ByteSpan(key.bytes.data(), key.bytes.size()));
  return doc.dump(2) + "\n";
}

namespace {

Result<PublicKey> public_of(const json::Object& o) {
  OTA_TRY_ASSIGN(auto type, o.string("type", 32));
  if (type != "ed25519") return fail(ErrorCode::kUnsupported, o.what() + ": key type is not ed25519");
  OTA_TRY_ASSIGN(auto pub, o.string("public", 64));
  OTA_TRY_ASSIGN(auto bytes, hex_bytes(pub, 32, o.what() + ".public"));
  PublicKey k;
  std::memcpy(k.bytes.data(), bytes.data(), 32);
  OTA_TRY_ASSIGN(auto id, o.digest("keyid"));
  if (id != k.id()) return fail(ErrorCode::kMalformed, o.what() + ": keyid does not match the public key");
  return k;
}

}  // namespace

Result<PublicKey> parse_public(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, json::parse_strict(text, kMaxKeyFile, "key file"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "key file"));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kPublicFormat && format != kSecretFormat)
    return fail(ErrorCode::kMalformed, "key file: not an ota key (format is not " + std::string(kPublicFormat) + ")");
  return public_of(o);
}

bool is_sealed(std::string_view text) {
  auto j = json::parse_strict(text, kMaxKeyFile, "secret key file");
  return j && j->is_object() && j->contains("sealed");
}

Result<std::string> encode_secret(const SecretKey& key, std::optional<std::string_view> passphrase,
                                  const SealParams& params) {
  ensure_sodium();
  ByteSpan seed = SecretKeyAccess::seed(key);
  json::Ordered doc;
  doc["format"] = kSecretFormat;
  doc["type"] = "ed25519";
  doc["keyid"] = key.public_key().id_hex();
  doc["public"] = to_hex(ByteSpan(key.public_key().bytes.data(), 32));
  if (!passphrase || passphrase->empty()) {
    // nlohmann writes a placeholder; the digits go straight into the result
    // (sign/secret_text.hpp).
    doc["seed"] = kSeedPlaceholder;
    std::string r = doc.dump(2) + "\n";
    const std::string member = "\"seed\": \"" + std::string(kSeedPlaceholder) + "\"";
    const auto at = r.find(member);
    if (at == std::string::npos) return fail(ErrorCode::kInternal, "secret key encoding: no seed placeholder");
    char digits[2 * crypto_sign_SEEDBYTES + 1];
    sodium_bin2hex(digits, sizeof digits, seed.data(), seed.size());
    std::memcpy(&r[at + member.size() - 1 - kSeedPlaceholder.size()], digits, kSeedPlaceholder.size());
    sodium_memzero(digits, sizeof digits);
    return r;
  }
  std::uint8_t salt[crypto_pwhash_SALTBYTES];
  std::uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  randombytes_buf(salt, sizeof salt);
  randombytes_buf(nonce, sizeof nonce);
  auto* kek = static_cast<std::uint8_t*>(sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES));
  if (!kek) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  if (crypto_pwhash(kek, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, passphrase->data(), passphrase->size(), salt,
                    params.opslimit, params.memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    sodium_free(kek);
    return fail(ErrorCode::kOutOfMemory, "argon2id: not enough memory for the passphrase hash");
  }
  Bytes ct(seed.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long ct_len = 0;
  const auto& pub = key.public_key().bytes;
  crypto_aead_xchacha20poly1305_ietf_encrypt(ct.data(), &ct_len, seed.data(), seed.size(), pub.data(), pub.size(),
                                             nullptr, nonce, kek);
  sodium_free(kek);
  doc["sealed"] = {{"kdf", "argon2id13"},
                   {"opslimit", params.opslimit},
                   {"memlimit", params.memlimit},
                   {"salt", to_hex(ByteSpan(salt, sizeof salt))},
                   {"cipher", "xchacha20poly1305-ietf"},
                   {"nonce", to_hex(ByteSpan(nonce, sizeof nonce))},
                   {"ciphertext", to_hex(ByteSpan(ct.data(), ct_len))}};
  return doc.dump(2) + "\n";
}

Result<SecretKey> parse_secret(std::string_view text, std::optional<std::string_view> passphrase) {
  ensure_sodium();
  if (text.size() > kMaxKeyFile) return fail(json::parse_strict(text, kMaxKeyFile, "secret key file").error());
  // The seed's digits leave the text before nlohmann sees it (sign/secret_text.hpp).
  Wiped masked{};
  masked.s.reserve(kMaxKeyFile);  // never reallocated: one buffer to wipe
  masked.s.assign(text.data(), text.size());
  auto* seed_hex = static_cast<char*>(sodium_malloc(64));
  if (!seed_hex) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  std::unique_ptr<char, void (*)(void*)> seed_hex_guard(seed_hex, sodium_free);
  std::size_t seed_hex_len = 0;
  const int seeds = detail::take_hex_member(masked.s, "seed", seed_hex, 64, &seed_hex_len);
  if (seeds < 0 || seeds > 1) return fail(ErrorCode::kMalformed, "secret key file: seed is not 64 hex digits");
  {
    // An X25519 decryption key (encryption.hpp) holds "secret": masked like
    // a seed before nlohmann sees the text, and refused by name.
    char scratch[64];
    std::size_t n = 0;
    const int secrets = detail::take_hex_member(masked.s, "secret", scratch, sizeof scratch, &n);
    sodium_memzero(scratch, sizeof scratch);
    if (secrets != 0)
      return fail(ErrorCode::kUnsupported,
                  "secret key file: an X25519 encryption key (ota keygen --encryption), not an Ed25519 signing key");
  }
  OTA_TRY_ASSIGN(auto j, json::parse_strict(masked.s, kMaxKeyFile, "secret key file"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "secret key file"));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kSecretFormat)
    return fail(ErrorCode::kMalformed, "not an ota secret key (format is not " + std::string(kSecretFormat) + ")");
  OTA_TRY(o.only({"format", "type", "keyid", "public", "seed", "sealed"}, /*quote=*/false));
  OTA_TRY_ASSIGN(auto pub, public_of(o));

  auto* seed = static_cast<std::uint8_t*>(sodium_malloc(crypto_sign_SEEDBYTES));
  if (!seed) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  std::unique_ptr<std::uint8_t, void (*)(void*)> seed_guard(seed, sodium_free);

  if (o.has("seed")) {
    if (o.has("sealed")) return fail(ErrorCode::kMalformed, "secret key file has both seed and sealed");
    // nlohmann holds the masked placeholder; the digits are in seed_hex.
    auto s = o.string("seed", 64);
    if (!s || seeds != 1 || s->size() != seed_hex_len)
      return fail(ErrorCode::kMalformed, "secret key file: seed is not 64 hex digits");
    std::size_t len = 0;
    if (seed_hex_len != 64 || sodium_hex2bin(seed, 32, seed_hex, seed_hex_len, nullptr, &len, nullptr) != 0 || len != 32)
      return fail(ErrorCode::kMalformed, "secret key file: seed is not 64 hex digits");
  } else {
    OTA_TRY_ASSIGN(auto sj, o.object("sealed"));
    OTA_TRY_ASSIGN(auto so, json::Object::of(*sj, "secret key file.sealed"));
    OTA_TRY(so.only({"kdf", "opslimit", "memlimit", "salt", "cipher", "nonce", "ciphertext"}, /*quote=*/false));
    OTA_TRY_ASSIGN(auto kdf, so.string("kdf", 32));
    OTA_TRY_ASSIGN(auto cipher, so.string("cipher", 32));
    if (kdf != "argon2id13" || cipher != "xchacha20poly1305-ietf")
      return fail(ErrorCode::kUnsupported, "secret key file: unsupported sealing (kdf or cipher)");
    OTA_TRY_ASSIGN(auto ops, so.u64("opslimit", kMaxOpsLimit));
    OTA_TRY_ASSIGN(auto mem, so.u64("memlimit", kMaxMemLimit));
    if (ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN)
      return fail(ErrorCode::kMalformed, "secret key file: sealing parameters below libsodium's minimum");
    OTA_TRY_ASSIGN(auto salt_hex, so.string("salt", 64));
    OTA_TRY_ASSIGN(auto nonce_hex, so.string("nonce", 64));
    OTA_TRY_ASSIGN(auto ct_hex, so.string("ciphertext", 128));
    auto salt = hex_bytes(salt_hex, crypto_pwhash_SALTBYTES, "secret key file: salt");
    auto nonce = hex_bytes(nonce_hex, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "secret key file: nonce");
    auto ct = hex_bytes(ct_hex, 32 + crypto_aead_xchacha20poly1305_ietf_ABYTES, "secret key file: ciphertext");
    if (!salt) return fail(salt.error());
    if (!nonce) return fail(nonce.error());
    if (!ct) return fail(ct.error());
    if (!passphrase || passphrase->empty())
      return fail(ErrorCode::kBadPassphrase, "the secret key is sealed with a passphrase and none was given");
    auto* kek = static_cast<std::uint8_t*>(sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES));
    if (!kek) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
    std::unique_ptr<std::uint8_t, void (*)(void*)> kek_guard(kek, sodium_free);
    if (crypto_pwhash(kek, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, passphrase->data(), passphrase->size(),
                      salt->data(), ops, static_cast<std::size_t>(mem), crypto_pwhash_ALG_ARGON2ID13) != 0)
      return fail(ErrorCode::kOutOfMemory, "argon2id: not enough memory to open the secret key");
    unsigned long long len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(seed, &len, nullptr, ct->data(), ct->size(), pub.bytes.data(),
                                                   pub.bytes.size(), nonce->data(), kek) != 0 ||
        len != 32)
      return fail(ErrorCode::kBadPassphrase, "wrong passphrase for the secret key (or the file was altered)");
  }
  auto key = SecretKey::from_seed(ByteSpan(seed, 32));
  if (!key) return fail(key.error());
  if (key->public_key() != pub)
    return fail(ErrorCode::kMalformed, "secret key file: the seed does not match its public key");
  return key;
}

void wipe(void* data, std::size_t size) { sodium_memzero(data, size); }

Result<PublicKey> load_public(const std::string& path) {
  if (pkcs11::is_uri(path)) {
    // The public half of a key inside a token (its public key object).
    OTA_TRY_ASSIGN(auto token, pkcs11::open(path));
    return token->public_key();
  }
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  auto k = parse_public(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!k) return fail(k.error().with_context(path));
  return k;
}

Result<SecretKey> load_secret(const std::string& path, std::optional<std::string_view> passphrase) {
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  auto k = parse_secret(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), passphrase);
  sodium_memzero(bytes.data(), bytes.size());
  if (!k) return fail(k.error().with_context(path));
  return k;
}

Status write_key_pair(const std::string& base, const SecretKey& key, std::optional<std::string_view> passphrase,
                      const SealParams& params) {
  OTA_TRY_ASSIGN(auto secret, encode_secret(key, passphrase, params));
  Wiped s{std::move(secret)};
  OTA_TRY(write_file_atomic(base + ".key", ByteSpan(reinterpret_cast<const std::uint8_t*>(s.s.data()), s.s.size()),
                            0600));
  std::string pub = encode_public(key.public_key());
  return write_file_atomic(base + ".pub", ByteSpan(reinterpret_cast<const std::uint8_t*>(pub.data()), pub.size()),
                           0644);
}

}  // namespace ota::keys
