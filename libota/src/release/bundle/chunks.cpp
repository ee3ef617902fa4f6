#include "ota/release/chunks.hpp"

#include <array>
#include <cstring>

namespace ota::chunks {

namespace {

constexpr std::uint8_t kMagic[4] = {'O', 'T', 'C', 'I'};

// The gear table: splitmix64 from state 0 (docs/formats.md pins it).
constexpr std::array<std::uint64_t, 256> make_gear() {
  std::array<std::uint64_t, 256> g{};
  std::uint64_t s = 0;
  for (auto& v : g) {
    s += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    v = z ^ (z >> 31);
  }
  return g;
}
constexpr std::array<std::uint64_t, 256> kGear = make_gear();

void put32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put64(Bytes& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}
std::uint64_t get64(const std::uint8_t* p) { return std::uint64_t(get32(p)) | std::uint64_t(get32(p + 4)) << 32; }

tl::unexpected<Error> malformed(const std::string& msg) { return fail(ErrorCode::kMalformed, "chunk index: " + msg); }

}  // namespace

Status check_params(const Params& p) {
  if (p.min_size < kMinChunkBytes || p.min_size > p.max_size || p.max_size > kMaxChunkBytes || p.avg_bits < 6 ||
      p.avg_bits > 20)
    return fail(ErrorCode::kUsage, "chunk parameters: need 64 <= min <= max <= 1 MiB and 6 <= avg_bits <= 20");
  return ok();
}

std::size_t next_cut(ByteSpan data, const Params& p) {
  const std::size_t n = std::min<std::size_t>(data.size(), p.max_size);
  if (n <= p.min_size) return n;
  // The hash at a checked position depends on the 64 bytes before it only
  // (each step shifts one byte's contribution out of the top).
  std::uint64_t h = 0;
  const unsigned shift = 64u - p.avg_bits;
  for (std::size_t i = p.min_size - 64; i < n; ++i) {
    h = (h << 1) + kGear[data[i]];
    if (i + 1 >= p.min_size && (h >> shift) == 0) return i + 1;
  }
  return n;
}

std::uint64_t Index::stored_total() const {
  std::uint64_t t = 0;
  for (const auto& e : entries) t += e.stored_size;
  return t;
}

Bytes encode_index(const Index& index) {
  Bytes b;
  b.reserve(static_cast<std::size_t>(index.encoded_size()));
  b.insert(b.end(), kMagic, kMagic + 4);
  b.push_back(kIndexVersion);
  b.push_back(index.params.avg_bits);
  b.push_back(0);
  b.push_back(0);
  put32(b, index.params.min_size);
  put32(b, index.params.max_size);
  put32(b, static_cast<std::uint32_t>(index.entries.size()));
  put32(b, 0);
  put64(b, index.target_size);
  for (const auto& e : index.entries) {
    put32(b, e.plain_size);
    put32(b, e.stored_size);
    b.push_back(static_cast<std::uint8_t>(e.mode));
    b.insert(b.end(), e.plain_hash.begin(), e.plain_hash.end());
    b.insert(b.end(), e.stored_hash.begin(), e.stored_hash.end());
  }
  return b;
}

Result<Index> parse_index(ByteSpan bytes) {
  if (bytes.size() < kIndexHeaderBytes) return malformed("shorter than its header");
  const std::uint8_t* h = bytes.data();
  if (std::memcmp(h, kMagic, 4) != 0) return malformed("bad magic");
  if (h[4] != kIndexVersion)
    return fail(ErrorCode::kUnsupported, "chunk index: version " + std::to_string(h[4]) + " is not supported");
  if (h[6] != 0 || h[7] != 0 || get32(h + 20) != 0) return malformed("reserved bytes are not zero");
  Index ix;
  ix.params.avg_bits = h[5];
  ix.params.min_size = get32(h + 8);
  ix.params.max_size = get32(h + 12);
  if (!check_params(ix.params)) return malformed("chunk parameters out of range");
  const std::uint32_t count = get32(h + 16);
  ix.target_size = get64(h + 24);
  if (count > kMaxIndexEntries) return malformed("more than " + std::to_string(kMaxIndexEntries) + " chunks");
  if (bytes.size() != kIndexHeaderBytes + std::uint64_t{kIndexEntryBytes} * count)
    return malformed("size " + std::to_string(bytes.size()) + " does not match " + std::to_string(count) + " chunks");
  if ((count == 0) != (ix.target_size == 0)) return malformed("no chunks for a non-empty image, or the reverse");
  if (ix.target_size > std::uint64_t{count} * ix.params.max_size) return malformed("target size exceeds its chunks");
  ix.entries.resize(count);
  std::uint64_t plain = 0;
  const std::uint8_t* e = h + kIndexHeaderBytes;
  for (std::uint32_t i = 0; i < count; ++i, e += kIndexEntryBytes) {
    Entry& x = ix.entries[i];
    x.plain_size = get32(e);
    x.stored_size = get32(e + 4);
    const std::uint8_t mode = e[8];
    const std::string where = "chunk " + std::to_string(i) + ": ";
    if (x.plain_size == 0 || x.plain_size > ix.params.max_size) return malformed(where + "size out of range");
    if (mode == 0) {
      x.mode = Mode::kRaw;
      if (x.stored_size != x.plain_size) return malformed(where + "a raw chunk is stored at its size");
    } else if (mode == 1) {
      x.mode = Mode::kZstd;
      if (x.stored_size == 0 || x.stored_size >= x.plain_size) return malformed(where + "a zstd chunk is smaller than its image bytes");
    } else {
      return malformed(where + "unknown mode " + std::to_string(mode));
    }
    std::memcpy(x.plain_hash.data(), e + 9, 32);
    std::memcpy(x.stored_hash.data(), e + 41, 32);
    plain += x.plain_size;
  }
  if (plain != ix.target_size) return malformed("chunk sizes do not add up to the target size");
  return ix;
}

}  // namespace ota::chunks
