// JSON written by hand, for the front end that must not carry a JSON library
// (ota-patch: its whole process is the patcher's memory budget). One object
// per call, keys in the order they are added, on one line; strings are
// escaped as RFC 8259 requires (", \ and control characters; other bytes as
// they are). ota prints the same documents through nlohmann::json; the tests
// compare the two (tests/integration/cli_test.cpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace ota::front_end {

inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value) {
    this->key(key);
    append_json_string(text_, value);
    return *this;
  }
  JsonObject& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  JsonObject& add(std::string_view key, bool value) {
    this->key(key);
    text_ += value ? "true" : "false";
    return *this;
  }
  JsonObject& add(std::string_view key, std::uint64_t value) {
    this->key(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonObject& add(std::string_view key, int value) {
    this->key(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonObject& add(std::string_view key, double value) {
    this->key(key);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    text_ += buf;
    return *this;
  }
  JsonObject& add(std::string_view key, const JsonObject& value) {
    this->key(key);
    text_ += value.str();
    return *this;
  }
  std::string str() const { return "{" + text_ + "}"; }

 private:
  void key(std::string_view k) {
    if (!text_.empty()) text_ += ',';
    append_json_string(text_, k);
    text_ += ':';
  }
  std::string text_;
};

}  // namespace ota::front_end
