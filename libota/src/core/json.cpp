#include "core/json.hpp"

#include <sodium.h>

#include <set>
#include <vector>

namespace ota::json {

namespace {
constexpr int kMaxDepth = 16;

struct DuplicateKey {};
struct TooDeep {};
}  // namespace

Result<Json> parse_strict(std::string_view text, std::size_t max_bytes, std::string_view what) {
  const std::string w(what);
  if (text.size() > max_bytes)
    return fail(ErrorCode::kMalformed, w + " is " + std::to_string(text.size()) + " bytes, over the limit of " +
                                           std::to_string(max_bytes));
  // A UTF-8 byte-order mark is not JSON (RFC 8259 forbids emitting one).
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF)
    return fail(ErrorCode::kMalformed, w + ": starts with a byte-order mark");
  std::vector<std::set<std::string>> keys;
  bool duplicate = false, too_deep = false;
  auto cb = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    if (depth > kMaxDepth) {
      too_deep = true;
      throw TooDeep{};
    }
    switch (event) {
      case Json::parse_event_t::object_start: keys.emplace_back(); break;
      case Json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (keys.empty() || !keys.back().insert(parsed.get<std::string>()).second) {
          duplicate = true;
          throw DuplicateKey{};
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const DuplicateKey&) {
    return fail(ErrorCode::kMalformed, w + ": duplicate object key");
  } catch (const TooDeep&) {
    return fail(ErrorCode::kMalformed, w + ": nested deeper than " + std::to_string(kMaxDepth) + " levels");
  } catch (const Json::parse_error& e) {
    (void)duplicate;
    (void)too_deep;
    return fail(ErrorCode::kMalformed, w + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  } catch (const Json::exception&) {
    return fail(ErrorCode::kMalformed, w + ": not valid JSON");
  }
}

Result<Object> Object::of(const Json& j, std::string what) {
  if (!j.is_object()) return fail(ErrorCode::kMalformed, what + " is not a JSON object");
  Object o;
  o.j_ = &j;
  o.what_ = std::move(what);
  return o;
}

Status Object::only(std::initializer_list<std::string_view> allowed, bool quote) const {
  for (auto it = j_->begin(); it != j_->end(); ++it) {
    bool known = false;
    for (auto a : allowed) known = known || it.key() == a;
    if (!known) {
      if (!quote) return fail(ErrorCode::kMalformed, what_ + ": unknown field");
      std::string k = it.key().size() > 40 ? it.key().substr(0, 40) + "..." : it.key();
      return fail(ErrorCode::kMalformed, what_ + ": unknown field \"" + k + "\"");
    }
  }
  return ok();
}

bool Object::has(std::string_view key) const { return j_->contains(key); }

Result<const Json*> Object::get(std::string_view key) const {
  auto it = j_->find(key);
  if (it == j_->end()) return fail(ErrorCode::kMalformed, what_ + ": missing field \"" + std::string(key) + "\"");
  return &*it;
}

Result<std::string> as_string(const Json& j, std::string_view what, std::size_t max_len) {
  if (!j.is_string()) return fail(ErrorCode::kMalformed, std::string(what) + " is not a string");
  const auto& s = j.get_ref<const std::string&>();
  if (s.size() > max_len)
    return fail(ErrorCode::kMalformed, std::string(what) + " is longer than " + std::to_string(max_len) + " bytes");
  return s;
}

Result<Digest> as_digest(const Json& j, std::string_view what) {
  OTA_TRY_ASSIGN(auto s, as_string(j, what, 64));
  auto d = digest_from_hex(s);
  if (!d || s.size() != 64) return fail(ErrorCode::kMalformed, std::string(what) + " is not 64 hex digits");
  return *d;
}

Result<std::string> Object::string(std::string_view key, std::size_t max_len) const {
  OTA_TRY_ASSIGN(auto v, get(key));
  return as_string(*v, what_ + "." + std::string(key), max_len);
}

Result<std::uint64_t> Object::u64(std::string_view key, std::uint64_t max) const {
  OTA_TRY_ASSIGN(auto v, get(key));
  if (!(v)->is_number_unsigned())
    return fail(ErrorCode::kMalformed, what_ + "." + std::string(key) + " is not a non-negative integer");
  auto n = (v)->get<std::uint64_t>();
  if (n > max)
    return fail(ErrorCode::kMalformed, what_ + "." + std::string(key) + " is over " + std::to_string(max));
  return n;
}

Result<bool> Object::boolean(std::string_view key) const {
  OTA_TRY_ASSIGN(auto v, get(key));
  if (!(v)->is_boolean()) return fail(ErrorCode::kMalformed, what_ + "." + std::string(key) + " is not true or false");
  return (v)->get<bool>();
}

Result<Digest> Object::digest(std::string_view key) const {
  OTA_TRY_ASSIGN(auto v, get(key));
  return as_digest(*v, what_ + "." + std::string(key));
}

Result<const Json*> Object::array(std::string_view key, std::size_t max_items) const {
  OTA_TRY_ASSIGN(auto v, get(key));
  if (!(v)->is_array()) return fail(ErrorCode::kMalformed, what_ + "." + std::string(key) + " is not an array");
  if ((v)->size() > max_items)
    return fail(ErrorCode::kMalformed,
                what_ + "." + std::string(key) + " has more than " + std::to_string(max_items) + " items");
  return v;
}

Result<const Json*> Object::object(std::string_view key) const {
  OTA_TRY_ASSIGN(auto v, get(key));
  if (!(v)->is_object()) return fail(ErrorCode::kMalformed, what_ + "." + std::string(key) + " is not an object");
  return v;
}

std::string hex(ByteSpan b) { return to_hex(b); }

std::string base64_encode(ByteSpan b) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_encoded_len(b.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), variant);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<Bytes> base64_decode(std::string_view text, std::size_t max_bytes) {
  if (text.size() / 4 * 3 > max_bytes + 3) return std::nullopt;
  Bytes out(text.size() / 4 * 3 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size() || len > max_bytes)
    return std::nullopt;
  out.resize(len);
  return out;
}

}  // namespace ota::json
