#!/usr/bin/env bash
# encryption_bench.sh: what encrypting a bundle costs, plain and encrypted side
# by side on the same images: bundle bytes (each payload: the 16-byte tag per
# block), `ota build` wall time, `ota verify` (ciphertext hashes only, which
# needs no key) and `ota verify --decryption-key` (every block opened and the
# plaintext hashed), and `ota-agent install` of the delta into file banks
# (wall, peak RSS).
#
#   bench/encryption_bench.sh [--pair esbuild,squashfs,ext4] [--block N] [--repeat N] [--out FILE]
#
# (the builds run once: the squashfs delta takes ~100 s to make on 2 cores)
#
# The images: bench/data/fs/rootfs-r1/r2.* from bench/fs_images.sh (ext4
# 160 MiB, squashfs-xz 30 MiB), or esbuild 0.24.2 -> 0.25.0 from the npm
# registry. Exit 0 when every install put the right image in the bank; 1 when
# a run failed; 2 on setup errors.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$ROOT"
BENCH_NAME=encryption_bench
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

OTA="${OTA_BIN:-build/tools/ota}"
AGENT="${OTA_AGENT_BIN:-build/device-agent/ota-agent}"
PAIRS="esbuild"
BLOCK=65536
REPEAT=3
OUT="bench/results/encryption.md"
while (($#)); do
  case "$1" in
    --pair) PAIRS=$2; shift ;;
    --block) BLOCK=$2; shift ;;
    --repeat) REPEAT=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -x "$OTA" && -x "$AGENT" ]] || die "build ota and ota-agent first (cmake --build build)"
ensure_commands /usr/bin/time=time python3=python3 cmp=diffutils
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export SOURCE_DATE_EPOCH=1780000000

images_for() {  # prints OLD NEW
  case "$1" in
    ext4) [[ -f bench/data/fs/rootfs-r2.ext4 ]] || bench/fs_images.sh >&2
          echo "bench/data/fs/rootfs-r1.ext4 bench/data/fs/rootfs-r2.ext4" ;;
    squashfs) [[ -f bench/data/fs/rootfs-r2.sqfs ]] || bench/fs_images.sh >&2
          echo "bench/data/fs/rootfs-r1.sqfs bench/data/fs/rootfs-r2.sqfs" ;;
    esbuild)
      ensure_commands npm=npm node=nodejs
      local pkg=@esbuild/linux-x64 v
      for v in 0.24.2 0.25.0; do fetch "$pkg" "$v" >&2; extract "$pkg" "$v" package/bin/esbuild >&2; done
      echo "$(pkg_dir "$pkg" 0.24.2)/package/bin/esbuild $(pkg_dir "$pkg" 0.25.0)/package/bin/esbuild" ;;
    *) die "unknown pair $1" ;;
  esac
}

# Median wall seconds of a command run REPEAT times.
median() {
  local times=()
  for _ in $(seq "${REPEAT}"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || return 1; t1=$(date +%s.%N)
    times+=("$(python3 -c "print($t1-$t0)")")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

"$OTA" keygen -o "$WORK/k" -q >/dev/null
"$OTA" root init --key "$WORK/k.pub" --threshold 1 --expires 2099-01-01 -o "$WORK/root.json" -q
"$OTA" root sign "$WORK/root.json" --key "$WORK/k.key" -q >/dev/null
"$OTA" keygen --encryption -o "$WORK/dev" -q >/dev/null

ROWS="$WORK/rows.tsv"
: > "$ROWS"
status=0
IFS=, read -r -a pair_list <<< "$PAIRS"
for pair in "${pair_list[@]}"; do
  read -r OLD NEW < <(images_for "$pair")
  log "$pair: $(stat -c %s "$OLD") -> $(stat -c %s "$NEW") bytes"
  size=$(stat -c %s "$NEW"); osize=$(stat -c %s "$OLD")
  bank=$(( (size > osize ? size : osize) + 1048576 ))
  for mode in plain encrypted; do
    extra=()
    [[ $mode == encrypted ]] && extra=(--encrypt-to "$WORK/dev.pub" --encryption-block "$BLOCK")
    b="$WORK/$pair-$mode.otb"
    # The build once (its time is the delta's, the same in both modes, plus one pass of the cipher).
    build_s=$(REPEAT=1 median "$OTA" build --image "$NEW" --base "$OLD" --version 2.0.0 --hw bench --key "$WORK/k.key" \
      -q -o "$b" "${extra[@]}") || { log "build failed ($pair $mode)"; exit 1; }
    bytes=$(stat -c %s "$b")
    full=$("$OTA" inspect "$b" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(p["size"] for p in d["manifest"]["payloads"] if p["kind"]=="full"))')
    delta=$("$OTA" inspect "$b" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(p["size"] for p in d["manifest"]["payloads"] if p["kind"]=="delta"))')
    verify_s=$(median "$OTA" verify "$b" --trust "$WORK/root.json" -q) || { log "verify failed"; exit 1; }
    verify_key_s=-
    if [[ $mode == encrypted ]]; then
      verify_key_s=$(median "$OTA" verify "$b" --trust "$WORK/root.json" --decryption-key "$WORK/dev.key" -q) ||
        { log "verify --decryption-key failed"; exit 1; }
    fi
    # The device: file banks, the old image in bank a; install the delta.
    install_walls=(); rss=0
    for i in $(seq "$REPEAT"); do
      d="$WORK/dev-$pair-$mode"
      rm -rf "$d"; mkdir -p "$d"
      truncate -s "$bank" "$d/a" "$d/b"; dd if="$OLD" of="$d/a" conv=notrunc status=none
      python3 - "$d" "$WORK" "$mode" <<'PY'
import json, sys
d, w, mode = sys.argv[1:4]
c = {"device_id": "bench", "hardware_id": "bench", "banks": {"a": d + "/a", "b": d + "/b"},
     "boot": {"backend": "file", "file": d + "/env.json"}, "trust_root": w + "/root.json", "state_dir": d + "/state"}
if mode == "encrypted":
    c["decryption"] = {"key": w + "/dev.key"}
json.dump(c, open(d + "/agent.json", "w"))
PY
      /usr/bin/time -f '%e %M' -o "$d/time" "$AGENT" -c "$d/agent.json" install "file://$b" -q ||
        { log "install failed ($pair $mode)"; status=1; }
      cmp -s -n "$size" "$NEW" "$d/b" || { log "bank b is not NEW ($pair $mode)"; status=1; }
      read -r wall r < "$d/time"
      install_walls+=("$wall"); (( r > rss )) && rss=$r
    done
    install_s=$(printf '%s\n' "${install_walls[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$mode" "$bytes" "$full" "$delta" "$build_s" "$verify_s" \
      "$verify_key_s" "$install_s" "$rss" >> "$ROWS"
  done
done

python3 - "$ROWS" "$OUT" "$BLOCK" "$REPEAT" "$*" <<'PY'
import sys
rows_path, out, block, repeat = sys.argv[1:5]
rows = [l.rstrip("\n").split("\t") for l in open(rows_path)]
by = {(r[0], r[1]): r for r in rows}
lines = [f"Encrypted bundles: overhead (`bench/encryption_bench.sh`, blocks of {block} bytes; verify and install: median of {repeat}, build: one run)", "",
         "| pair | bundle | full payload | delta payload | build s | verify s | verify with key s | install s | install peak RSS KiB |",
         "|---|---|---|---|---|---|---|---|---|"]
for pair in dict.fromkeys(r[0] for r in rows):
    p, e = by[(pair, "plain")], by[(pair, "encrypted")]
    for r in (p, e):
        lines.append(f"| {pair} {r[1]} | {int(r[2]):,} | {int(r[3]):,} | {int(r[4]):,} | {float(r[5]):.2f} | {float(r[6]):.2f} | "
                     f"{r[7] if r[7] == '-' else format(float(r[7]), '.2f')} | {float(r[8]):.2f} | {int(r[9]):,} |")
    ratio = lambda i: float(e[i]) / float(p[i]) if float(p[i]) else float("nan")
    lines.append(f"| {pair} encrypted / plain | {ratio(2):.5f}x (+{int(e[2]) - int(p[2]):,} B) | {ratio(3):.5f}x | {ratio(4):.5f}x | "
                 f"{ratio(5):.2f}x | {ratio(6):.2f}x | | {ratio(8):.2f}x | {ratio(9):.2f}x |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $status
