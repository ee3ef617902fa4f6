// libFuzzer target: the campaign protocol's MQTT payloads, all untrusted
// (anyone who can publish on the broker may send them). The first byte picks
// the parser: the retained campaign document (parsed, then verified against
// the fixed trust store), a device report, an operator command, an
// availability message, or a bare campaign or control payload; a first byte
// of 0xF0 or more picks the signed-campaign parsers instead (the fleet
// registry, a signed report or command as the controller judges them, an
// install window of a rollout policy), so
// that the seeds of the first six keep their meaning.
//
// Oracles beyond "no crash, no sanitizer report":
// - a failure has a code of the documented set for that parser;
// - an accepted report, command, availability, campaign or control
//   re-encodes to bytes that parse to the same encoding;
// - a verified document is never accepted when signed by no trusted key;
// - a report judged against an empty registry, or a command against a
//   campaign that authorises no operator, never counts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ota/fleet/campaign.hpp"
#include "ota/fleet/identity.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;
namespace cp = ota::campaign;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t which = data[0] >= 0xF0 ? static_cast<std::uint8_t>(6 + (data[0] - 0xF0) % 6) : data[0] % 6;
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
    case 6: {
      auto r = cp::parse_registry(bytes);
      if (!r) {
        check(r.error().code == ErrorCode::kMalformed);
        return 0;
      }
      const Bytes e = cp::encode_registry(*r);
      auto again = cp::parse_registry(e);
      check(again && cp::encode_registry(*again) == e);
      return 0;
    }
    case 7: {
      auto r = cp::read_report_unverified(text);
      if (!r) check(r.error().code == ErrorCode::kMalformed);
      return 0;
    }
    case 8: {
      auto c = cp::parse_signed_command(bytes);
      if (!c) {
        check(c.error().code == ErrorCode::kMalformed);
        return 0;
      }
      const Bytes e = cp::encode_signed_command(*c);
      auto again = cp::parse_signed_command(e);
      check(again && cp::encode_signed_command(*again) == e);
      return 0;
    }
    case 9: {
      const cp::Registry empty;
      cp::Campaign campaign;
      campaign.security = cp::Security{};  // signed mode, no device registered
      const std::map<std::string, cp::DeviceView> seen;
      auto j = cp::judge_report(empty, campaign, "d1", text, seen);
      check(j.drop != cp::Drop::kNone);
      return 0;
    }
    case 10: {
      cp::Campaign campaign;
      campaign.security = cp::Security{};  // signed mode, no operator authorised
      auto j = cp::judge_command(campaign, text, {}, fuzz::kNow);
      check(j.drop != cp::CommandDrop::kNone);
      return 0;
    }
    case 11: {
      // An install window as `ota publish --window` reads it: formatted, it reads back the same.
      auto w = cp::parse_window(text);
      if (!w) {
        check(w.error().code == ErrorCode::kUsage);
        return 0;
      }
      auto again = cp::parse_window(cp::format_window(*w));
      check(again && *again == *w);
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
