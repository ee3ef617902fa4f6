// A synthetic ELF64 x86-64 executable with the tables that delta format
// version 5 predicts (.eh_frame_hdr, .eh_frame, pointers in .data), for the
// delta tests and the fuzz corpus generator. Header-only: it needs nothing
// but ota::Bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ota/core/io.hpp"

namespace ota::test {

inline constexpr std::uint64_t kBase = 0x400000;  // vaddr of file offset 0

struct Function {
  std::uint32_t id;
  Bytes code;
};

struct Layout {
  Bytes image;
  std::uint64_t text = 0, hdr = 0, eh = 0, data = 0, data_end = 0;
  std::size_t functions = 0;
};

inline void put_le(Bytes& b, std::size_t at, std::uint64_t v, int bytes) {
  if (b.size() < at + static_cast<std::size_t>(bytes)) b.resize(at + static_cast<std::size_t>(bytes));
  for (int j = 0; j < bytes; ++j) b[at + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(v >> (8 * j));
}

// An ELF64 x86-64 executable: one PT_LOAD of the whole file at kBase, then
// .text (the functions, each after a 5-byte `mov $address, %edi`, 16-aligned), .eh_frame_hdr, .eh_frame (one "zR" CIE
// with pcrel|sdata4 FDEs, one FDE per function), .data (words: every third a
// pointer to function id (i / 3) % ids, the rest fixed by i) and the section
// headers (no names: nothing here reads them).
inline Layout make_elf(const std::vector<Function>& funcs, std::size_t data_words, std::uint32_t ids) {
  Layout l;
  Bytes& b = l.image;
  b.assign(0x400, 0);
  const std::uint8_t ident[16] = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::copy(std::begin(ident), std::end(ident), b.begin());
  put_le(b, 16, 2, 2);   // ET_EXEC
  put_le(b, 18, 62, 2);  // EM_X86_64
  put_le(b, 20, 1, 4);
  put_le(b, 32, 64, 8);  // e_phoff
  put_le(b, 52, 64, 2);
  put_le(b, 54, 56, 2);
  put_le(b, 56, 2, 2);   // two program headers
  put_le(b, 58, 64, 2);  // e_shentsize
  // .text
  l.text = b.size();
  std::vector<std::uint64_t> start(ids, 0), size(ids, 0);
  std::vector<std::uint64_t> order;  // function starts in file order
  // Each function starts with `mov $next, %edi` (BF imm32): the address of
  // function id + 1 if this image has it, else its own (non-PIE code's
  // 32-bit absolute addresses).
  std::vector<bool> present(ids, false);
  std::uint64_t cursor = b.size();
  for (const Function& f : funcs) {
    start[f.id] = cursor;
    present[f.id] = true;
    cursor = (cursor + 5 + f.code.size() + 15) / 16 * 16;
  }
  for (const Function& f : funcs) {
    size[f.id] = 5 + f.code.size();
    order.push_back(f.id);
    const std::uint32_t next = (f.id + 1) % ids;
    b.push_back(0xBF);
    put_le(b, b.size(), kBase + start[present[next] ? next : f.id], 4);
    b.insert(b.end(), f.code.begin(), f.code.end());
    b.resize((b.size() + 15) / 16 * 16, 0xCC);
  }
  l.functions = funcs.size();
  // .eh_frame_hdr, then .eh_frame 8-aligned after it.
  l.hdr = b.size();
  const std::uint64_t n = funcs.size();
  const std::uint64_t hdr_size = 12 + 8 * n;
  l.eh = (l.hdr + hdr_size + 7) / 8 * 8;
  b.resize(l.eh, 0);
  const std::uint64_t cie = l.eh;
  // CIE: length 16, id 0, version 1, "zR", code 1, data -8, RA 16, aug 1, R = 0x1B, 3 nops.
  const Bytes cie_bytes = {16, 0, 0, 0, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 16, 1, 0x1B, 0, 0, 0};
  b.insert(b.end(), cie_bytes.begin(), cie_bytes.end());
  std::vector<std::uint64_t> fde(ids, 0);
  for (const Function& f : funcs) {
    const std::uint64_t at = b.size();
    fde[f.id] = at;
    put_le(b, at, 16, 4);                           // length
    put_le(b, at + 4, at + 4 - cie, 4);             // CIE pointer
    put_le(b, at + 8, static_cast<std::uint32_t>(start[f.id] - (at + 8)), 4);  // pcrel initial location
    put_le(b, at + 12, f.code.size(), 4);           // range
    put_le(b, at + 16, 0, 4);                       // augmentation length 0, nops
  }
  put_le(b, b.size(), 0, 4);  // terminator
  const std::uint64_t eh_end = b.size();
  // The header table, sorted by function start (file order here).
  put_le(b, l.hdr, 0x3B031B01, 4);
  put_le(b, l.hdr + 4, static_cast<std::uint32_t>(l.eh - (l.hdr + 4)), 4);
  put_le(b, l.hdr + 8, n, 4);
  for (std::size_t i = 0; i < order.size(); ++i) {
    put_le(b, l.hdr + 12 + 8 * i, static_cast<std::uint32_t>(start[order[i]] - l.hdr), 4);
    put_le(b, l.hdr + 16 + 8 * i, static_cast<std::uint32_t>(fde[order[i]] - l.hdr), 4);
  }
  // .data
  b.resize((b.size() + 15) / 16 * 16, 0);
  l.data = b.size();
  for (std::size_t i = 0; i < data_words; ++i) {
    const std::uint64_t word = i % 3 == 0 ? kBase + start[(i / 3) % ids] : 0x9E3779B97F4A7C15ull * (i + 1);
    put_le(b, b.size(), word, 8);
  }
  l.data_end = b.size();
  // Program headers: PT_LOAD of everything so far, PT_GNU_EH_FRAME.
  const std::uint64_t loaded = b.size();
  put_le(b, 64, 1, 4);
  put_le(b, 68, 5, 4);
  put_le(b, 72, 0, 8);
  put_le(b, 80, kBase, 8);
  put_le(b, 88, kBase, 8);
  put_le(b, 96, loaded, 8);
  put_le(b, 104, loaded, 8);
  put_le(b, 112, 0x1000, 8);
  put_le(b, 120, 0x6474E550, 4);
  put_le(b, 124, 4, 4);
  put_le(b, 128, l.hdr, 8);
  put_le(b, 136, kBase + l.hdr, 8);
  put_le(b, 144, kBase + l.hdr, 8);
  put_le(b, 152, hdr_size, 8);
  put_le(b, 160, hdr_size, 8);
  put_le(b, 168, 4, 8);
  // Section headers: null, .text, .eh_frame_hdr, .eh_frame, .data.
  const std::uint64_t shoff = b.size();
  put_le(b, 40, shoff, 8);
  put_le(b, 60, 5, 2);
  struct Sh {
    std::uint64_t flags, offset, size;
  };
  const Sh shs[] = {{6, l.text, l.hdr - l.text}, {2, l.hdr, hdr_size}, {2, l.eh, eh_end - l.eh},
                    {3, l.data, l.data_end - l.data}};
  b.resize(shoff + 64 * 5, 0);
  for (std::size_t i = 0; i < 4; ++i) {
    const std::size_t at = shoff + 64 * (i + 1);
    put_le(b, at + 4, 1, 4);  // PROGBITS
    put_le(b, at + 8, shs[i].flags, 8);
    put_le(b, at + 16, kBase + shs[i].offset, 8);
    put_le(b, at + 24, shs[i].offset, 8);
    put_le(b, at + 32, shs[i].size, 8);
  }
  return l;
}

}  // namespace ota::test
