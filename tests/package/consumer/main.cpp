// Uses the installed headers and library: a content hash, a delta round trip
// in memory, and a wave bucket.
#include <cstdio>
#include <string>

#include "ota/fleet/campaign.hpp"
#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"

int main() {
  const std::string text = "abc";
  const auto h = ota::content_hash(ota::ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  std::printf("%s %u\n", ota::to_hex(h).c_str(), ota::campaign::bucket("campaign", "device"));
  return 0;
}
