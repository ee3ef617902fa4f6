#include "delta/elf_tables.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>
#include <cstdlib>

#include "delta/predict.hpp"

namespace ota::delta::detail {

namespace {

std::uint64_t le(const std::uint8_t* p, unsigned bytes) {
  std::uint64_t v = 0;
  for (unsigned j = 0; j < bytes; ++j) v |= static_cast<std::uint64_t>(p[j]) << (8 * j);
  return v;
}

// Reads small pieces of a Source through a 64 KiB buffer: the .eh_frame walk
// reads a few bytes of each of its records, in order.
class Buffered {
 public:
  explicit Buffered(const Source& source) : source_(source), size_(source.size()) {}
  // OLD[off, off + len) into out (len <= 256); false past the end of OLD.
  Result<bool> get(std::uint64_t off, std::size_t len, std::uint8_t* out) {
    if (off > size_ || len > size_ - off) return false;
    if (off < buf_off_ || off + len > buf_off_ + buf_.size()) {
      buf_off_ = off;
      buf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size_ - off)));
      OTA_TRY_CTX(source_.read_at(off, buf_), "reading OLD's ELF tables");
    }
    std::memcpy(out, buf_.data() + (off - buf_off_), len);
    return true;
  }

 private:
  static constexpr std::uint64_t kChunk = 64 * 1024;
  const Source& source_;
  std::uint64_t size_;
  Bytes buf_;
  std::uint64_t buf_off_ = 0;
};

// Reads an unsigned LEB128 from c[i, n); false when it runs off the end or past 64 bits.
bool uleb(const std::uint8_t* c, std::size_t n, std::size_t& i, std::uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; i < n && shift < 64; shift += 7) {
    const std::uint8_t b = c[i++];
    v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// The FDE pointer encoding of a CIE whose bytes after its id are c[0, n):
// the 'R' augmentation's byte, DW_EH_PE_absptr (0) without one, nothing when
// the augmentation is not understood.
std::optional<std::uint8_t> fde_encoding(const std::uint8_t* c, std::size_t n) {
  if (n < 2) return std::nullopt;
  const std::uint8_t version = c[0];
  if (version != 1 && version != 3 && version != 4) return std::nullopt;
  std::size_t i = 1;
  const std::size_t aug = i;
  while (i < n && c[i] != 0 && i - aug < 8) ++i;
  if (i >= n || c[i] != 0) return std::nullopt;
  const std::size_t aug_end = i++;
  if (aug_end == aug) return std::uint8_t{0};
  if (c[aug] != 'z') return std::nullopt;
  if (version == 4) i += 2;  // address_size, segment_selector_size
  std::uint64_t skip = 0;
  if (!uleb(c, n, i, skip) || !uleb(c, n, i, skip)) return std::nullopt;  // code and data alignment
  if (version == 1) {
    ++i;  // return address register
  } else if (!uleb(c, n, i, skip)) {
    return std::nullopt;
  }
  if (!uleb(c, n, i, skip)) return std::nullopt;  // augmentation data length
  for (std::size_t a = aug + 1; a < aug_end; ++a) {
    if (i >= n) return std::nullopt;
    switch (c[a]) {
      case 'R': return c[i];
      case 'L': ++i; break;
      case 'P': {
        const std::uint8_t enc = c[i++];
        switch (enc & 0x0F) {
          case 0x00: case 0x04: case 0x0C: i += 8; break;
          case 0x02: case 0x0A: i += 2; break;
          case 0x03: case 0x0B: i += 4; break;
          case 0x01: case 0x09: if (!uleb(c, n, i, skip)) return std::nullopt; break;
          default: return std::nullopt;
        }
        break;
      }
      case 'S': case 'B': case 'G': break;
      default: return std::nullopt;
    }
  }
  return std::uint8_t{0};
}

constexpr std::uint8_t kPcrelSdata4 = 0x1B;   // DW_EH_PE_pcrel | DW_EH_PE_sdata4
constexpr std::uint8_t kDatarelSdata4 = 0x3B;  // DW_EH_PE_datarel | DW_EH_PE_sdata4
constexpr std::uint8_t kUdata4 = 0x03;
constexpr std::uint32_t kPtLoad = 1, kPtGnuEhFrame = 0x6474E550;
constexpr std::uint32_t kShtNobits = 8;
constexpr std::uint64_t kShfAlloc = 2, kShfExecinstr = 4;
constexpr std::uint64_t kMaxField = std::uint64_t{1} << 62;

// Sorts ranges and merges those that overlap or touch; keeps at most kMaxRanges.
void sort_and_merge(std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else if (merged.size() < kMaxRanges) {
      merged.push_back(r);
    }
  }
  ranges = std::move(merged);
}

// Walks .eh_frame's records and calls on_site(offset) for each FDE initial
// location that is a site (pcrel|sdata4, at a multiple of 4 from the start).
template <class OnSite>
Status walk_eh_frame(Buffered& in, const ElfTables& t, OnSite on_site) {
  std::vector<std::pair<std::uint64_t, std::uint8_t>> cies;  // offset, FDE encoding (increasing offsets)
  for (std::uint64_t p = t.eh_begin; t.eh_end - p >= 8;) {
    std::uint8_t r[8];
    OTA_TRY_ASSIGN(bool got, in.get(p, 8, r));
    if (!got) break;
    const std::uint64_t len = le(r, 4), id = le(r + 4, 4);
    if (len == 0 || len == 0xFFFFFFFF || len > t.eh_end - p - 4) break;  // terminator, 64-bit DWARF, or broken
    const std::uint64_t body = p + 8, end = p + 4 + len;
    if (id == 0) {
      std::uint8_t c[64];
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof c, end - body));
      OTA_TRY_ASSIGN(bool have, in.get(body, n, c));
      const auto enc = have ? fde_encoding(c, n) : std::nullopt;
      if (enc && cies.size() < 65536) cies.emplace_back(p, *enc);
    } else if (id <= p + 4 - t.eh_begin && len >= 8) {
      const std::uint64_t cie = p + 4 - id;
      auto it = std::lower_bound(cies.begin(), cies.end(), std::make_pair(cie, std::uint8_t{0}));
      if (it != cies.end() && it->first == cie && it->second == kPcrelSdata4 && (body - t.eh_begin) % 4 == 0)
        on_site(body);
    }
    p = end;
  }
  return ok();
}

// The FDE sites as a bitmap: one bit per 8 bytes of .eh_frame when every site
// lies at a multiple of 8 from its start (GNU as pads records to 8 bytes on
// 64-bit targets: node's 5.4 MB take 84 KiB), else one per 4.
Status find_fde_sites(Buffered& in, ElfTables& t) {
  bool any = false, all8 = true;
  OTA_TRY(walk_eh_frame(in, t, [&](std::uint64_t s) {
    any = true;
    all8 = all8 && (s - t.eh_begin) % 8 == 0;
  }));
  if (!any) return ok();
  t.fde_shift = all8 ? 3 : 2;
  const std::uint64_t bits = ((t.eh_end - t.eh_begin) >> t.fde_shift) + 1;
  t.fde_sites.assign(static_cast<std::size_t>((bits + 63) / 64), 0);
  return walk_eh_frame(in, t, [&](std::uint64_t s) {
    const std::uint64_t k = (s - t.eh_begin) >> t.fde_shift;
    t.fde_sites[static_cast<std::size_t>(k >> 6)] |= std::uint64_t{1} << (k & 63);
  });
}

}  // namespace

std::optional<std::uint64_t> ElfTables::to_offset(std::uint64_t vaddr) const {
  for (const Segment& s : segments)
    if (vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz) return s.offset + (vaddr - s.vaddr);
  return std::nullopt;
}

std::optional<std::int64_t> ElfTables::bias(std::uint64_t offset) const {
  for (const Segment& s : segments)
    if (offset >= s.offset && offset - s.offset < s.filesz)
      return static_cast<std::int64_t>(s.vaddr) - static_cast<std::int64_t>(s.offset);
  return std::nullopt;
}

Result<ElfTables> read_elf_tables(const Source& old) {
  ElfTables t;
  Buffered in(old);
  const std::uint64_t size = old.size();
  std::uint8_t eh[64];
  OTA_TRY_ASSIGN(bool got, in.get(0, sizeof eh, eh));
  if (!got || std::memcmp(eh, "\x7F" "ELF", 4) != 0 || eh[4] != 2 || eh[5] != 1) return t;
  const std::uint64_t phoff = le(eh + 0x20, 8), shoff = le(eh + 0x28, 8);
  const std::uint64_t phentsize = le(eh + 0x36, 2), phnum = le(eh + 0x38, 2);
  const std::uint64_t shentsize = le(eh + 0x3A, 2), shnum = le(eh + 0x3C, 2);
  // Absolute code addresses exist only in a position-dependent executable
  // (ET_EXEC): in PIE code and shared objects an imm32 is never an address,
  // and small constants would be taken for one.
  const bool x86_64_exec = le(eh + 0x10, 2) == 2 && le(eh + 0x12, 2) == 62;

  std::optional<std::pair<std::uint64_t, std::uint64_t>> hdr;  // PT_GNU_EH_FRAME: offset, file size
  for (std::uint64_t i = 0; phentsize >= 56 && i < phnum && phoff <= size; ++i) {
    std::uint8_t ph[56];
    OTA_TRY_ASSIGN(bool have, in.get(phoff + i * phentsize, sizeof ph, ph));
    if (!have) break;
    const std::uint64_t type = le(ph, 4), offset = le(ph + 8, 8), vaddr = le(ph + 16, 8), filesz = le(ph + 32, 8);
    if (filesz == 0 || offset > size || filesz > size - offset || filesz > kMaxField || vaddr > kMaxField - filesz)
      continue;
    if (type == kPtLoad && t.segments.size() < kMaxElfSegments) t.segments.push_back({offset, vaddr, filesz});
    if (type == kPtGnuEhFrame && !hdr) hdr.emplace(offset, filesz);
  }
  if (t.segments.empty()) return t;

  // .eh_frame_hdr in the form every GNU toolchain writes: version 1,
  // eh_frame_ptr pcrel|sdata4, fde_count udata4, table datarel|sdata4.
  std::optional<std::uint64_t> eh_frame_vaddr;
  if (hdr && hdr->second >= 12) {
    std::uint8_t h[12];
    OTA_TRY_ASSIGN(bool have, in.get(hdr->first, sizeof h, h));
    const auto b = t.bias(hdr->first);
    if (have && b && h[0] == 1 && h[1] == kPcrelSdata4 && h[2] == kUdata4 && h[3] == kDatarelSdata4) {
      const std::int64_t hv = static_cast<std::int64_t>(hdr->first) + *b;
      eh_frame_vaddr = static_cast<std::uint64_t>(hv + 4 + static_cast<std::int32_t>(le(h + 4, 4)));
      const std::uint64_t entries = std::min<std::uint64_t>(le(h + 8, 4), (hdr->second - 12) / 8);
      t.hdr_offset = hdr->first;
      t.table_begin = hdr->first + 12;
      t.table_end = t.table_begin + 8 * entries;
    }
  }

  // Sections: .eh_frame (where .eh_frame_hdr says it starts) and the
  // allocated, non-executable sections with file bytes as pointer ranges.
  for (std::uint64_t i = 0; shentsize >= 64 && i < shnum && shoff <= size; ++i) {
    std::uint8_t sh[64];
    OTA_TRY_ASSIGN(bool have, in.get(shoff + i * shentsize, sizeof sh, sh));
    if (!have) break;
    const std::uint64_t type = le(sh + 4, 4), flags = le(sh + 8, 8), addr = le(sh + 16, 8), offset = le(sh + 24, 8),
                        sz = le(sh + 32, 8);
    if (type == kShtNobits || sz == 0 || offset > size || sz > size - offset || !(flags & kShfAlloc)) continue;
    if (eh_frame_vaddr && addr == *eh_frame_vaddr && t.eh_end == t.eh_begin) {
      t.eh_begin = offset;
      t.eh_end = offset + sz;
      continue;
    }
    if (hdr && offset == hdr->first) continue;
    if (!(flags & kShfExecinstr)) {
      t.pointer_ranges.emplace_back(offset, offset + sz);
    } else if (x86_64_exec) {
      t.code_ranges.emplace_back(offset, offset + sz);
    }
  }
  sort_and_merge(t.pointer_ranges);
  sort_and_merge(t.code_ranges);

  if (t.eh_end > t.eh_begin && t.eh_end - t.eh_begin <= kMaxEhFrame) {
    OTA_TRY(find_fde_sites(in, t));
  } else {
    t.eh_begin = t.eh_end = 0;
  }
  if (t.fde_sites.empty()) t.eh_begin = t.eh_end = 0;
  return t;
}

namespace {

// Writes the bytes of a len-byte little-endian value v at OLD offset s that
// fall inside [q, q + n).
void put_value(std::uint64_t s, std::uint64_t v, unsigned len, std::uint64_t q, std::size_t n, std::uint8_t* out) {
  for (unsigned j = 0; j < len; ++j) {
    const std::uint64_t pos = s + j;
    if (pos >= q && pos < q + n) out[pos - q] = static_cast<std::uint8_t>(v >> (8 * j));
  }
}

}  // namespace

void predict_elf_tables(const ElfTables& t, const AddressMap& map, ByteSpan window, std::uint64_t window_start,
                        std::uint64_t old_size, std::uint64_t q, std::size_t n, std::int64_t delta,
                        std::uint8_t* out) {
  const std::uint64_t window_end = std::min<std::uint64_t>(window_start + window.size(), old_size);
  auto read = [&](std::uint64_t i, unsigned len, std::uint64_t& v) {
    if (i < window_start || i + len > window_end) return false;
    v = le(window.data() + (i - window_start), len);
    return true;
  };
  // Where the OLD bytes at virtual address `vaddr` are in NEW, as a virtual
  // address (with the bias of their segment in OLD).
  auto moved = [&](std::uint64_t vaddr) -> std::optional<std::int64_t> {
    const auto off = t.to_offset(vaddr);
    if (!off) return std::nullopt;
    const auto m = map.map(*off);
    if (!m) return std::nullopt;
    return *m + (static_cast<std::int64_t>(vaddr) - static_cast<std::int64_t>(*off));
  };
  auto put32 = [&](std::uint64_t s, std::uint64_t raw, std::int64_t pred) {
    if (pred < INT32_MIN || pred > INT32_MAX) return;
    const auto v = static_cast<std::uint32_t>(static_cast<std::int32_t>(pred));
    if (v != raw) put_value(s, v, 4, q, n, out);
  };
  const std::uint64_t lo = q >= 7 ? q - 7 : 0, hi = q + n;  // fields starting here overlap [q, q + n)

  // .eh_frame_hdr: offsets from its start, which the map places in NEW (or,
  // if it does not, taken to move with the field).
  if (t.table_end > t.table_begin && lo < t.table_end && hi > t.table_begin) {
    const std::int64_t b = *t.bias(t.hdr_offset);
    const std::int64_t base = static_cast<std::int64_t>(t.hdr_offset) + b;
    const auto mapped_base = map.map(t.hdr_offset);
    const std::int64_t new_base = (mapped_base ? *mapped_base : static_cast<std::int64_t>(t.hdr_offset) + delta) + b;
    std::uint64_t s = std::max(lo, t.table_begin);
    s = t.table_begin + (s - t.table_begin + 3) / 4 * 4;
    for (; s < std::min(hi, t.table_end); s += 4) {
      std::uint64_t raw = 0;
      if (!read(s, 4, raw)) continue;
      const std::int64_t target = base + static_cast<std::int32_t>(raw);
      if (target < 0) continue;
      if (const auto m = moved(static_cast<std::uint64_t>(target))) put32(s, raw, *m - new_base);
    }
  }
  // .eh_frame: FDE initial locations, relative to themselves.
  if (!t.fde_sites.empty() && lo < t.eh_end && hi > t.eh_begin) {
    const std::uint64_t step = std::uint64_t{1} << t.fde_shift;
    std::uint64_t s = std::max(lo, t.eh_begin);
    s = t.eh_begin + (s - t.eh_begin + step - 1) / step * step;
    for (; s < std::min(hi, t.eh_end); s += step) {
      std::uint64_t raw = 0;
      if (!t.fde_site(s) || !read(s, 4, raw)) continue;
      const auto b = t.bias(s);
      if (!b) continue;
      const std::int64_t here = static_cast<std::int64_t>(s) + *b;
      const std::int64_t target = here + static_cast<std::int32_t>(raw);
      if (target < 0) continue;
      if (const auto m = moved(static_cast<std::uint64_t>(target))) put32(s, raw, *m - (here + delta));
    }
  }
  // x86-64 code: imm32 of mov r32 (B8..BF) and push (68), zero-extended or
  // sign-extended addresses below 2^31 either way.
  auto c = std::upper_bound(t.code_ranges.begin(), t.code_ranges.end(), lo,
                            [](std::uint64_t v, const auto& range) { return v < range.second; });
  for (; c != t.code_ranges.end() && c->first < hi; ++c) {
    const std::uint64_t first = std::max({lo, c->first + 1, window_start + 1});
    const std::uint64_t last = std::min({hi, c->second >= 4 ? c->second - 3 : 0, window_end >= 4 ? window_end - 3 : 0});
    for (std::uint64_t s = first; s < last; ++s) {
      const std::uint8_t op = window[s - 1 - window_start];
      if ((op & 0xF8) != 0xB8 && op != 0x68) continue;
      const std::uint64_t raw = le(window.data() + (s - window_start), 4);
      const auto m = moved(raw);
      if (m && *m >= 0 && *m < (std::int64_t{1} << 31) && static_cast<std::uint64_t>(*m) != raw)
        put_value(s, static_cast<std::uint64_t>(*m), 4, q, n, out);
    }
  }
  // 8-byte pointers at 8-aligned offsets of the data sections.
  auto r = std::upper_bound(t.pointer_ranges.begin(), t.pointer_ranges.end(), lo,
                            [](std::uint64_t v, const auto& range) { return v < range.second; });
  for (; r != t.pointer_ranges.end() && r->first < hi; ++r) {
    std::uint64_t s = (std::max(lo, r->first) + 7) & ~std::uint64_t{7};
    for (; s < hi && s + 8 <= r->second; s += 8) {
      std::uint64_t raw = 0;
      if (!read(s, 8, raw)) continue;
      const auto m = moved(raw);
      if (m && *m >= 0 && static_cast<std::uint64_t>(*m) != raw) put_value(s, static_cast<std::uint64_t>(*m), 8, q, n, out);
    }
  }
}

std::vector<Block> align_eh_frame_hdr(const ElfTables& old_tables, const ElfTables& new_tables,
                                      const AddressMap& map, ByteSpan old_image, ByteSpan new_image) {
  std::vector<Block> out;
  const std::uint64_t old_n = (old_tables.table_end - old_tables.table_begin) / 8;
  const std::uint64_t new_n = (new_tables.table_end - new_tables.table_begin) / 8;
  if (old_n == 0 || new_n == 0 || new_tables.table_end > new_image.size()) return out;
  Bytes predicted(static_cast<std::size_t>(old_n * 8));
  std::memcpy(predicted.data(), old_image.data() + old_tables.table_begin, predicted.size());
  predict_elf_tables(old_tables, map, old_image, 0, old_image.size(), old_tables.table_begin, predicted.size(), 0,
                     predicted.data());
  std::unordered_map<std::uint32_t, std::uint64_t> entry_of;  // predicted function start -> OLD entry
  entry_of.reserve(static_cast<std::size_t>(old_n));
  for (std::uint64_t i = 0; i < old_n; ++i)
    entry_of.emplace(static_cast<std::uint32_t>(le(predicted.data() + 8 * i, 4)), i);
  std::uint64_t prev = UINT64_MAX;  // OLD entry of the previous NEW entry, if it had one
  for (std::uint64_t j = 0; j < new_n; ++j) {
    const std::uint64_t at = new_tables.table_begin + 8 * j;
    const auto it = entry_of.find(static_cast<std::uint32_t>(le(new_image.data() + at, 4)));
    if (it == entry_of.end()) {
      if (out.empty()) out.push_back({at, 0, 0, 0});
      out.back().insert_len += 8;
      prev = UINT64_MAX;
      continue;
    }
    if (prev != UINT64_MAX && it->second == prev + 1 && out.back().insert_len == 0) {
      out.back().add_len += 8;
    } else {
      out.push_back({at, old_tables.table_begin + 8 * it->second, 8, 0});
    }
    prev = it->second;
  }
  return out;
}

void splice_blocks(std::vector<Block>& blocks, const std::vector<Block>& replacement) {
  if (blocks.empty()) return;
  // The part of b inside [lo, hi), if any, appended to `to`.
  auto clip = [](const Block& b, std::uint64_t lo, std::uint64_t hi, std::vector<Block>& to) {
    const std::uint64_t add_end = b.new_pos + b.add_len, end = add_end + b.insert_len;
    const std::uint64_t s = std::max(lo, b.new_pos), e = std::min(hi, end);
    if (s >= e) return;
    if (s < add_end) {
      to.push_back({s, b.old_pos + (s - b.new_pos), std::min(e, add_end) - s, e > add_end ? e - add_end : 0});
    } else {
      to.push_back({s, b.old_pos + b.add_len, 0, e - s});
    }
  };
  const Block& last = blocks.back();
  const std::uint64_t begin = blocks.front().new_pos, end = last.new_pos + last.add_len + last.insert_len;
  std::vector<Block> part;  // the replacement inside [begin, end)
  for (const Block& r : replacement) clip(r, begin, end, part);
  if (part.empty()) return;
  const std::uint64_t x = part.front().new_pos;
  const std::uint64_t y = part.back().new_pos + part.back().add_len + part.back().insert_len;
  std::vector<Block> out;
  out.reserve(blocks.size() + part.size());
  bool placed = false;
  for (const Block& b : blocks) {
    clip(b, 0, x, out);
    if (!placed && b.new_pos + b.add_len + b.insert_len > x) {
      out.insert(out.end(), part.begin(), part.end());
      placed = true;
    }
    clip(b, y, UINT64_MAX, out);
  }
  blocks = std::move(out);
}

}  // namespace ota::delta::detail
