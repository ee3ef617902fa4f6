// libFuzzer target: arbitrary bytes as the agent's state record (state.json,
// read back on every start; a torn or corrupted file must be refused, never
// misread).
//
// Oracles beyond "no crash, no sanitizer report":
// - a failure is kMalformed or kUnsupported;
// - an accepted state re-encodes to bytes that parse to the same encoding
//   (encode(parse(encode(s))) == encode(s)).
#include <cstddef>
#include <cstdint>

#include "ota/device/agent.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto s = agent::parse_state(ByteSpan(data, size));
  if (!s) {
    check(fuzz::one_of(s.error().code, {ErrorCode::kMalformed, ErrorCode::kUnsupported}));
    return 0;
  }
  const Bytes encoded = agent::encode_state(*s);
  auto again = agent::parse_state(encoded);
  check(static_cast<bool>(again));
  check(agent::encode_state(*again) == encoded);
  return 0;
}
