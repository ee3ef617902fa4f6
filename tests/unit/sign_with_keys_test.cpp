// trust::sign_with_keys (ota/release/trust.hpp): the one loop that loads
// secret key files, opens sealed ones with the caller's passphrase and signs.
#include <gtest/gtest.h>

#include "ota/release/keys.hpp"
#include "ota/release/trust.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

const keys::SealParams kFastSeal{1, 8192};  // crypto_pwhash's minimum: tests only

struct KeyFiles {
  test::TempDir dir;
  std::vector<std::string> paths;
  std::vector<keys::PublicKey> pubs;
  // Key n in clear, or sealed with passphrase.
  void add(std::uint8_t n, std::optional<std::string> passphrase = std::nullopt) {
    auto k = test::test_key(n);
    const std::string base = dir.file("k" + std::to_string(n) + (passphrase ? "s" : ""));
    std::optional<std::string_view> pv;
    if (passphrase) pv = *passphrase;
    if (!keys::write_key_pair(base, k, pv, kFastSeal)) throw std::runtime_error("write_key_pair");
    paths.push_back(base + ".key");
    pubs.push_back(k.public_key());
  }
};

trust::PassphraseSource counting(int& calls, std::optional<std::string> p) {
  return [&calls, p] {
    ++calls;
    return Result<std::optional<std::string>>(p);
  };
}

TEST(SignWithKeys, EachKeySignsTheTypedMessageInOrder) {
  KeyFiles f;
  f.add(0);
  f.add(1, "correct horse");
  int calls = 0;
  const Bytes body = test::to_bytes("{\"a\":1}");
  std::vector<trust::SignatureEntry> sigs;
  auto ids = trust::sign_with_keys(trust::kRootType, body, f.paths, counting(calls, "correct horse"), sigs);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(calls, 1) << "the passphrase is asked for once";
  ASSERT_EQ(ids->size(), 2u);
  ASSERT_EQ(sigs.size(), 2u);
  const Bytes message = trust::signing_message(trust::kRootType, body);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*ids)[i], f.pubs[i].id());
    EXPECT_EQ(sigs[i].key_id, f.pubs[i].id());
    EXPECT_TRUE(f.pubs[i].verify(message, sigs[i].sig));
  }
  // The signature is over the typed message: it does not verify as another type.
  EXPECT_FALSE(f.pubs[0].verify(trust::signing_message(trust::kManifestType, body), sigs[0].sig));
}

TEST(SignWithKeys, NoKeysAsksForNoPassphrase) {
  int calls = 0;
  std::vector<trust::SignatureEntry> sigs;
  auto ids = trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), {}, counting(calls, "x"), sigs);
  ASSERT_TRUE(ids);
  EXPECT_TRUE(ids->empty());
  EXPECT_EQ(calls, 0);
  // No source at all: clear key files still sign.
  KeyFiles f;
  f.add(2);
  auto clear = trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), f.paths, {}, sigs);
  ASSERT_TRUE(clear) << clear.error().message;
  EXPECT_EQ(sigs.size(), 1u);
}

TEST(SignWithKeys, ErrorsStopSigningAndKeepWhatWasSigned) {
  KeyFiles f;
  f.add(0);
  f.add(1, "right");
  f.add(2);
  int calls = 0;
  std::vector<trust::SignatureEntry> sigs;
  auto wrong = trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), f.paths, counting(calls, "wrong"), sigs);
  EXPECT_EQ(test::code_of(wrong), ErrorCode::kBadPassphrase);
  EXPECT_EQ(sigs.size(), 1u) << "key 0 signed before key 1 failed; key 2 never did";

  sigs.clear();
  trust::PassphraseSource broken = [] { return Result<std::optional<std::string>>(fail(ErrorCode::kUsage, "no passphrase")); };
  EXPECT_EQ(test::code_of(trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), f.paths, broken, sigs)),
            ErrorCode::kUsage);
  EXPECT_TRUE(sigs.empty());

  EXPECT_EQ(test::code_of(trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), {f.dir.file("none.key")},
                                                {}, sigs)),
            ErrorCode::kIo);
}

TEST(SignWithKeys, TheFilterSkipsOrRefusesAKey) {
  KeyFiles f;
  f.add(0);
  f.add(1);
  f.add(0);  // the same key twice
  std::vector<trust::SignatureEntry> sigs;
  std::vector<std::string> asked;
  auto once = [&](const std::string& path, const keys::PublicKey& k) -> Result<bool> {
    asked.push_back(path);
    for (const auto& s : sigs)
      if (s.key_id == k.id()) return false;
    return true;
  };
  auto ids = trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), f.paths, {}, sigs, once);
  ASSERT_TRUE(ids);
  EXPECT_EQ(ids->size(), 2u);
  EXPECT_EQ(sigs.size(), 2u);
  EXPECT_EQ(asked, f.paths);

  sigs.clear();
  auto refuse = [&](const std::string&, const keys::PublicKey& k) -> Result<bool> {
    if (k.id() == f.pubs[1].id()) return fail(ErrorCode::kUsage, "key 1 is revoked");
    return true;
  };
  auto r = trust::sign_with_keys(trust::kManifestType, test::to_bytes("m"), f.paths, {}, sigs, refuse);
  EXPECT_EQ(test::code_of(r), ErrorCode::kUsage);
  EXPECT_EQ(sigs.size(), 1u);
}

}  // namespace
}  // namespace ota
