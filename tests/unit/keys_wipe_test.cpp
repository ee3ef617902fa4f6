// Secret key files leave no copy of the seed in freed heap memory
// (libota/src/release/sign/secret_text.hpp): this executable replaces the global
// operator new/delete, and while a test watches, every block freed through
// operator delete is searched for the seed's hex digits before it goes back
// to malloc. nlohmann/json, std::string and everything else in libota
// allocate through these, so a seed that reached nlohmann (its lexer buffer,
// a string value, a growing dump) is found when it is freed.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "ota/release/keys.hpp"
#include "release/sign/secret_text.hpp"

namespace {

std::atomic<bool> g_watching{false};
char g_pattern[65];
std::size_t g_pattern_len = 0;
std::atomic<int> g_found{0};

void check_block(void* p) {
  if (p == nullptr || !g_watching.load(std::memory_order_relaxed)) return;
  const std::size_t n = ::malloc_usable_size(p);
  if (n >= g_pattern_len && ::memmem(p, n, g_pattern, g_pattern_len) != nullptr) g_found.fetch_add(1);
}

// Watches the frees in its scope for text.
class FreedMemoryWatch {
 public:
  explicit FreedMemoryWatch(const std::string& text) {
    g_pattern_len = std::min(text.size(), sizeof g_pattern);
    std::memcpy(g_pattern, text.data(), g_pattern_len);
    g_found = 0;
    g_watching = true;
  }
  ~FreedMemoryWatch() { g_watching = false; }
  int found() const { return g_found.load(); }
};

}  // namespace

void* operator new(std::size_t n) {
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n == 0 ? 1 : n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n == 0 ? 1 : n); }
void operator delete(void* p) noexcept {
  check_block(p);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

namespace ota {
namespace {

std::string seed_hex_of(const std::string& key_file) {
  const auto at = key_file.find("\"seed\": \"");
  if (at == std::string::npos) return {};
  return key_file.substr(at + 9, 64);
}

TEST(KeyFileWipe, ParsingAClearKeyFreesNoCopyOfTheSeed) {
  auto key = keys::SecretKey::generate();
  ASSERT_TRUE(key);
  auto text = keys::encode_secret(*key, std::nullopt);
  ASSERT_TRUE(text);
  const std::string seed = seed_hex_of(*text);
  ASSERT_EQ(seed.size(), 64u);
  {
    FreedMemoryWatch watch(seed);
    auto back = keys::parse_secret(*text, std::nullopt);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->public_key(), key->public_key());
    EXPECT_EQ(watch.found(), 0) << "a freed heap block held the seed's hex digits";
  }
}

TEST(KeyFileWipe, EncodingAClearKeyFreesNoCopyOfTheSeed) {
  // The seed of a fixed key, so the digits are known before encoding.
  const std::string seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
  std::uint8_t raw[32];
  for (int i = 0; i < 32; ++i) raw[i] = static_cast<std::uint8_t>(std::stoi(seed.substr(2 * i, 2), nullptr, 16));
  auto key = keys::SecretKey::from_seed(ByteSpan(raw, 32));
  ASSERT_TRUE(key);
  std::string out;
  {
    FreedMemoryWatch watch(seed);
    auto text = keys::encode_secret(*key, std::nullopt);
    ASSERT_TRUE(text);
    out = std::move(*text);
    EXPECT_EQ(watch.found(), 0) << "a freed heap block held the seed's hex digits";
  }
  EXPECT_EQ(seed_hex_of(out), seed);
  auto back = keys::parse_secret(out, std::nullopt);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->public_key(), key->public_key());
}

TEST(KeyFileWipe, TakeHexMemberMasksTheValueAndSkipsLookalikes) {
  std::string text = R"({"note": "\"seed\": \"ab\"", "seed" :  "0123abcd", "x": ["seed"]})";
  const std::string before = text;
  char out[64];
  std::size_t len = 0;
  EXPECT_EQ(keys::detail::take_hex_member(text, "seed", out, sizeof out, &len), 1);
  ASSERT_EQ(len, 8u);
  EXPECT_EQ(std::string(out, len), "0123abcd");
  EXPECT_EQ(text, R"({"note": "\"seed\": \"ab\"", "seed" :  "00000000", "x": ["seed"]})");
  EXPECT_EQ(text.size(), before.size());

  std::string escaped = R"({"seed": "01\u0032"})";
  EXPECT_EQ(keys::detail::take_hex_member(escaped, "seed", out, sizeof out, &len), -1);
  EXPECT_EQ(escaped.find("01"), std::string::npos);  // wiped, not handed on
  std::string too_long = "{\"seed\": \"" + std::string(65, 'a') + "\"}";
  EXPECT_EQ(keys::detail::take_hex_member(too_long, "seed", out, sizeof out, &len), -1);
  std::string none = R"({"sealed": {}})";
  EXPECT_EQ(keys::detail::take_hex_member(none, "seed", out, sizeof out, &len), 0);
}

TEST(KeyFileWipe, TwoSeedsOrANonHexSeedAreMalformed) {
  auto key = keys::SecretKey::generate();
  ASSERT_TRUE(key);
  auto text = keys::encode_secret(*key, std::nullopt);
  ASSERT_TRUE(text);
  std::string two = *text;
  two.insert(1, "\"seed\": \"00\",");
  auto r = keys::parse_secret(two, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  std::string nonhex = *text;
  const auto at = nonhex.find("\"seed\": \"") + 9;
  nonhex[at] = 'z';
  r = keys::parse_secret(nonhex, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
}

}  // namespace
}  // namespace ota
