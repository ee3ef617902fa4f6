// Classic BSDIFF40 patches (bsdiff 4.x, as Debian's bsdiff/bspatch write and
// read them): for interoperability only. ota's own format (delta.hpp) is
// smaller, streams, and carries hashes; BSDIFF40 has no integrity check of
// its own, so apply() can only promise a result of the declared size.
//
// Layout: "BSDIFF40", then three little-endian sign-magnitude 64-bit integers
// (control bytes, diff bytes, NEW size) and three bzip2 streams (control
// triples, diff bytes, extra bytes).
#pragma once

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::bsdiff40 {

inline constexpr char kMagic[8] = {'B', 'S', 'D', 'I', 'F', 'F', '4', '0'};

// True when data starts with the BSDIFF40 magic.
bool is_bsdiff40(ByteSpan data);

struct Stats {
  std::uint64_t patch_size = 0;
  std::uint64_t records = 0;
};

// Writes a BSDIFF40 patch from the same cover search as ota's own format.
Result<Stats> diff(ByteSpan old_image, ByteSpan new_image, Writer& patch);

// Applies a BSDIFF40 patch. The patch is read by random access (its three
// streams are decoded side by side); OLD by random access; NEW sequentially.
// Memory is bounded (three bzip2 decoders and fixed buffers).
Status apply(const Source& old_image, const Source& patch, Writer& out);

// The NEW size a BSDIFF40 patch declares (from its 32-byte header).
Result<std::uint64_t> new_size(const Source& patch);

}  // namespace ota::bsdiff40
