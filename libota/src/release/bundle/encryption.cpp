// Encrypted payloads: block sealing, content-key sealing, X25519 key files
// and the decrypting bundle reader (ota/release/encryption.hpp).
#include "ota/release/encryption.hpp"

#include <sodium.h>

#include <cstring>

#include "core/json.hpp"
#include "core/sodium.hpp"
#include "release/sign/secret_text.hpp"

namespace ota::encryption {

static_assert(manifest::kSealedKeyBytes == crypto_box_SEALBYTES + 32);
static_assert(manifest::kBlockTagBytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);

namespace {

constexpr std::string_view kPublicFormat = "ota-public-key-v1";
constexpr std::string_view kSecretFormat = "ota-secret-key-v1";
constexpr std::size_t kMaxKeyFile = 4096;
constexpr char kBlockAd[] = "ota-block-v1";

std::uint8_t* secure_alloc(std::size_t n) { return static_cast<std::uint8_t*>(sodium_malloc(n)); }

void nonce_for(std::uint64_t payload, std::uint64_t block, std::uint8_t out[24]) {
  std::memset(out, 0, 24);
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<std::uint8_t>(payload >> (8 * i));
    out[8 + i] = static_cast<std::uint8_t>(block >> (8 * i));
  }
}

struct BlockAd {
  std::uint8_t bytes[sizeof kBlockAd];  // the tag text, then the last-block byte (in place of its NUL)
  explicit BlockAd(bool last) {
    std::memcpy(bytes, kBlockAd, sizeof kBlockAd);
    bytes[sizeof kBlockAd - 1] = last ? 1 : 0;
  }
};

struct Wiped {
  std::string s;
  ~Wiped() { sodium_memzero(s.data(), s.size()); }
};

Result<Bytes> hex_exact(const std::string& hex, std::size_t n, std::string_view what) {
  Bytes out(n);
  std::size_t len = 0;
  if (hex.size() != 2 * n || sodium_hex2bin(out.data(), n, hex.data(), hex.size(), nullptr, &len, nullptr) != 0 ||
      len != n)
    return fail(ErrorCode::kMalformed, std::string(what) + " is not " + std::to_string(n) + " bytes of hex");
  return out;
}

Result<PublicKey> public_of(const json::Object& o) {
  OTA_TRY_ASSIGN(auto type, o.string("type", 32));
  if (type != "x25519")
    return fail(ErrorCode::kUnsupported, o.what() + ": key type is not x25519 (an encryption key)");
  OTA_TRY_ASSIGN(auto pub, o.string("public", 64));
  OTA_TRY_ASSIGN(auto bytes, hex_exact(pub, 32, o.what() + ".public"));
  PublicKey k;
  std::memcpy(k.bytes.data(), bytes.data(), 32);
  OTA_TRY_ASSIGN(auto id, o.digest("keyid"));
  if (id != k.id()) return fail(ErrorCode::kMalformed, o.what() + ": keyid does not match the public key");
  return k;
}

}  // namespace

struct SecretAccess {
  static std::uint8_t* secret(const SecretKey& k) { return k.sk_; }
  static std::uint8_t* key(const ContentKey& k) { return k.k_; }
  static ContentKey adopt(std::uint8_t* k) {
    ContentKey c;
    c.k_ = k;
    return c;
  }
};

// ---- keys ----

Digest PublicKey::id() const { return content_hash(ByteSpan(bytes.data(), bytes.size())); }
std::string PublicKey::id_hex() const { return to_hex(id()); }

Result<SecretKey> SecretKey::generate() {
  ensure_sodium();
  std::uint8_t* sk = secure_alloc(crypto_box_SECRETKEYBYTES);
  if (!sk) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  randombytes_buf(sk, crypto_box_SECRETKEYBYTES);
  SecretKey k;
  k.sk_ = sk;
  crypto_scalarmult_base(k.public_.bytes.data(), sk);
  return k;
}

Result<SecretKey> SecretKey::from_bytes(ByteSpan secret) {
  ensure_sodium();
  if (secret.size() != crypto_box_SECRETKEYBYTES)
    return fail(ErrorCode::kMalformed, "an X25519 secret key is 32 bytes");
  std::uint8_t* sk = secure_alloc(crypto_box_SECRETKEYBYTES);
  if (!sk) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  std::memcpy(sk, secret.data(), secret.size());
  SecretKey k;
  k.sk_ = sk;
  crypto_scalarmult_base(k.public_.bytes.data(), sk);
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

Result<ContentKey> ContentKey::generate() {
  ensure_sodium();
  std::uint8_t* k = secure_alloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  if (!k) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  crypto_aead_xchacha20poly1305_ietf_keygen(k);
  ContentKey c;
  c.k_ = k;
  return c;
}
ContentKey::ContentKey(ContentKey&& o) noexcept : k_(o.k_) { o.k_ = nullptr; }
ContentKey& ContentKey::operator=(ContentKey&& o) noexcept {
  if (this != &o) {
    if (k_) sodium_free(k_);
    k_ = o.k_;
    o.k_ = nullptr;
  }
  return *this;
}
ContentKey::~ContentKey() {
  if (k_) sodium_free(k_);
}

std::string encode_public(const PublicKey& key) {
  json::Ordered doc;
  doc["format"] = kPublicFormat;
  doc["type"] = "x25519";
  doc["keyid"] = key.id_hex();
  doc["public"] = to_hex(ByteSpan(key.bytes.data(), key.bytes.size()));
  return doc.dump(2) + "\n";
}

Result<PublicKey> parse_public(std::string_view text) {
  OTA_TRY_ASSIGN(auto j, json::parse_strict(text, kMaxKeyFile, "key file"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "key file"));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kPublicFormat && format != kSecretFormat)
    return fail(ErrorCode::kMalformed, "key file: not an ota key (format is not " + std::string(kPublicFormat) + ")");
  return public_of(o);
}

bool is_x25519_key(std::string_view text) {
  Wiped masked{std::string(text.substr(0, kMaxKeyFile))};
  char scratch[64];
  std::size_t n = 0;
  (void)keys::detail::take_hex_member(masked.s, "secret", scratch, sizeof scratch, &n);
  sodium_memzero(scratch, sizeof scratch);
  auto j = json::parse_strict(masked.s, kMaxKeyFile, "key file");
  return j && j->is_object() && j->contains("type") && (*j)["type"] == "x25519";
}

Result<std::string> encode_secret(const SecretKey& key) {
  json::Ordered doc;
  doc["format"] = kSecretFormat;
  doc["type"] = "x25519";
  doc["keyid"] = key.public_key().id_hex();
  doc["public"] = to_hex(ByteSpan(key.public_key().bytes.data(), 32));
  // The digits go into the result after nlohmann wrote a placeholder
  // (sign/secret_text.hpp).
  const std::string placeholder(64, '0');
  doc["secret"] = placeholder;
  std::string r = doc.dump(2) + "\n";
  const std::string member = "\"secret\": \"" + placeholder + "\"";
  const auto at = r.find(member);
  if (at == std::string::npos) return fail(ErrorCode::kInternal, "secret key encoding: no placeholder");
  char digits[65];
  sodium_bin2hex(digits, sizeof digits, SecretAccess::secret(key), 32);
  std::memcpy(&r[at + member.size() - 1 - 64], digits, 64);
  sodium_memzero(digits, sizeof digits);
  return r;
}

Result<SecretKey> parse_secret(std::string_view text) {
  ensure_sodium();
  if (text.size() == 32) return SecretKey::from_bytes(ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), 32));
  if (text.size() > kMaxKeyFile) return fail(ErrorCode::kMalformed, "secret key: more than 4096 bytes");
  auto* digits = static_cast<char*>(sodium_malloc(64));
  if (!digits) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  std::unique_ptr<char, void (*)(void*)> digits_guard(digits, sodium_free);
  std::size_t n = 0;
  // 64 hex digits alone (a key command's output), surrounding space allowed.
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  const bool json_text = first != std::string_view::npos && text[first] == '{';
  std::optional<PublicKey> declared;
  if (!json_text) {
    if (first == std::string_view::npos || last - first + 1 != 64)
      return fail(ErrorCode::kMalformed, "secret key: neither a key file, 64 hex digits nor 32 bytes");
    std::memcpy(digits, text.data() + first, 64);
    n = 64;
  } else {
    Wiped masked{};
    masked.s.reserve(kMaxKeyFile);
    masked.s.assign(text.data(), text.size());
    const int found = keys::detail::take_hex_member(masked.s, "secret", digits, 64, &n);
    if (found != 1 || n != 64) return fail(ErrorCode::kMalformed, "secret key file: secret is not 64 hex digits");
    OTA_TRY_ASSIGN(auto j, json::parse_strict(masked.s, kMaxKeyFile, "secret key file"));
    OTA_TRY_ASSIGN(auto o, json::Object::of(j, "secret key file"));
    OTA_TRY_ASSIGN(auto format, o.string("format", 32));
    if (format != kSecretFormat)
      return fail(ErrorCode::kMalformed, "not an ota secret key (format is not " + std::string(kSecretFormat) + ")");
    OTA_TRY(o.only({"format", "type", "keyid", "public", "secret"}, /*quote=*/false));
    OTA_TRY_ASSIGN(auto pub, public_of(o));
    declared = pub;
  }
  std::uint8_t* sk = secure_alloc(32);
  if (!sk) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
  std::unique_ptr<std::uint8_t, void (*)(void*)> sk_guard(sk, sodium_free);
  std::size_t len = 0;
  if (sodium_hex2bin(sk, 32, digits, n, nullptr, &len, nullptr) != 0 || len != 32)
    return fail(ErrorCode::kMalformed, "secret key: secret is not 64 hex digits");
  auto key = SecretKey::from_bytes(ByteSpan(sk, 32));
  if (!key) return fail(key.error());
  if (declared && key->public_key() != *declared)
    return fail(ErrorCode::kMalformed, "secret key file: the secret does not match its public key");
  return key;
}

Result<PublicKey> load_public(const std::string& path) {
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  auto k = parse_public(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!k) return fail(k.error().with_context(path));
  return k;
}

Result<SecretKey> load_secret(const std::string& path) {
  OTA_TRY_ASSIGN(auto bytes, read_file(path));
  auto k = parse_secret(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  sodium_memzero(bytes.data(), bytes.size());
  if (!k) return fail(k.error().with_context(path));
  return k;
}

Status write_key_pair(const std::string& base, const SecretKey& key) {
  OTA_TRY_ASSIGN(auto secret, encode_secret(key));
  Wiped s{std::move(secret)};
  OTA_TRY(write_file_atomic(base + ".key", ByteSpan(reinterpret_cast<const std::uint8_t*>(s.s.data()), s.s.size()),
                            0600));
  std::string pub = encode_public(key.public_key());
  return write_file_atomic(base + ".pub", ByteSpan(reinterpret_cast<const std::uint8_t*>(pub.data()), pub.size()),
                           0644);
}

// ---- the content key ----

Result<manifest::Recipient> seal(const ContentKey& key, const PublicKey& to) {
  ensure_sodium();
  manifest::Recipient r;
  r.key_id = to.id();
  if (crypto_box_seal(r.sealed_key.data(), SecretAccess::key(key), crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
                      to.bytes.data()) != 0)
    return fail(ErrorCode::kInternal, "sealing the content key failed");
  return r;
}

Result<ContentKey> open(const manifest::Encryption& e, const SecretKey& key) {
  ensure_sodium();
  const Digest id = key.public_key().id();
  for (const auto& r : e.recipients) {
    if (r.key_id != id) continue;
    std::uint8_t* k = secure_alloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (!k) return fail(ErrorCode::kOutOfMemory, "cannot allocate protected memory");
    ContentKey c = SecretAccess::adopt(k);
    if (crypto_box_seal_open(k, r.sealed_key.data(), r.sealed_key.size(), key.public_key().bytes.data(),
                             SecretAccess::secret(key)) != 0)
      return fail(ErrorCode::kDecryptionKey, "the content key sealed to key " +
                                                 key.public_key().id_hex().substr(0, 16) + " does not open with it");
    return c;
  }
  return fail(ErrorCode::kDecryptionKey, "the bundle is encrypted to " + std::to_string(e.recipients.size()) +
                                             " recipient(s) and this key (x25519 " +
                                             key.public_key().id_hex().substr(0, 16) + ") is not one of them");
}

// ---- sealing blocks ----

EncryptingWriter::EncryptingWriter(Writer& next, const ContentKey& key, std::uint64_t payload_index,
                                   std::uint32_t block_size)
    : next_(next), key_(key), payload_(payload_index), block_size_(block_size) {
  buf_.reserve(block_size);
  out_.resize(std::size_t{block_size} + manifest::kBlockTagBytes);
}

Status EncryptingWriter::seal_block(bool last) {
  std::uint8_t nonce[24];
  nonce_for(payload_, block_, nonce);
  const BlockAd ad(last);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out_.data(), &n, buf_.data(), buf_.size(), ad.bytes, sizeof ad.bytes,
                                             nullptr, nonce, SecretAccess::key(key_));
  ++block_;
  buf_.clear();
  return next_.write(ByteSpan(out_.data(), static_cast<std::size_t>(n)));
}

Status EncryptingWriter::write(ByteSpan data) {
  hash_.update(data);
  plain_ += data.size();
  std::size_t off = 0;
  while (off < data.size()) {
    // A full block is sealed only once more data shows it is not the last.
    if (buf_.size() == block_size_) OTA_TRY(seal_block(false));
    const std::size_t k = std::min<std::size_t>(data.size() - off, block_size_ - buf_.size());
    buf_.insert(buf_.end(), data.begin() + static_cast<std::ptrdiff_t>(off),
                data.begin() + static_cast<std::ptrdiff_t>(off + k));
    off += k;
  }
  return ok();
}

Status EncryptingWriter::finish(std::uint64_t& plain_size, Digest& plain_hash) {
  OTA_TRY(seal_block(true));
  plain_size = plain_;
  plain_hash = hash_.finish();
  return ok();
}

// ---- reading ----

namespace {

class DecryptingReader final : public bundle::BundleReader {
 public:
  DecryptingReader(std::unique_ptr<bundle::BundleReader> inner, const manifest::Manifest& m, ContentKey key)
      : inner_(std::move(inner)), m_(m), key_(std::move(key)), block_size_(m.encryption->block_size) {
    cipher_.resize(std::size_t{block_size_} + manifest::kBlockTagBytes);
    plain_.resize(block_size_);
  }

  ByteSpan manifest_bytes() const override { return inner_->manifest_bytes(); }
  const bundle::SignatureBlock& signature_block() const override { return inner_->signature_block(); }
  Result<manifest::Manifest> verify(trust::TrustStore& trust, const bundle::VerifyOptions& opts,
                                    trust::ThresholdReport* report, bundle::Check* failed) override {
    return inner_->verify(trust, opts, report, failed);
  }
  Result<manifest::Manifest> parse_unverified() override { return inner_->parse_unverified(); }

  Result<std::optional<std::size_t>> next_payload() override {
    OTA_TRY_ASSIGN(auto idx, inner_->next_payload());
    cur_ = nullptr;
    if (!idx) return idx;
    if (*idx >= m_.payloads.size()) return fail(ErrorCode::kInternal, "payload index beyond the manifest");
    index_ = *idx;
    cur_ = &m_.payloads[*idx];
    pos_ = 0;
    loaded_ = kNone;
    whole_ = true;
    hash_ = Hasher();
    const std::uint64_t stride = std::uint64_t{block_size_} + manifest::kBlockTagBytes;
    blocks_ = (cur_->size + stride - 1) / stride;
    return idx;
  }

  Result<ByteSpan> read_view() override {
    if (!cur_) return fail(ErrorCode::kUsage, "no current payload");
    if (pos_ >= cur_->plain_size) {
      OTA_TRY(check_whole());
      return ByteSpan{};
    }
    const std::uint64_t b = pos_ / block_size_;
    if (loaded_ != b) OTA_TRY(load(b));
    const std::size_t in_block = static_cast<std::size_t>(pos_ - b * block_size_);
    ByteSpan view(plain_.data() + in_block, plain_len_ - in_block);
    if (whole_) hash_.update(view);
    pos_ += view.size();
    return view;
  }

  Result<std::size_t> read(MutableByteSpan out) override {
    std::size_t n = 0;
    while (n < out.size()) {
      if (!cur_) return fail(ErrorCode::kUsage, "no current payload");
      if (pos_ >= cur_->plain_size) {
        OTA_TRY(check_whole());
        break;
      }
      const std::uint64_t b = pos_ / block_size_;
      if (loaded_ != b) OTA_TRY(load(b));
      const std::size_t in_block = static_cast<std::size_t>(pos_ - b * block_size_);
      const std::size_t k = std::min(out.size() - n, plain_len_ - in_block);
      std::memcpy(out.data() + n, plain_.data() + in_block, k);
      if (whole_) hash_.update(ByteSpan(plain_.data() + in_block, k));
      pos_ += k;
      n += k;
    }
    return n;
  }

  Status skip_to(std::uint64_t at) override {
    if (!cur_) return fail(ErrorCode::kUsage, "no current payload");
    if (at < pos_) return fail(ErrorCode::kUsage, "skip_to moves forward only");
    if (at > cur_->plain_size) return fail(ErrorCode::kUsage, "skip_to beyond the payload");
    if (at > pos_) whole_ = false;  // the plain hash needs every byte
    pos_ = at;
    return ok();
  }

  Status read_checked(std::uint64_t at, MutableByteSpan out, const Digest& expect, std::uint64_t upcoming) override {
    (void)upcoming;
    whole_ = false;
    OTA_TRY(skip_to(at));
    OTA_TRY_ASSIGN(auto n, read(out));
    if (n != out.size() || content_hash(ByteSpan(out.data(), out.size())) != expect) {
      sodium_memzero(out.data(), out.size());
      return fail(ErrorCode::kPayloadMismatch, "payload " + cur_->name + ": " + std::to_string(out.size()) +
                                                   " bytes at offset " + std::to_string(at) +
                                                   " do not match their signed hash");
    }
    return ok();
  }

  std::uint64_t payload_position() const override { return pos_; }
  std::uint64_t offset() const override { return inner_->offset(); }

 private:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};

  // Reads block b's ciphertext (each byte checked against the signed chunk
  // hashes by the inner reader), then opens it.
  Status load(std::uint64_t b) {
    const std::uint64_t stride = std::uint64_t{block_size_} + manifest::kBlockTagBytes;
    const std::uint64_t at = b * stride;
    if (b >= blocks_) return fail(ErrorCode::kInternal, "block beyond the payload");
    const std::size_t len = static_cast<std::size_t>(std::min(stride, cur_->size - at));
    if (inner_->payload_position() != at) OTA_TRY(inner_->skip_to(at));
    std::size_t got = 0;
    while (got < len) {
      OTA_TRY_ASSIGN(auto n, inner_->read(MutableByteSpan(cipher_.data() + got, len - got)));
      if (n == 0) return fail(ErrorCode::kMalformed, "payload " + cur_->name + " ends inside block " + std::to_string(b));
      got += n;
    }
    std::uint8_t nonce[24];
    nonce_for(index_, b, nonce);
    const BlockAd ad(b + 1 == blocks_);
    unsigned long long n = 0;
    loaded_ = kNone;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain_.data(), &n, nullptr, cipher_.data(), len, ad.bytes,
                                                   sizeof ad.bytes, nonce, SecretAccess::key(key_)) != 0)
      return fail(ErrorCode::kPayloadMismatch, "payload " + cur_->name + ": block " + std::to_string(b) +
                                                   " does not decrypt with the bundle's content key");
    plain_len_ = static_cast<std::size_t>(n);
    loaded_ = b;
    return ok();
  }

  Status check_whole() {
    if (!whole_) return ok();
    whole_ = false;
    if (hash_.finish() != cur_->plain_hash)
      return fail(ErrorCode::kPayloadMismatch, "payload " + cur_->name + ": the decrypted bytes do not match the signed plain hash");
    return ok();
  }

  std::unique_ptr<bundle::BundleReader> inner_;
  const manifest::Manifest m_;
  ContentKey key_;
  std::uint32_t block_size_;
  const manifest::Payload* cur_ = nullptr;
  std::uint64_t index_ = 0, pos_ = 0, loaded_ = kNone, blocks_ = 0;
  std::size_t plain_len_ = 0;
  bool whole_ = true;
  Hasher hash_;
  Bytes cipher_, plain_;
};

}  // namespace

std::unique_ptr<bundle::BundleReader> decrypting(std::unique_ptr<bundle::BundleReader> inner,
                                                 const manifest::Manifest& m, ContentKey key) {
  return std::make_unique<DecryptingReader>(std::move(inner), m, std::move(key));
}

Result<std::uint64_t> check_plaintext(std::unique_ptr<bundle::BundleReader> verified, const manifest::Manifest& m,
                                      const SecretKey& key,
                                      const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  if (!m.encryption) return fail(ErrorCode::kUsage, "the bundle is not encrypted");
  OTA_TRY_ASSIGN(auto content, open(*m.encryption, key));
  auto reader = decrypting(std::move(verified), m, std::move(content));
  std::uint64_t total = 0, done = 0;
  for (const auto& p : m.payloads) total += p.plain_size;
  while (true) {
    OTA_TRY_ASSIGN(auto idx, reader->next_payload());
    if (!idx) break;
    while (true) {
      OTA_TRY_ASSIGN(auto view, reader->read_view());
      if (view.empty()) break;
      done += view.size();
      if (progress) progress(done, total);
    }
  }
  return done;
}

}  // namespace ota::encryption
