#!/usr/bin/env bash
# fs_images.sh: reproducible root-filesystem images for the benchmarks, built
# from three releases of the same five npm packages (a TypeScript compiler, a
# formatter, two native linters/compilers and esbuild), as a device's /usr
# would change between releases. See bench/README.md.
#
#   bench/fs_images.sh [--big] [--print]
#
# Writes under bench/data/fs/ (skipped when already there and complete):
#   rootfs-r1.ext4 rootfs-r2.ext4 rootfs-r3.ext4   160 MiB ext4, r1 two releases before r3
#   rootfs-r1.fit.ext4 ...                         the same ext4 without a journal and shrunk to
#                                                  its content (tune2fs -O ^has_journal, resize2fs
#                                                  -M), as a read-only A/B root filesystem is
#                                                  shipped: no long zero runs, so bsdiff 4.3 finishes
#   rootfs-r1.sqfs rootfs-r2.sqfs rootfs-r3.sqfs   squashfs, xz blocks (as Yocto and Buildroot make them)
#   rootfs-r1.gzip.sqfs, rootfs-r1.zstd.sqfs ...  the same squashfs with gzip (mksquashfs' default)
#                                                  and zstd blocks
#   rootfs-r1.raw.sqfs ...                         the same squashfs without compression (-noI -noId
#                                                  -noD -noF -noX): the bytes a compression-aware
#                                                  delta would diff
#   with --big: rootfs-r2.big.ext4 rootfs-r3.big.ext4 (1 GiB: the same trees,
#   plus 640 MiB of files that do not change, as a large root filesystem)
# --print lists the image paths, one per line, and builds nothing.
#
# Reproducible: the trees are unpacked in archive order onto tmpfs (so
# mke2fs -d walks them in the same order everywhere), every time stamp
# (ctime set in the image by debugfs), owner, UUID and hash seed is fixed,
# and the images' BLAKE2b-256 are written to bench/data/fs/B2SUMS; two
# builds give the same bytes.
# Exit status: 0 on success, 2 on a usage or setup error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$ROOT"

BENCH_NAME=fs_images
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# name r1 r2 r3 (each step is a minor release of the package)
PACKAGES=(
  "typescript 5.4.5 5.5.4 5.6.3"
  "prettier 3.2.5 3.3.3 3.4.2"
  "@swc/core-linux-x64-gnu 1.6.13 1.7.26 1.9.3"
  "@biomejs/cli-linux-x64 1.7.3 1.8.3 1.9.4"
  "@esbuild/linux-x64 0.23.1 0.24.2 0.25.0"
)
RELEASES=(r1 r2 r3)
EXT4_MIB=160
BIG_MIB=1024
BIG_FILLER_MIB=640
EPOCH=1700000000   # every time stamp in every image
OUT=$DATA/fs

BIG=0
PRINT=0
while (($#)); do
  case "$1" in
    --big) BIG=1 ;;
    --print) PRINT=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

images() {
  local r
  for r in "${RELEASES[@]}"; do
    printf '%s\n' "$OUT/rootfs-$r.ext4" "$OUT/rootfs-$r.fit.ext4" "$OUT/rootfs-$r.sqfs" "$OUT/rootfs-$r.gzip.sqfs" \
      "$OUT/rootfs-$r.zstd.sqfs" "$OUT/rootfs-$r.raw.sqfs"
  done
  if ((BIG)); then printf '%s\n' "$OUT/rootfs-r2.big.ext4" "$OUT/rootfs-r3.big.ext4"; fi
}
if ((PRINT)); then images; exit 0; fi

ensure_commands openssl=openssl mke2fs=e2fsprogs resize2fs=e2fsprogs tune2fs=e2fsprogs mksquashfs=squashfs-tools npm=npm tar=tar b2sum=coreutils

# The tree of release index I (0-based) on tmpfs: /usr/lib/node_modules/<pkg>.
make_tree() {
  local i=$1 tree=$2 line name versions v dest
  rm -rf "$tree"; mkdir -p "$tree/usr/lib/node_modules" "$tree/etc" "$tree/var/lib/ota"
  for line in "${PACKAGES[@]}"; do
    read -r name versions <<<"$line"
    read -ra versions <<<"$versions"
    v=${versions[$i]}
    fetch "$name" "$v"
    dest=$tree/usr/lib/node_modules/$name
    mkdir -p "$dest"
    # Archive order, no owner or mode from the archive: the same tree everywhere.
    tar -xzf "$DATA/$(tarball_name "$name" "$v")" -C "$dest" --strip-components=1 --no-same-owner --no-same-permissions
  done
  printf 'ota-bench-rootfs %s\n' "${RELEASES[$i]}" >"$tree/etc/os-release"
  chmod -R u+rwX,go+rX,go-w "$tree"
  find "$tree" -exec touch -h -d "@$EPOCH" {} +
}

# Deterministic filler for the big image: files that are the same in every release.
add_filler() {
  local tree=$1 mib=$2 n
  mkdir -p "$tree/usr/share/filler"
  for ((n = 0; n < mib / 16; n++)); do
    # 16 MiB of incompressible bytes from a keyed stream (the same on every machine)
    head -c $((16 << 20)) < <(openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
      -iv "$(printf '%032x' "$n")" -in /dev/zero 2>/dev/null) >"$tree/usr/share/filler/blob-$n"
  done
  find "$tree/usr/share/filler" -exec touch -h -d "@$EPOCH" {} +
}

make_ext4() {
  local tree=$1 img=$2 mib=$3
  rm -f "$img.tmp"
  E2FSPROGS_FAKE_TIME=$EPOCH mke2fs -q -F -t ext4 -b 4096 -L rootfs -U 6f1b3c0e-0a4d-4c8e-9f25-0123456789ab \
    -E root_owner=0:0,hash_seed=3e0d8a57-5b1f-4b61-a2a9-0123456789ab,lazy_itable_init=0,nodiscard \
    -d "$tree" "$img.tmp" "${mib}M"
  # mke2fs -d copies each file's ctime, which no tool can set on the tree (it is the time of
  # the last touch): set it to EPOCH in the image, every inode, in one debugfs run.
  (cd "$tree" && find . -printf 'set_inode_field "/%P" ctime @'"$EPOCH"'\n') >"$img.ctime"
  E2FSPROGS_FAKE_TIME=$EPOCH debugfs -w -f "$img.ctime" "$img.tmp" >/dev/null 2>"$img.ctime.log" || true
  if grep -v '^debugfs [0-9]' "$img.ctime.log" >&2; then die "debugfs could not set the ctimes of $img"; fi
  rm -f "$img.ctime" "$img.ctime.log"
  mv "$img.tmp" "$img"
}

# The ext4 image IMG without its journal, shrunk to its content: OUT. Both tools run with the
# fixed clock, so the bytes are the same everywhere (e2fsck -fn finds nothing to fix).
make_ext4_fit() {
  local img=$1 out=$2
  rm -f "$out.tmp"
  cp "$img" "$out.tmp"
  E2FSPROGS_FAKE_TIME=$EPOCH tune2fs -O ^has_journal "$out.tmp" >/dev/null
  E2FSPROGS_FAKE_TIME=$EPOCH resize2fs -M "$out.tmp" >/dev/null 2>&1 || die "resize2fs -M failed on $out"
  mv "$out.tmp" "$out"
}

make_sqfs() {
  local tree=$1 img=$2; shift 2
  rm -f "$img.tmp"
  local comp=${COMP:-xz}
  SOURCE_DATE_EPOCH=$EPOCH mksquashfs "$tree" "$img.tmp" -comp "$comp" -b 131072 -noappend -all-root -no-progress \
    -processors 1 -quiet "$@" >/dev/null
  mv "$img.tmp" "$img"
}

main() {
  mkdir -p "$OUT"
  local shm=/dev/shm
  [[ -d $shm && -w $shm ]] || shm=$(mktemp -d)
  TREE=$shm/ota-fs-tree.$$
  trap 'rm -rf "$TREE"' EXIT
  local tree=$TREE
  local i r
  for i in "${!RELEASES[@]}"; do
    r=${RELEASES[$i]}
    local want=("$OUT/rootfs-$r.ext4" "$OUT/rootfs-$r.sqfs" "$OUT/rootfs-$r.gzip.sqfs" "$OUT/rootfs-$r.zstd.sqfs"
      "$OUT/rootfs-$r.raw.sqfs")
    ((BIG)) && [[ $r != r1 ]] && want+=("$OUT/rootfs-$r.big.ext4")
    local missing=0 f
    for f in "${want[@]}"; do [[ -s $f ]] || missing=1; done
    if ((!missing)); then
      [[ -s $OUT/rootfs-$r.fit.ext4 ]] || { log "release $r: ext4 without journal, fit"; make_ext4_fit "$OUT/rootfs-$r.ext4" "$OUT/rootfs-$r.fit.ext4"; }
      continue
    fi
    log "release $r: unpacking the tree"
    make_tree "$i" "$tree"
    [[ -s $OUT/rootfs-$r.ext4 ]] || { log "release $r: ext4 ${EXT4_MIB} MiB"; make_ext4 "$tree" "$OUT/rootfs-$r.ext4" "$EXT4_MIB"; }
    [[ -s $OUT/rootfs-$r.fit.ext4 ]] || { log "release $r: ext4 without journal, fit"; make_ext4_fit "$OUT/rootfs-$r.ext4" "$OUT/rootfs-$r.fit.ext4"; }
    [[ -s $OUT/rootfs-$r.sqfs ]] || { log "release $r: squashfs (xz)"; make_sqfs "$tree" "$OUT/rootfs-$r.sqfs"; }
    [[ -s $OUT/rootfs-$r.gzip.sqfs ]] || { log "release $r: squashfs (gzip)"; COMP=gzip make_sqfs "$tree" "$OUT/rootfs-$r.gzip.sqfs"; }
    [[ -s $OUT/rootfs-$r.zstd.sqfs ]] || { log "release $r: squashfs (zstd)"; COMP=zstd make_sqfs "$tree" "$OUT/rootfs-$r.zstd.sqfs"; }
    [[ -s $OUT/rootfs-$r.raw.sqfs ]] || {
      log "release $r: squashfs (uncompressed)"
      make_sqfs "$tree" "$OUT/rootfs-$r.raw.sqfs" -noI -noId -noD -noF -noX
    }
    if ((BIG)) && [[ $r != r1 && ! -s $OUT/rootfs-$r.big.ext4 ]]; then
      log "release $r: ext4 ${BIG_MIB} MiB with ${BIG_FILLER_MIB} MiB of unchanging files"
      add_filler "$tree" "$BIG_FILLER_MIB"
      make_ext4 "$tree" "$OUT/rootfs-$r.big.ext4" "$BIG_MIB"
    fi
    rm -rf "$tree"
  done
  (cd "$OUT" && b2sum -l 256 rootfs-*.ext4 rootfs-*.sqfs >B2SUMS.tmp && mv B2SUMS.tmp B2SUMS)
  images
}

main
