// libFuzzer target: arbitrary bytes as an SBOM (what `ota build --sbom` checks
// and `ota inspect` summarises from a bundle's sbom payload).
//
// Oracles beyond "no crash, no sanitizer report":
// - a failure is kMalformed, kUnsupported or kLimitExceeded;
// - an accepted document is CycloneDX or SPDX, and the same bytes give the
//   same summary again (the check is a pure function).
#include <cstddef>
#include <cstdint>

#include "ota/release/sbom.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto s = sbom::check_sbom(ByteSpan(data, size));
  if (!s) {
    check(fuzz::one_of(s.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported, ErrorCode::kLimitExceeded}));
    return 0;
  }
  check(s->format == manifest::SbomFormat::kCycloneDx || s->format == manifest::SbomFormat::kSpdx);
  auto again = sbom::check_sbom(ByteSpan(data, size));
  check(again.has_value() && again->components.size() == s->components.size() && again->name == s->name &&
        again->spec_version == s->spec_version);
  return 0;
}
