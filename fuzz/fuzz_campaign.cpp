// libFuzzer target: the campaign protocol's MQTT payloads, all untrusted
// (anyone who can publish on the broker may send them). The first byte picks
// the parser: the retained campaign document (parsed, then verified against
// the fixed trust store), a device report, an operator command, an
// availability message, or a bare campaign or control payload.
//
// Oracles beyond "no crash, no sanitizer report":
// - a failure has a code of the documented set for that parser;
// - an accepted report, command, availability, campaign or control
//   re-encodes to bytes that parse to the same encoding;
// - a verified document is never accepted when signed by no trusted key.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ota/fleet/campaign.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;
namespace cp = ota::campaign;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t which = data[0] % 6;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const ByteSpan bytes(data + 1, size - 1);
  switch (which) {
    case 0: {
      auto d = cp::parse_document(text);
      if (!d) {
        check(fuzz::one_of(d.error().code, {ErrorCode::kMalformed}));
        return 0;
      }
      auto v = cp::verify_document(fuzz::fixed_trust(), *d, fuzz::kNow);
      if (!v) {
        check(fuzz::one_of(v.error().code, {ErrorCode::kMalformed, ErrorCode::kBadSignature, ErrorCode::kTooFewSignatures,
                                            ErrorCode::kUnknownKey, ErrorCode::kKeyRevoked, ErrorCode::kExpired,
                                            ErrorCode::kUnsupported}));
        return 0;
      }
      check(!d->campaign.signatures.empty() && !d->control.signatures.empty());
      check(v->control.campaign == v->campaign.id && v->control.wave < v->campaign.waves.size());
      return 0;
    }
    case 1: {
      auto r = cp::parse_report(text);
      if (!r) {
        check(r.error().code == ErrorCode::kMalformed);
        return 0;
      }
      const std::string e = cp::encode_report(*r);
      auto again = cp::parse_report(e);
      check(again && cp::encode_report(*again) == e);
      return 0;
    }
    case 2: {
      auto c = cp::parse_command(text);
      if (!c) {
        check(c.error().code == ErrorCode::kMalformed);
        return 0;
      }
      const std::string e = cp::encode_command(*c);
      auto again = cp::parse_command(e);
      check(again && cp::encode_command(*again) == e);
      return 0;
    }
    case 3: {
      auto a = cp::parse_availability(text);
      if (!a) {
        check(a.error().code == ErrorCode::kMalformed);
        return 0;
      }
      const std::string e = cp::encode_availability(*a);
      auto again = cp::parse_availability(e);
      check(again && cp::encode_availability(*again) == e);
      return 0;
    }
    case 4: {
      auto c = cp::parse_campaign(bytes);
      if (!c) {
        check(fuzz::one_of(c.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
        return 0;
      }
      const Bytes e = cp::encode_campaign(*c);
      auto again = cp::parse_campaign(e);
      check(again && cp::encode_campaign(*again) == e);
      return 0;
    }
    default: {
      auto k = cp::parse_control(bytes);
      if (!k) {
        check(k.error().code == ErrorCode::kMalformed);
        return 0;
      }
      const Bytes e = cp::encode_control(*k);
      auto again = cp::parse_control(e);
      check(again && cp::encode_control(*again) == e);
      return 0;
    }
  }
}
