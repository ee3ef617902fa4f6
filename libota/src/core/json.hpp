// Internal: strict JSON parsing for untrusted documents (manifests, roots,
// key files, signature blocks) on top of nlohmann/json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"

namespace ota::json {

using Json = nlohmann::json;
using Ordered = nlohmann::ordered_json;

// Parses text as one JSON value: at most max_bytes, nesting at most 16
// levels, no duplicate object keys, nothing but whitespace after it. Errors
// are kMalformed and never quote the input (it may be a secret).
Result<Json> parse_strict(std::string_view text, std::size_t max_bytes, std::string_view what);

// Field access for checked documents; each fails with kMalformed naming the
// field, never quoting its value.
class Object {
 public:
  static Result<Object> of(const Json& j, std::string what);
  // Every key of the object must be one of these. An unknown key is named in
  // the error unless quote is false (documents that may hold secrets).
  Status only(std::initializer_list<std::string_view> allowed, bool quote = true) const;
  bool has(std::string_view key) const;
  Result<std::string> string(std::string_view key, std::size_t max_len = 256) const;
  Result<std::uint64_t> u64(std::string_view key, std::uint64_t max = (1ull << 63) - 1) const;
  Result<bool> boolean(std::string_view key) const;
  Result<Digest> digest(std::string_view key) const;
  Result<const Json*> array(std::string_view key, std::size_t max_items) const;
  Result<const Json*> object(std::string_view key) const;
  const std::string& what() const { return what_; }

 private:
  Result<const Json*> get(std::string_view key) const;
  const Json* j_ = nullptr;
  std::string what_;
};

Result<std::string> as_string(const Json& j, std::string_view what, std::size_t max_len = 256);
Result<Digest> as_digest(const Json& j, std::string_view what);

// Lowercase hex of bytes (shared by every writer).
std::string hex(ByteSpan b);

// Standard base64 (RFC 4648, padded) through libsodium.
std::string base64_encode(ByteSpan b);
std::optional<Bytes> base64_decode(std::string_view text, std::size_t max_bytes);

}  // namespace ota::json
