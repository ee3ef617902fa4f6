// libFuzzer target: arbitrary bytes as a key file, through parse_public (which
// also accepts a secret key file), parse_secret and is_sealed, and the same
// bytes as an X25519 key (encryption::parse_public, parse_secret: a key
// file, 64 hex digits or 32 raw bytes).
//
// parse_secret is called without a passphrase: a sealed key then fails with
// kBadPassphrase after every field is checked and before Argon2id runs, so a
// fuzzed memlimit (the parser allows up to 4 GiB) never costs an execution
// its time or memory.
//
// Oracles beyond "no crash, no sanitizer report":
// - failures carry the documented codes (kMalformed, kUnsupported; and
//   kBadPassphrase from parse_secret only for a sealed file);
// - an accepted public key round-trips through encode_public;
// - an accepted secret key has the public key parse_public reads from the
//   same text, signs what its public key verifies, and round-trips through
//   encode_secret (unsealed).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "ota/release/encryption.hpp"
#include "ota/release/keys.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;

namespace {

// X25519 key files: failures carry kMalformed or kUnsupported; an accepted
// key round-trips through its encoders.
void check_x25519(std::string_view text) {
  auto pub = encryption::parse_public(text);
  if (pub) {
    auto again = encryption::parse_public(encryption::encode_public(*pub));
    check(again.has_value() && *again == *pub);
  } else {
    check(fuzz::one_of(pub.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
  }
  auto secret = encryption::parse_secret(text);
  if (!secret) {
    check(fuzz::one_of(secret.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
    return;
  }
  if (pub) check(secret->public_key() == *pub);
  auto text2 = encryption::encode_secret(*secret);
  check(text2.has_value());
  auto again = encryption::parse_secret(*text2);
  check(again.has_value() && again->public_key() == secret->public_key());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(ByteSpan(data, size));
  check_x25519(text);

  auto pub = keys::parse_public(text);
  if (pub) {
    auto again = keys::parse_public(keys::encode_public(*pub));
    check(again.has_value() && *again == *pub);
    check(keys::key_id_from_hex(pub->id_hex()) == pub->id());
  } else {
    check(fuzz::one_of(pub.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
  }

  const bool sealed = keys::is_sealed(text);
  auto secret = keys::parse_secret(text, std::nullopt);
  if (!secret) {
    check(fuzz::one_of(secret.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported, ErrorCode::kBadPassphrase}));
    if (secret.error().code == ErrorCode::kBadPassphrase) check(sealed && pub.has_value());
    return 0;
  }
  check(!sealed);
  check(pub.has_value() && secret->public_key() == *pub);
  const std::uint8_t message[] = "ota fuzz message";
  check(pub->verify(ByteSpan(message, sizeof message), secret->sign(ByteSpan(message, sizeof message))));
  auto text2 = keys::encode_secret(*secret, std::nullopt);
  check(text2.has_value());
  auto again = keys::parse_secret(*text2, std::nullopt);
  check(again.has_value() && again->public_key() == *pub);
  return 0;
}
