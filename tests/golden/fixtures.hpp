// Reading the committed golden fixtures (tests/data/golden) in tests: their
// paths, their bytes, root 1 as a device's trust anchor, and the verify
// options of the fixtures' "now" and hardware. The including test target
// defines OTA_SOURCE_DIR.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "golden/golden.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/trust.hpp"
#include "support/signing.hpp"

namespace ota::golden {

inline std::string dir() { return std::string(OTA_SOURCE_DIR) + "/tests/data/golden"; }
inline std::string path(const std::string& name) { return dir() + "/" + name; }

// The bytes of fixture `name`; throws when it is missing.
inline Bytes file(const std::string& name) {
  std::ifstream f(path(name), std::ios::binary);
  if (!f) throw std::runtime_error("missing golden file " + name + " (scripts/make-golden.sh)");
  std::stringstream s;
  s << f.rdbuf();
  const std::string t = s.str();
  return Bytes(t.begin(), t.end());
}
inline std::string text(const std::string& name) {
  const Bytes b = file(name);
  return std::string(b.begin(), b.end());
}

// A trust store anchored at root-1.json.
inline trust::TrustStore anchor() {
  auto env = trust::parse_envelope(text("root-1.json"));
  if (!env) throw std::runtime_error(env.error().message);
  return test::store_from(*env);
}

// Verification at kNow for kHardware.
inline bundle::VerifyOptions at_now() {
  bundle::VerifyOptions o;
  o.policy.now = test::at(kNow);
  o.policy.hardware = kHardware;
  return o;
}

}  // namespace ota::golden
