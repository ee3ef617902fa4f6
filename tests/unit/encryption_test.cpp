// Encrypted bundles (ota/release/encryption.hpp): the block arithmetic, key
// files, sealing the content key, the decrypting reader (plaintext offsets,
// skips, ranged reads, the plain hash), and every ciphertext byte covered by
// a signed hash before it is decrypted.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "ota/core/hash.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/encryption.hpp"
#include "ota/release/keys.hpp"
#include "support/device_sim.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::code_of;

TEST(EncryptedSize, IsTheInverseOfDecryptedSizeAndRefusesEveryOtherSize) {
  for (std::uint32_t block : {4096u, 65536u}) {
    const std::uint64_t stride = block + 16;
    for (std::uint64_t plain : std::initializer_list<std::uint64_t>{0, 1, 4095, 4096, 4097, 65535, 65536, 65537, 200000, 1u << 20}) {
      const std::uint64_t c = manifest::encrypted_size(plain, block);
      EXPECT_EQ(manifest::decrypted_size(c, block), plain) << plain << " in blocks of " << block;
    }
    EXPECT_EQ(manifest::encrypted_size(0, block), 16u);
    EXPECT_EQ(manifest::encrypted_size(block, block), stride);
    // No plaintext gives these: shorter than a tag, or a last block of only
    // a tag after a full one.
    for (std::uint64_t c : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{15}, stride + 1, stride + 15, stride + 16, 2 * stride + 16})
      EXPECT_FALSE(manifest::decrypted_size(c, block)) << c;
  }
}

TEST(EncryptionKeys, FilesRoundTripAndAreNotSigningKeys) {
  test::TempDir dir;
  auto key = encryption::SecretKey::generate();
  ASSERT_TRUE(key);
  ASSERT_TRUE(encryption::write_key_pair(dir.file("dev"), *key));
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("dev.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto pub = encryption::load_public(dir.file("dev.pub"));
  ASSERT_TRUE(pub) << pub.error().message;
  EXPECT_EQ(*pub, key->public_key());
  auto back = encryption::load_secret(dir.file("dev.key"));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->public_key(), key->public_key());
  // The public part of the secret file, as for signing keys.
  auto from_secret = encryption::load_public(dir.file("dev.key"));
  ASSERT_TRUE(from_secret);
  EXPECT_EQ(*from_secret, key->public_key());

  // An X25519 key is not an Ed25519 signing key, nor the other way round.
  auto text = read_file(dir.file("dev.pub"));
  ASSERT_TRUE(text);
  EXPECT_EQ(code_of(keys::parse_public(test::to_text(*text))), ErrorCode::kUnsupported);
  auto secret_text = read_file(dir.file("dev.key"));
  ASSERT_TRUE(secret_text);
  auto as_signing = keys::parse_secret(test::to_text(*secret_text), std::nullopt);
  EXPECT_EQ(code_of(as_signing), ErrorCode::kUnsupported);
  EXPECT_NE(test::message_of(as_signing).find("X25519"), std::string::npos);
  const std::string ed = keys::encode_public(test::test_key(0).public_key());
  EXPECT_EQ(code_of(encryption::parse_public(ed)), ErrorCode::kUnsupported);
  EXPECT_TRUE(encryption::is_x25519_key(test::to_text(*secret_text)));
  EXPECT_FALSE(encryption::is_x25519_key(ed));

  // What a key command may print: 64 hex digits (spaces around) or 32 raw bytes.
  const Bytes raw(32, 7);
  auto from_raw = encryption::parse_secret(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  ASSERT_TRUE(from_raw);
  auto from_hex = encryption::parse_secret("  " + to_hex(raw) + "\n");
  ASSERT_TRUE(from_hex) << from_hex.error().message;
  EXPECT_EQ(from_hex->public_key(), from_raw->public_key());
  EXPECT_EQ(code_of(encryption::parse_secret(to_hex(raw).substr(2))), ErrorCode::kMalformed);
  EXPECT_EQ(code_of(encryption::parse_secret("")), ErrorCode::kMalformed);

  // A secret file whose public key is another's is refused, without quoting it.
  std::string forged = test::to_text(*secret_text);
  const std::string other = to_hex(ByteSpan(from_raw->public_key().bytes.data(), 32));
  const auto at = forged.find("\"public\": \"") + 11;
  forged.replace(at, 64, other);
  auto refused = encryption::parse_secret(forged);
  EXPECT_EQ(code_of(refused), ErrorCode::kMalformed);
  EXPECT_EQ(test::message_of(refused).find(forged.substr(forged.find("\"secret\": \"") + 11, 64)), std::string::npos);
}

TEST(ContentKey, OpensOnlyForARecipient) {
  auto ck = encryption::ContentKey::generate();
  ASSERT_TRUE(ck);
  manifest::Encryption e;
  for (std::uint8_t n : {std::uint8_t{1}, std::uint8_t{2}}) {
    auto r = encryption::seal(*ck, test::test_decryption_key(n).public_key());
    ASSERT_TRUE(r);
    e.recipients.push_back(*r);
  }
  EXPECT_TRUE(encryption::open(e, test::test_decryption_key(1)));
  EXPECT_TRUE(encryption::open(e, test::test_decryption_key(2)));
  auto other = encryption::open(e, test::test_decryption_key(3));
  EXPECT_EQ(code_of(other), ErrorCode::kDecryptionKey);
  EXPECT_NE(test::message_of(other).find("not one of them"), std::string::npos);
  // A sealed key that was altered does not open (kDecryptionKey, never garbage).
  e.recipients[0].sealed_key[40] ^= 1;
  EXPECT_EQ(code_of(encryption::open(e, test::test_decryption_key(1))), ErrorCode::kDecryptionKey);
}

class EncryptedBundle : public testing::Test {
 protected:
  void SetUp() override {
    base_ = test::structured_bytes(96 * 1024, 70);
    image_ = test::with_random_edits(base_, 40, 71);
    test::write_bytes(dir_.file("base.img"), base_);
    test::write_bytes(dir_.file("new.img"), image_);
    root_ = test::root_envelope(test::make_root(1, test::at("2030-01-01"), 1, keys_.ptrs({0})), keys_.ptrs({0}));
  }

  Bytes build(std::uint32_t block = 4096, bool reuse = false) {
    auto o = test::small_bundle(dir_.file("new.img"), {dir_.file("base.img")}, "1.1.0", {"board"});
    o.reuse = reuse;
    o.reuse_params = chunks::Params{512, 10, 4096};
    test::encrypt_to(o, {1}, block);
    return test::signed_bundle(o, keys_.ptrs({0}));
  }

  struct Opened {
    std::unique_ptr<MemoryReader> in;
    std::unique_ptr<bundle::BundleReader> reader;
    manifest::Manifest m;
  };
  Opened open(const Bytes& b, std::optional<std::uint8_t> key = 1) {
    Opened o;
    o.in = std::make_unique<MemoryReader>(b);
    auto r = bundle::BundleReader::open(*o.in);
    EXPECT_TRUE(r);
    auto trust = test::store_from(root_);
    bundle::VerifyOptions vo;
    vo.policy.now = test::at("2026-06-01");
    auto m = (*r)->verify(trust, vo);
    EXPECT_TRUE(m) << m.error().message;
    o.m = *m;
    o.reader = std::move(*r);
    if (key) {
      auto ck = encryption::open(*o.m.encryption, test::test_decryption_key(*key));
      EXPECT_TRUE(ck);
      o.reader = encryption::decrypting(std::move(o.reader), o.m, std::move(*ck));
    }
    return o;
  }

  test::Keyring keys_{1};
  test::TempDir dir_;
  Bytes base_, image_;
  trust::Envelope root_;
};

TEST_F(EncryptedBundle, TheManifestSignsCiphertextAndPlaintext) {
  const Bytes b = build();
  auto o = open(b, std::nullopt);
  ASSERT_TRUE(o.m.encryption);
  EXPECT_EQ(o.m.encryption->block_size, 4096u);
  ASSERT_EQ(o.m.encryption->recipients.size(), 1u);
  EXPECT_EQ(o.m.encryption->recipients[0].key_id, test::test_decryption_key(1).public_key().id());
  for (const auto& p : o.m.payloads) {
    EXPECT_EQ(p.size, manifest::encrypted_size(p.plain_size, 4096)) << p.name;
    EXPECT_NE(p.plain_hash, Digest{});
  }
  // The plaintext of the full payload is the zstd stream a plain bundle
  // carries: the same image once decoded, never the image in clear.
  const std::string needle(reinterpret_cast<const char*>(image_.data()) + 5000, 64);
  EXPECT_EQ(std::string(b.begin(), b.end()).find(needle), std::string::npos) << "image bytes in clear in the bundle";
  // The manifest round-trips through its canonical encoding.
  auto again = manifest::parse_manifest(manifest::encode_manifest(o.m));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(manifest::encode_manifest(*again), manifest::encode_manifest(o.m));
}

TEST_F(EncryptedBundle, EveryPayloadDecryptsWholeToItsSignedPlainHash) {
  for (std::uint32_t block : {4096u, 65536u}) {
    SCOPED_TRACE(block);
    const Bytes b = build(block, /*reuse=*/true);
    auto o = open(b);
    std::size_t seen = 0;
    while (true) {
      auto idx = o.reader->next_payload();
      ASSERT_TRUE(idx) << idx.error().message;
      if (!*idx) break;
      Bytes plain;
      while (true) {
        auto v = o.reader->read_view();
        ASSERT_TRUE(v) << v.error().message;
        if (v->empty()) break;
        plain.insert(plain.end(), v->begin(), v->end());
      }
      const auto& p = o.m.payloads[**idx];
      EXPECT_EQ(plain.size(), p.plain_size);
      EXPECT_EQ(content_hash(plain), p.plain_hash);
      ++seen;
    }
    EXPECT_EQ(seen, o.m.payloads.size());
  }
}

// Skips and ranged reads address plaintext offsets; a payload read by skips
// hands out the same bytes as a whole read.
TEST_F(EncryptedBundle, SkipsAndRangedReadsAddressThePlaintext) {
  const Bytes b = build(4096, /*reuse=*/true);
  Bytes whole;
  {
    auto o = open(b);
    auto idx = o.reader->next_payload();
    ASSERT_TRUE(idx && *idx);
    whole.resize(static_cast<std::size_t>(o.m.payloads[**idx].plain_size));
    auto n = o.reader->read(whole);
    ASSERT_TRUE(n);
    ASSERT_EQ(*n, whole.size());
  }
  for (std::uint64_t at : std::initializer_list<std::uint64_t>{0, 1, 4095, 4096, 4097, 12345}) {
    if (at >= whole.size()) continue;
    auto o = open(b);
    ASSERT_TRUE(o.reader->next_payload());
    ASSERT_TRUE(o.reader->skip_to(at));
    EXPECT_EQ(o.reader->payload_position(), at);
    Bytes part(std::min<std::size_t>(5000, whole.size() - at));
    auto n = o.reader->read(part);
    ASSERT_TRUE(n) << n.error().message;
    ASSERT_EQ(*n, part.size());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + static_cast<std::ptrdiff_t>(at))) << at;
    // Backwards is refused.
    EXPECT_EQ(code_of(o.reader->skip_to(at)), at + part.size() > at ? ErrorCode::kUsage : ErrorCode::kOk);
  }
  // The first payload is the chunks payload: its index by ranged read.
  auto o = open(b);
  ASSERT_TRUE(o.reader->next_payload());
  const auto& p = o.m.payloads[0];
  ASSERT_EQ(p.kind, manifest::PayloadKind::kChunks);
  Bytes index(static_cast<std::size_t>(p.index_size));
  ASSERT_TRUE(o.reader->read_checked(0, index, p.index_hash, p.index_size));
  EXPECT_TRUE(chunks::parse_index(index));
  Bytes more(100);
  EXPECT_EQ(code_of(o.reader->read_checked(p.index_size + 10, more, p.index_hash)), ErrorCode::kPayloadMismatch);
  EXPECT_EQ(more, Bytes(100, 0)) << "a mismatching range is zeroed";
}

// Every ciphertext byte is under a signed chunk hash: a change anywhere in
// the payload members (tags included) is refused before decryption, by the
// hash (never by the cipher).
TEST_F(EncryptedBundle, EveryChangedCiphertextByteIsRefusedByItsSignedHash) {
  const Bytes b = build();
  std::uint64_t first = 0;
  {
    MemoryReader probe(b);
    auto r = bundle::BundleReader::open(probe);
    ASSERT_TRUE(r);
    first = (*r)->offset();
  }
  auto o = open(b, std::nullopt);
  const auto lay = bundle::layout(o.reader->manifest_bytes().size(),
                                  bundle::encode_signature_block(o.reader->signature_block()).size(), o.m);
  int checked = 0;
  for (const auto& mem : lay.members) {
    if (mem.data_offset < first) continue;
    // Each block's first bytes, its tag's last byte, and a stride through the rest.
    for (std::uint64_t off = 0; off < mem.size; off += (off % 4112 < 4 ? 1 : 997)) {
      Bytes t = b;
      t[mem.data_offset + off] ^= 0x01;
      auto d = open(t);
      Status st = ok();
      while (st) {
        auto idx = d.reader->next_payload();
        if (!idx) {
          st = fail(idx.error());
          break;
        }
        if (!*idx) break;
        while (true) {
          auto v = d.reader->read_view();
          if (!v) {
            st = fail(v.error());
            break;
          }
          if (v->empty()) break;
        }
      }
      ASSERT_FALSE(st) << mem.path << " +" << off << " was accepted";
      EXPECT_EQ(st.error().code, ErrorCode::kPayloadMismatch) << st.error().message;
      EXPECT_NE(st.error().message.find("signed hash"), std::string::npos) << st.error().message;
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

// Built with the content key known (a device's key leaked): re-encrypted
// blocks that authenticate under it are still refused by the signed hashes.
TEST_F(EncryptedBundle, AHolderOfTheKeyCannotForgeABlock) {
  const Bytes b = build();
  auto o = open(b, std::nullopt);
  // Swap two equal-sized blocks of the full payload: both authentic
  // ciphertext, but under another nonce and another signed chunk hash.
  const auto lay = bundle::layout(o.reader->manifest_bytes().size(),
                                  bundle::encode_signature_block(o.reader->signature_block()).size(), o.m);
  const auto& full = lay.members[2];
  ASSERT_GE(full.size, 3u * 4112);
  Bytes t = b;
  std::copy(b.begin() + static_cast<std::ptrdiff_t>(full.data_offset),
            b.begin() + static_cast<std::ptrdiff_t>(full.data_offset + 4112),
            t.begin() + static_cast<std::ptrdiff_t>(full.data_offset + 4112));
  auto d = open(t);
  ASSERT_TRUE(d.reader->next_payload());
  Bytes out(10000);
  auto n = d.reader->read(out);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::kPayloadMismatch);
}

TEST(EncryptedManifest, IsStrict) {
  const Bytes cipher(manifest::encrypted_size(10, 4096), 2);
  manifest::Manifest m = test::simple_manifest(Bytes(10, 1));
  m.payloads[0] = test::payload_for("full.img", cipher, 4096);
  m.payloads[0].plain_size = 10;
  m.payloads[0].plain_hash = content_hash(Bytes(10, 1));
  manifest::Encryption e;
  e.block_size = 4096;
  e.recipients.push_back({content_hash(Bytes(1, 1)), {}});
  m.encryption = e;
  ASSERT_TRUE(manifest::validate(m)) << test::message_of(manifest::validate(m));
  auto back = manifest::parse_manifest(manifest::encode_manifest(m));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->payloads[0].plain_size, 10u);

  auto bad = [&](auto change) {
    manifest::Manifest x = m;
    change(x);
    return code_of(manifest::validate(x));
  };
  EXPECT_EQ(bad([](auto& x) { x.payloads[0].plain_size = 11; }), ErrorCode::kMalformed);
  EXPECT_EQ(bad([](auto& x) { x.encryption->block_size = 3000; }), ErrorCode::kMalformed);
  EXPECT_EQ(bad([](auto& x) { x.encryption->recipients.clear(); }), ErrorCode::kMalformed);
  EXPECT_EQ(bad([](auto& x) { x.encryption->recipients.push_back(x.encryption->recipients[0]); }), ErrorCode::kMalformed);
  EXPECT_EQ(bad([](auto& x) { x.encryption.reset(); }), ErrorCode::kMalformed);  // a plain payload with a plain hash
  // Text edits: an unknown cipher, a plain size on an unencrypted manifest.
  std::string text = test::to_text(manifest::encode_manifest(m));
  std::string other = text;
  other.replace(other.find("xchacha20poly1305-ietf"), 22, "aes256gcm-ietf-other12");
  EXPECT_EQ(code_of(manifest::parse_manifest(test::to_bytes(other))), ErrorCode::kUnsupported);
  std::string no_enc = text;
  const auto a = no_enc.find("  \"encryption\"");
  const auto z = no_enc.find("  \"payloads\"");
  no_enc.erase(a, z - a);
  EXPECT_EQ(code_of(manifest::parse_manifest(test::to_bytes(no_enc))), ErrorCode::kMalformed);
}

}  // namespace
}  // namespace ota
