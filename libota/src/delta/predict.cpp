#include "delta/predict.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "delta/elf_tables.hpp"
#include "delta/format.hpp"

namespace ota::delta::detail {

namespace {

struct Tables {
  // Bit b2 << 8 | b1: a rel32 operand follows the two bytes b2 b1 (x86); 8 KiB.
  std::array<std::uint64_t, 1024> bits{};
  bool site(unsigned key) const { return (bits[key >> 6] >> (key & 63)) & 1; }
  Tables() {
    std::array<bool, 256> rip_modrm{}, modrm_opcode{};
    for (int reg = 0; reg < 8; ++reg) rip_modrm[static_cast<std::size_t>(0x05 | reg << 3)] = true;
    // Opcodes that take a ModRM byte and commonly address memory rip-relatively
    // (mov, lea, cmp, add, sub, xor, test, movsxd, or, and, mov imm, group 1/5,
    // and the SSE moves after 0F).
    for (int op : {0x8B, 0x8D, 0x89, 0x3B, 0x03, 0x2B, 0x33, 0x39, 0x85, 0x63, 0x0B, 0x23, 0xC7, 0x80,
                   0x83, 0x81, 0xFF, 0x10, 0x11, 0x28, 0x29, 0x6F, 0x7F, 0xB6, 0xB7, 0x3A, 0x38, 0x88})
      modrm_opcode[static_cast<std::size_t>(op)] = true;
    for (unsigned b2 = 0; b2 < 256; ++b2)
      for (unsigned b1 = 0; b1 < 256; ++b1) {
        const bool site = b1 == 0xE8 || b1 == 0xE9 ||           // call, jmp rel32
                          (b2 == 0x0F && (b1 & 0xF0) == 0x80) ||  // jcc rel32
                          (rip_modrm[b1] && modrm_opcode[b2]);    // [rip + disp32]
        if (site) bits[(b2 << 8 | b1) >> 6] |= std::uint64_t{1} << ((b2 << 8 | b1) & 63);
      }
    // The opcode bytes as a nibble lookup for the vector scan: opcode b can
    // be a member when lo_class[b & 15] & hi_class[b >> 4] != 0. High nibbles
    // whose sets of low nibbles are equal share one of the 8 class bits; when
    // more than 8 sets differ, the pair whose union adds the fewest opcodes is
    // merged. A superset is harmless: site() is the exact test.
    std::array<std::uint16_t, 16> lows{};
    for (unsigned op = 0; op < 256; ++op)
      if (modrm_opcode[op]) lows[op >> 4] = static_cast<std::uint16_t>(lows[op >> 4] | 1u << (op & 15));
    std::vector<std::uint16_t> sets;
    for (std::uint16_t l : lows)
      if (l && std::find(sets.begin(), sets.end(), l) == sets.end()) sets.push_back(l);
    std::array<std::uint16_t, 16> merged = lows;
    while (sets.size() > 8) {
      std::size_t bi = 0, bj = 1;
      int best = 99;
      for (std::size_t i = 0; i < sets.size(); ++i)
        for (std::size_t j = i + 1; j < sets.size(); ++j) {
          int added = 0;
          for (std::uint16_t l : lows)
            if (l == sets[i] || l == sets[j]) added += std::popcount(static_cast<unsigned>((sets[i] | sets[j]) & ~l));
          if (added < best) best = added, bi = i, bj = j;
        }
      const std::uint16_t u = static_cast<std::uint16_t>(sets[bi] | sets[bj]);
      for (auto& l : merged)
        if (l == sets[bi] || l == sets[bj]) l = u;
      sets[bi] = u;
      sets.erase(sets.begin() + static_cast<std::ptrdiff_t>(bj));
    }
    for (unsigned hi = 0; hi < 16; ++hi) {
      if (!merged[hi]) continue;
      const auto cls = static_cast<unsigned>(std::find(sets.begin(), sets.end(), merged[hi]) - sets.begin());
      hi_class[hi] = static_cast<std::uint8_t>(1u << cls);
      for (unsigned lo = 0; lo < 16; ++lo)
        if (merged[hi] >> lo & 1) lo_class[lo] = static_cast<std::uint8_t>(lo_class[lo] | 1u << cls);
    }
  }
  std::array<std::uint8_t, 16> lo_class{}, hi_class{};
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

AddressMap AddressMap::from_covers(std::vector<MapEntry> covers, std::uint64_t merge_gap) {
  std::sort(covers.begin(), covers.end(), [](const MapEntry& a, const MapEntry& b) {
    if (a.old_start != b.old_start) return a.old_start < b.old_start;
    if (a.length != b.length) return a.length > b.length;
    return a.shift < b.shift;
  });
  AddressMap m;
  std::uint64_t covered_end = 0;
  for (const MapEntry& c : covers) {
    if (c.length == 0) continue;
    const std::uint64_t end = c.old_start + c.length;
    const std::uint64_t start = std::max(c.old_start, covered_end);
    if (start >= end) continue;
    if (!m.entries_.empty()) {
      MapEntry& last = m.entries_.back();
      if (last.shift == c.shift && start - (last.old_start + last.length) <= merge_gap) {
        last.length = end - last.old_start;
        covered_end = end;
        continue;
      }
    }
    m.entries_.push_back({start, end - start, c.shift});
    covered_end = end;
  }
  m.index();
  return m;
}

Bytes AddressMap::encode() const {
  Bytes out;
  put_varint(out, entries_.size());
  std::uint64_t prev_end = 0;
  std::int64_t prev_shift = 0;
  for (const MapEntry& e : entries_) {
    put_varint(out, e.old_start - prev_end);
    put_varint(out, e.length);
    put_varint(out, zigzag(e.shift - prev_shift));
    prev_end = e.old_start + e.length;
    prev_shift = e.shift;
  }
  return out;
}

Result<AddressMap> AddressMap::decode(ByteSpan data, std::uint64_t old_size, std::uint64_t max_entries) {
  auto bad = [](const char* what) {
    return fail(ErrorCode::kPatchMalformed, std::string("address map: ") + what);
  };
  std::size_t pos = 0;
  auto next = [&](std::uint64_t& v) {
    std::size_t used = 0;
    if (get_varint(data.subspan(pos), v, used) != VarintStatus::kOk) return false;
    pos += used;
    return true;
  };
  std::uint64_t count = 0;
  if (!next(count)) return bad("invalid entry count");
  if (count > max_entries) return fail(ErrorCode::kLimitExceeded, "address map has too many entries");
  AddressMap m;
  m.entries_.reserve(static_cast<std::size_t>(count));
  std::uint64_t prev_end = 0;
  std::int64_t prev_shift = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t gap = 0, length = 0, dshift = 0;
    if (!next(gap) || !next(length) || !next(dshift)) return bad("truncated entry");
    if (gap > old_size - prev_end || length == 0 || length > old_size - prev_end - gap)
      return bad("entry outside OLD or empty");
    if (i > 0 && gap == 0 && unzigzag(dshift) == 0) return bad("entries not merged");
    const std::int64_t delta = unzigzag(dshift);
    if ((delta > 0 && prev_shift > INT64_MAX / 2) || (delta < 0 && prev_shift < INT64_MIN / 2) ||
        delta > INT64_MAX / 2 || delta < INT64_MIN / 2)
      return bad("shift out of range");
    MapEntry e{prev_end + gap, length, prev_shift + delta};
    if (e.shift < 0 && static_cast<std::uint64_t>(-(e.shift + 1)) + 1 > e.old_start)
      return bad("entry maps before the start of NEW");
    // NEW offsets stay within 2^62, as sizes do: map() and the predictions
    // made from it (up to 2^33 past OLD for arm64) cannot overflow.
    if (e.shift > 0 && static_cast<std::uint64_t>(e.shift) > kMaxMappedOffset - (e.old_start + e.length))
      return bad("entry maps past 2^62");
    m.entries_.push_back(e);
    prev_end = e.old_start + e.length;
    prev_shift = e.shift;
  }
  if (pos != data.size()) return bad("trailing bytes");
  if (count > UINT32_MAX) return fail(ErrorCode::kLimitExceeded, "address map has too many entries");
  m.index();
  return m;
}

void AddressMap::index() {
  bucket_.clear();
  shift_ = 0;
  end_ = entries_.empty() ? 0 : entries_.back().old_start + entries_.back().length;
  if (entries_.empty()) return;
  std::uint64_t buckets = std::min<std::uint64_t>(16384, std::max<std::uint64_t>(1, 2 * entries_.size()));
  while ((end_ >> shift_) >= buckets) ++shift_;
  bucket_.resize(static_cast<std::size_t>((end_ >> shift_) + 1));
  std::size_t e = 0;
  for (std::size_t b = 0; b < bucket_.size(); ++b) {
    const std::uint64_t start = static_cast<std::uint64_t>(b) << shift_;
    while (e + 1 < entries_.size() && entries_[e].old_start + entries_[e].length <= start) ++e;
    bucket_[b] = static_cast<std::uint32_t>(e);
  }
}

namespace {

inline std::uint32_t le32(std::uint32_t v) {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap32(v);
  return v;
}

// Writes the bytes of a 4-byte site at s that fall inside [q, q + n).
void put_site(std::uint64_t s, const std::uint8_t bytes[4], std::uint64_t q, std::size_t n, std::uint8_t* out) {
  for (std::uint64_t j = 0; j < 4; ++j) {
    const std::uint64_t pos = s + j;
    if (pos >= q && pos < q + n) out[pos - q] = bytes[j];
  }
}

void predict_thumb(const AddressMap& map, ByteSpan window, std::uint64_t window_start, std::uint64_t old_size,
                   std::uint64_t q, std::size_t n, std::int64_t delta, std::uint8_t* out) {
  const std::uint64_t window_end = std::min<std::uint64_t>(window_start + window.size(), old_size);
  auto half = [&](std::uint64_t i, std::uint32_t& v) {
    if (i < window_start || i + 2 > window_end) return false;
    v = window[i - window_start] | static_cast<std::uint32_t>(window[i + 1 - window_start]) << 8;
    return true;
  };
  // BL (hw2 = 11x1x...) and B.W (10x1x...) after hw1 = 11110...
  auto cond = [&](std::uint64_t s, std::uint32_t& h1, std::uint32_t& h2) {
    return half(s, h1) && half(s + 2, h2) && (h1 >> 11) == 0x1E && (h2 >> 15) == 1 && ((h2 >> 12) & 1) == 1;
  };
  std::uint64_t s = q >= 2 ? q - 2 : 0;
  s &= ~std::uint64_t{1};
  for (; s < q + n; s += 2) {
    std::uint32_t h1 = 0, h2 = 0, p1 = 0, p2 = 0;
    if (!cond(s, h1, h2) || (s >= 2 && cond(s - 2, p1, p2))) continue;
    const std::uint32_t S = (h1 >> 10) & 1, J1 = (h2 >> 13) & 1, J2 = (h2 >> 11) & 1;
    const std::uint32_t I1 = 1 ^ (J1 ^ S), I2 = 1 ^ (J2 ^ S);
    std::int64_t imm = static_cast<std::int64_t>(S << 24 | I1 << 23 | I2 << 22 | (h1 & 0x3FF) << 12 | (h2 & 0x7FF) << 1);
    if (S) imm -= std::int64_t{1} << 25;
    const std::int64_t target = static_cast<std::int64_t>(s) + 4 + imm;
    if (target < 0 || static_cast<std::uint64_t>(target) >= old_size) continue;
    const auto mapped = map.map(static_cast<std::uint64_t>(target));
    if (!mapped) continue;
    const std::int64_t pred = *mapped - (static_cast<std::int64_t>(s) + delta + 4);
    if (pred < -(std::int64_t{1} << 24) || pred >= (std::int64_t{1} << 24) || (pred & 1)) continue;
    const auto u = static_cast<std::uint32_t>(pred) & 0x1FFFFFF;
    const std::uint32_t nS = (u >> 24) & 1, nI1 = (u >> 23) & 1, nI2 = (u >> 22) & 1;
    const std::uint32_t nJ1 = (1 ^ nI1) ^ nS, nJ2 = (1 ^ nI2) ^ nS;
    const std::uint32_t n1 = 0xF000 | nS << 10 | ((u >> 12) & 0x3FF);
    const std::uint32_t n2 = (h2 & 0xD000) | nJ1 << 13 | nJ2 << 11 | ((u >> 1) & 0x7FF);
    const std::uint8_t bytes[4] = {static_cast<std::uint8_t>(n1), static_cast<std::uint8_t>(n1 >> 8),
                                   static_cast<std::uint8_t>(n2), static_cast<std::uint8_t>(n2 >> 8)};
    put_site(s, bytes, q, n, out);
  }
}

// ---- AArch64: 4-byte little-endian words at 4-aligned OLD offsets ----
//
// Sites: BL, and ADRP with the ADD/LDR/STR right after it that adds the low 12
// bits of the same address. B, B.cond, CBZ/CBNZ, TBZ/TBNZ, ADR and LDR
// (literal) are not sites: measured on esbuild and node, the words in data
// that look like them cost more than their moved targets save
// (docs/design.md).

inline bool is_bl(std::uint32_t w) { return (w & 0xFC000000) == 0x94000000; }
inline bool is_adrp(std::uint32_t w) { return (w & 0x9F000000) == 0x90000000; }

// ADRP's 21-bit immhi:immlo, a signed count of 4 KiB pages.
inline std::int64_t adrp_pages(std::uint32_t w) {
  const std::uint32_t u = (w >> 5 & 0x7FFFF) << 2 | (w >> 29 & 3);
  return static_cast<std::int32_t>(u << 11) >> 11;
}
inline std::uint32_t with_adrp_pages(std::uint32_t w, std::int64_t pages) {
  const auto u = static_cast<std::uint32_t>(pages) & 0x1FFFFF;
  return (w & 0x9F00001F) | (u & 3) << 29 | (u >> 2) << 5;
}

// The log2 of the scale of w's imm12 when w adds the low 12 bits of an
// address held in register `base` (ADD Xd, Xbase, #imm12; LDR/STR/PRFM
// [Xbase, #imm12 << scale], general or SIMD&FP), else -1.
inline int lo12_scale(std::uint32_t w, std::uint32_t base) {
  if ((w >> 5 & 31) != base) return -1;
  if ((w >> 22) == 0x244) return 0;  // ADD (immediate), sf = 1, sh = 0
  if ((w >> 24 & 0x3B) != 0x39) return -1;
  const unsigned size = w >> 30;
  if (!(w >> 26 & 1)) return static_cast<int>(size);
  const unsigned scale = (w >> 23 & 1) << 2 | size;  // opc<1>:size, 4 = 128-bit
  return scale <= 4 ? static_cast<int>(scale) : -1;
}

void predict_arm64(const AddressMap& map, ByteSpan window, std::uint64_t window_start, std::uint64_t old_size,
                   std::uint64_t q, std::size_t n, std::int64_t delta, std::uint8_t* out) {
  const std::uint64_t window_end = std::min<std::uint64_t>(window_start + window.size(), old_size);
  auto word = [&](std::uint64_t i, std::uint32_t& v) {
    if (i < window_start || i + 4 > window_end) return false;
    std::memcpy(&v, window.data() + (i - window_start), 4);
    v = le32(v);
    return true;
  };
  // An ADRP at a and the word after it, which adds the low 12 bits of the
  // same address t = page(a) + 4096 * pages + (imm12 << scale). Past the end
  // of OLD (zero-initialised data), t moves with the map's last entry.
  auto pair = [&](std::uint64_t a, std::uint32_t adrp, std::uint32_t user, std::uint32_t& new_adrp,
                  std::uint32_t& new_user) {
    const std::uint32_t rd = adrp & 31;
    const int scale = rd == 31 ? -1 : lo12_scale(user, rd);
    if (scale < 0) return false;
    const std::uint32_t lo = (user >> 10 & 0xFFF) << scale;
    if (lo > 0xFFF) return false;
    const std::int64_t t = static_cast<std::int64_t>(a & ~std::uint64_t{0xFFF}) + 4096 * adrp_pages(adrp) + lo;
    if (t < 0) return false;
    const auto m = static_cast<std::uint64_t>(t) < old_size ? map.map(static_cast<std::uint64_t>(t))
                                                             : map.map_past_end(static_cast<std::uint64_t>(t), old_size);
    if (!m || (*m & ((std::int64_t{1} << scale) - 1))) return false;
    const std::int64_t pages = (*m >> 12) - ((static_cast<std::int64_t>(a) + delta) >> 12);
    if (pages < -(std::int64_t{1} << 20) || pages >= (std::int64_t{1} << 20)) return false;
    new_adrp = with_adrp_pages(adrp, pages);
    new_user = (user & ~(0xFFFu << 10)) | static_cast<std::uint32_t>((*m & 0xFFF) >> scale) << 10;
    return true;
  };
  // Every 4-aligned word that overlaps [q, q + n).
  for (std::uint64_t s = ((q >= 3 ? q - 3 : 0) + 3) & ~std::uint64_t{3}; s < q + n; s += 4) {
    std::uint32_t v = 0, nv = 0, other = 0, neighbour = 0;
    if (!word(s, v)) continue;
    if (is_bl(v)) {
      // BL: target s + 4 * imm26, re-encoded if within +-128 MiB.
      const std::int64_t t = static_cast<std::int64_t>(s) + 4 * (static_cast<std::int32_t>(v << 6) >> 6);
      if (t < 0 || static_cast<std::uint64_t>(t) >= old_size) continue;
      const auto m = map.map(static_cast<std::uint64_t>(t));
      if (!m) continue;
      const std::int64_t pred = *m - (static_cast<std::int64_t>(s) + delta);
      if ((pred & 3) || pred < -(std::int64_t{1} << 27) || pred >= (std::int64_t{1} << 27)) continue;
      nv = (v & 0xFC000000) | (static_cast<std::uint32_t>(pred >> 2) & 0x3FFFFFF);
    } else if (is_adrp(v)) {
      if (!word(s + 4, neighbour) || !pair(s, v, neighbour, nv, other)) continue;
    } else {
      if (s < 4 || !word(s - 4, neighbour) || !is_adrp(neighbour) || !pair(s - 4, neighbour, v, other, nv)) continue;
    }
    if (nv == v) continue;
    if (s >= q && s + 4 <= q + n) {
      const std::uint32_t le = le32(nv);
      std::memcpy(out + (s - q), &le, 4);
      continue;
    }
    const std::uint8_t bytes[4] = {static_cast<std::uint8_t>(nv), static_cast<std::uint8_t>(nv >> 8),
                                   static_cast<std::uint8_t>(nv >> 16), static_cast<std::uint8_t>(nv >> 24)};
    put_site(s, bytes, q, n, out);
  }
}

// Bit k of the result: bytes p[k - 1], p[k] can be the two bytes before a
// rel32 operand: p[k] is E8 or E9, or 8x after 0F, or a rip-relative ModRM
// (00 reg 101, whose opcode byte the caller checks), k < 16. p[-1] is read.
inline unsigned site_candidates16(const std::uint8_t* p) {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p - 1));
  const __m128i call = _mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8(static_cast<char>(0xFE))),
                                      _mm_set1_epi8(static_cast<char>(0xE8)));
  const __m128i jcc = _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8(static_cast<char>(0xF0))),
                                                   _mm_set1_epi8(static_cast<char>(0x80))),
                                    _mm_cmpeq_epi8(before, _mm_set1_epi8(0x0F)));
  const __m128i rip = _mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8(static_cast<char>(0xC7))),
                                     _mm_set1_epi8(static_cast<char>(0x05)));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(call, jcc), rip)));
#else
  unsigned m = 0;
  for (int k = 0; k < 16; ++k) {
    const unsigned b = p[k], a = p[k - 1];
    m |= static_cast<unsigned>((b & 0xFE) == 0xE8 || ((b & 0xF0) == 0x80 && a == 0x0F) || (b & 0xC7) == 0x05) << k;
  }
  return m;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
#define OTA_X86_AVX2 1
// Bit k: as site_candidates16, 32 positions, and a rip-relative ModRM only
// after a byte that the nibble lookup admits as its opcode (so most rip
// candidates are dropped here instead of in site()).
__attribute__((target("avx2"))) inline std::uint32_t site_candidates32(const std::uint8_t* p, __m256i lo_lut,
                                                                       __m256i hi_lut) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i before = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p - 1));
  const __m256i call = _mm256_cmpeq_epi8(_mm256_and_si256(v, _mm256_set1_epi8(static_cast<char>(0xFE))),
                                         _mm256_set1_epi8(static_cast<char>(0xE8)));
  const __m256i jcc = _mm256_and_si256(
      _mm256_cmpeq_epi8(_mm256_and_si256(v, _mm256_set1_epi8(static_cast<char>(0xF0))),
                        _mm256_set1_epi8(static_cast<char>(0x80))),
      _mm256_cmpeq_epi8(before, _mm256_set1_epi8(0x0F)));
  const __m256i rip = _mm256_cmpeq_epi8(_mm256_and_si256(v, _mm256_set1_epi8(static_cast<char>(0xC7))),
                                        _mm256_set1_epi8(static_cast<char>(0x05)));
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_shuffle_epi8(lo_lut, _mm256_and_si256(before, nibble));
  const __m256i hi = _mm256_shuffle_epi8(hi_lut, _mm256_and_si256(_mm256_srli_epi16(before, 4), nibble));
  const __m256i opcode = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());  // not an opcode
  const __m256i sites = _mm256_or_si256(_mm256_or_si256(call, jcc), _mm256_andnot_si256(opcode, rip));
  return static_cast<std::uint32_t>(_mm256_movemask_epi8(sites));
}

// The scan of predict_x86 over [k, hi), 32 positions at a time; returns where it stopped.
template <class Visit>
__attribute__((target("avx2"))) std::uint64_t scan_avx2(const std::uint8_t* w, std::uint64_t k, std::uint64_t hi,
                                                        const Tables& tb, Visit& visit) {
  const __m256i lo_lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tb.lo_class.data())));
  const __m256i hi_lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tb.hi_class.data())));
  for (; k + 32 <= hi; k += 32) {
    std::uint32_t m = site_candidates32(w + k - 1, lo_lut, hi_lut);
    while (m) {
      visit(k + static_cast<unsigned>(__builtin_ctz(m)));
      m &= m - 1;
    }
  }
  return k;
}

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

std::atomic<bool> g_portable_scan{false};

void predict_x86(const AddressMap& map, ByteSpan window, std::uint64_t window_start, std::uint64_t old_size,
                 std::uint64_t q, std::size_t n, std::int64_t delta, std::uint8_t* out) {
  const Tables& tb = tables();
  const std::uint64_t window_end = std::min<std::uint64_t>(window_start + window.size(), old_size);
  const std::uint8_t* w = window.data() - window_start;  // w[i] is OLD[i] for i in the window
  // A rel32 operand starts at k when the two bytes before it, both in the
  // window, form one of the instruction shapes above.
  auto cond = [&](std::uint64_t k) -> bool {
    return k >= window_start + 2 && k <= window_end && tb.site(static_cast<unsigned>(w[k - 2] << 8 | w[k - 1]));
  };
  auto predict_site = [&](std::uint64_t s) {
    if (s + 4 > window_end) return;
    std::uint32_t raw = 0;
    std::memcpy(&raw, w + s, 4);
    raw = le32(raw);
    const std::int64_t target = static_cast<std::int64_t>(s) + 4 + static_cast<std::int32_t>(raw);
    if (target < 0 || static_cast<std::uint64_t>(target) >= old_size) return;
    const auto mapped = map.map(static_cast<std::uint64_t>(target));
    if (!mapped) return;
    const std::int64_t pred = *mapped - (static_cast<std::int64_t>(s) + delta + 4);
    if (pred < INT32_MIN || pred > INT32_MAX) return;
    const auto v = static_cast<std::uint32_t>(static_cast<std::int32_t>(pred));
    if (v == raw) return;  // the target moved with the operand
    if (s >= q && s + 4 <= q + n) {
      const std::uint32_t le = le32(v);
      std::memcpy(out + (s - q), &le, 4);
      return;
    }
    const std::uint8_t bytes[4] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
                                   static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
    put_site(s, bytes, q, n, out);
  };
  // Sites are the positions s in [q - 3, q + n) where cond holds and does not
  // hold at s - 1, s - 2 or s - 3. `last` is the latest position where cond held.
  const std::uint64_t first = q >= 3 ? q - 3 : 0;
  const std::uint64_t stop = q + n;  // exclusive
  std::uint64_t last = UINT64_MAX;
  for (std::uint64_t k = first >= 3 ? first - 3 : 0; k < first; ++k)
    if (cond(k)) last = k;
  auto visit = [&](std::uint64_t k) {
    if (!tb.site(static_cast<unsigned>(w[k - 2] << 8 | w[k - 1]))) return;
    if (last == UINT64_MAX || k - last > 3) predict_site(k);
    last = k;
  };
  // cond can hold only for k in [window_start + 2, window_end]: scan the two
  // bytes before each such k, 16 positions at a time.
  const std::uint64_t lo = std::max(first, window_start + 2);
  const std::uint64_t hi = std::min(stop, window_end + 1);
  std::uint64_t k = lo;
#if defined(OTA_X86_AVX2)
  if (has_avx2() && !g_portable_scan.load(std::memory_order_relaxed)) k = scan_avx2(w, k, hi, tb, visit);
#endif
  for (; k + 16 <= hi; k += 16) {
    unsigned m = site_candidates16(w + k - 1);
    while (m) {
      visit(k + static_cast<unsigned>(__builtin_ctz(m)));
      m &= m - 1;
    }
  }
  for (; k < hi; ++k) visit(k);
}

}  // namespace

void predict(Predictor predictor, const AddressMap& map, ByteSpan window, std::uint64_t window_start,
             std::uint64_t old_size, std::uint64_t q, std::size_t n, std::int64_t delta, std::uint8_t* out,
             const ElfTables* elf) {
  std::memcpy(out, window.data() + (q - window_start), n);
  if (map.size() == 0) return;
  switch (predictor) {
    case Predictor::kX86: predict_x86(map, window, window_start, old_size, q, n, delta, out); break;
    case Predictor::kThumb: predict_thumb(map, window, window_start, old_size, q, n, delta, out); break;
    case Predictor::kArm64: predict_arm64(map, window, window_start, old_size, q, n, delta, out); break;
    case Predictor::kNone: break;
  }
  if (elf) predict_elf_tables(*elf, map, window, window_start, old_size, q, n, delta, out);
}

void use_portable_x86_scan(bool portable) { g_portable_scan.store(portable, std::memory_order_relaxed); }

bool looks_like_x86(ByteSpan old_image) {
  if (old_image.size() < 20) return false;
  if (!(old_image[0] == 0x7F && old_image[1] == 'E' && old_image[2] == 'L' && old_image[3] == 'F')) return false;
  const unsigned machine = old_image[18] | static_cast<unsigned>(old_image[19]) << 8;
  return machine == 62 || machine == 3;
}

bool looks_like_arm64(ByteSpan old_image) {
  if (old_image.size() < 20) return false;
  if (!(old_image[0] == 0x7F && old_image[1] == 'E' && old_image[2] == 'L' && old_image[3] == 'F')) return false;
  return (old_image[18] | static_cast<unsigned>(old_image[19]) << 8) == 183;
}

namespace {

// The loadable segments of a little-endian ELF64 AArch64 image whose memory
// runs past their file bytes: [p_offset + p_filesz, p_offset + p_memsz) in
// file offsets. Empty when the image is not one, or when a segment's file
// offsets do not stand for its addresses modulo 4 KiB.
std::vector<std::pair<std::uint64_t, std::uint64_t>> zero_filled(ByteSpan img) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (!looks_like_arm64(img) || img.size() < 64 || img[4] != 2 || img[5] != 1) return out;
  auto get = [&](std::uint64_t at, unsigned bytes) {
    std::uint64_t v = 0;
    for (unsigned j = 0; j < bytes; ++j) v |= static_cast<std::uint64_t>(img[at + j]) << (8 * j);
    return v;
  };
  const std::uint64_t phoff = get(32, 8), entsize = get(54, 2), count = get(56, 2);
  if (entsize < 56 || phoff > img.size() || count * entsize > img.size() - phoff) return out;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t at = phoff + i * entsize;
    if (get(at, 4) != 1) continue;  // PT_LOAD
    const std::uint64_t offset = get(at + 8, 8), vaddr = get(at + 16, 8), filesz = get(at + 32, 8),
                        memsz = get(at + 40, 8);
    if (memsz <= filesz) continue;
    if (((vaddr - offset) & 0xFFF) != 0 || offset > (std::uint64_t{1} << 48) || memsz > (std::uint64_t{1} << 48))
      return {};
    out.emplace_back(offset + filesz, offset + memsz);
  }
  return out;
}

}  // namespace

void map_zero_filled(ByteSpan old_image, ByteSpan new_image, std::vector<MapEntry>& covers) {
  const auto old_segments = zero_filled(old_image), new_segments = zero_filled(new_image);
  if (old_segments.empty() || old_segments.size() != new_segments.size() || old_image.empty()) return;
  const std::uint64_t old_size = old_image.size();
  std::vector<MapEntry> ranges;
  for (std::size_t i = 0; i < old_segments.size(); ++i) {
    const auto [begin, end] = old_segments[i];
    const std::int64_t shift = static_cast<std::int64_t>(new_segments[i].first) - static_cast<std::int64_t>(begin);
    // Past the end of OLD the map's last entry speaks (AddressMap::map_past_end):
    // a range that starts there is given OLD's last byte.
    const std::uint64_t b = std::min(begin, old_size - 1), e = std::min(end, old_size);
    if (b >= e || shift < -static_cast<std::int64_t>(b)) continue;
    ranges.push_back({b, e - b, shift});
  }
  // The ranges replace whatever covers matched there.
  std::vector<MapEntry> kept;
  for (const MapEntry& c : covers) {
    std::vector<MapEntry> pieces{c};
    for (const MapEntry& r : ranges) {
      std::vector<MapEntry> next;
      for (const MapEntry& p : pieces) {
        const std::uint64_t p_end = p.old_start + p.length, r_end = r.old_start + r.length;
        if (p_end <= r.old_start || r_end <= p.old_start) {
          next.push_back(p);
          continue;
        }
        if (p.old_start < r.old_start) next.push_back({p.old_start, r.old_start - p.old_start, p.shift});
        if (r_end < p_end) next.push_back({r_end, p_end - r_end, p.shift});
      }
      pieces = std::move(next);
    }
    kept.insert(kept.end(), pieces.begin(), pieces.end());
  }
  kept.insert(kept.end(), ranges.begin(), ranges.end());
  covers = std::move(kept);
}

std::vector<EmbeddedElf> find_embedded_elf(ByteSpan image) {
  std::vector<EmbeddedElf> out;
  const std::uint64_t size = image.size();
  auto get = [&](std::uint64_t at, unsigned bytes) {
    std::uint64_t v = 0;
    for (unsigned j = 0; j < bytes; ++j) v |= static_cast<std::uint64_t>(image[at + j]) << (8 * j);
    return v;
  };
  constexpr std::uint64_t kAlign = 512;
  for (std::uint64_t off = 0; off + 64 <= size;) {
    const std::uint8_t* h = image.data() + off;
    if (!(h[0] == 0x7F && h[1] == 'E' && h[2] == 'L' && h[3] == 'F') || (h[4] != 1 && h[4] != 2) || h[5] != 1) {
      off += kAlign;
      continue;
    }
    const bool is64 = h[4] == 2;
    const unsigned machine = static_cast<unsigned>(get(off + 18, 2));
    const Predictor pred = (machine == 62 || machine == 3) ? Predictor::kX86
                           : machine == 183                ? Predictor::kArm64
                                                           : Predictor::kNone;
    const std::uint64_t room = size - off;
    const std::uint64_t phoff = is64 ? get(off + 32, 8) : get(off + 28, 4);
    const std::uint64_t shoff = is64 ? get(off + 40, 8) : get(off + 32, 4);
    const std::uint64_t phentsize = get(off + (is64 ? 54 : 42), 2), phnum = get(off + (is64 ? 56 : 44), 2);
    const std::uint64_t shentsize = get(off + (is64 ? 58 : 46), 2), shnum = get(off + (is64 ? 60 : 48), 2);
    const std::uint64_t min_ph = is64 ? 56 : 32, min_sh = is64 ? 64 : 40;
    bool valid = pred != Predictor::kNone && phnum > 0 && phentsize >= min_ph && phoff <= room &&
                 phnum * phentsize <= room - phoff && (shnum == 0 || (shentsize >= min_sh && shoff <= room &&
                                                                      shnum * shentsize <= room - shoff));
    std::uint64_t end = 0;
    if (valid) {
      end = std::max(phoff + phnum * phentsize, shnum ? shoff + shnum * shentsize : 0);
      for (std::uint64_t i = 0; i < phnum; ++i) {
        const std::uint64_t at = off + phoff + i * phentsize;
        const std::uint64_t p_offset = is64 ? get(at + 8, 8) : get(at + 4, 4);
        const std::uint64_t p_filesz = is64 ? get(at + 32, 8) : get(at + 16, 4);
        if (p_offset > room || p_filesz > room - p_offset) {
          valid = false;
          break;
        }
        end = std::max(end, p_offset + p_filesz);
      }
    }
    if (!valid || end == 0) {
      off += kAlign;
      continue;
    }
    out.push_back({off, end, pred});
    off += (end + kAlign - 1) / kAlign * kAlign;
  }
  return out;
}

void keep_covers_inside(const std::vector<EmbeddedElf>& regions, std::vector<MapEntry>& covers) {
  std::vector<MapEntry> kept;
  for (const MapEntry& c : covers) {
    const std::uint64_t c_end = c.old_start + c.length;
    // The first region that ends after the cover starts.
    auto it = std::upper_bound(regions.begin(), regions.end(), c.old_start,
                               [](std::uint64_t v, const EmbeddedElf& r) { return v < r.offset + r.size; });
    for (; it != regions.end() && it->offset < c_end; ++it) {
      const std::uint64_t b = std::max(c.old_start, it->offset), e = std::min(c_end, it->offset + it->size);
      if (b < e) kept.push_back({b, e - b, c.shift});
    }
  }
  covers = std::move(kept);
}

}  // namespace ota::delta::detail
