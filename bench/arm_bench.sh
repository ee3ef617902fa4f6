#!/usr/bin/env bash
# arm_bench.sh: the device binaries cross-built for ARM (scripts/cross-test.sh)
# next to the native x86-64 build: the stripped sizes of ota-agent and
# ota-patch, the wall time and peak resident memory of applying a delta with
# ota-patch, and of `ota-agent install` of a signed bundle whose delta applies
# (file banks, the file boot environment: verify, stream-patch into the
# inactive bank, check, trial), native and under qemu-user. See
# docs/benchmarks.md, "On ARM".
#
#   bench/arm_bench.sh [--native DIR] [--arm64 DIR] [--armhf DIR] [--pair OLD NEW] [--runs N] [--out FILE]
#
#   --native DIR   the x86-64 build (default build/): DIR/tools/ota (makes the delta),
#                  DIR/tools/ota-patch and DIR/device-agent/ota-agent
#   --arm64 DIR    the arm64 build (default build-arm64/), --armhf DIR the armhf one
#                  (default build-armhf/); an architecture whose binaries are missing is left out
#   --pair OLD NEW the image pair (default bench/data/fs/rootfs-r2.fit.ext4 -> rootfs-r3.fit.ext4,
#                  which bench/fs_images.sh builds, when present; otherwise a generated
#                  32 MiB pair: random bytes, then 2 % of them rewritten in 64 KiB runs and
#                  4 KiB inserted and removed in places)
#   --runs N       apply runs per architecture (default 3); the run with the median wall
#                  time is reported
#   --out FILE     also write the Markdown table to FILE
#
# The delta is made once by the native `ota diff`; every ota-patch run must
# reproduce NEW byte for byte. Under qemu-user, /usr/bin/time's peak RSS is the
# emulator's (its translation cache and its own libraries) plus the guest's:
# an upper bound for the program on real hardware, not a measure of it. The
# wall time is the emulation's, on this machine, not a prediction for a device.
# Exit status: 0 when every run reproduced NEW; 1 otherwise; 2 on a usage or setup error.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_NAME=arm_bench
# shellcheck source=bench/lib.sh
source bench/lib.sh

native=build
arm64=build-arm64
armhf=build-armhf
old=""
new=""
runs=3
out=""
while (($#)); do
  case "$1" in
    --native) native=$2; shift 2 ;;
    --arm64) arm64=$2; shift 2 ;;
    --armhf) armhf=$2; shift 2 ;;
    --pair) old=$2; new=$3; shift 3 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
ensure_commands /usr/bin/time=time qemu-aarch64=qemu-user python3=python3 file=file
[[ -x $native/tools/ota && -x $native/tools/ota-patch && -x $native/device-agent/ota-agent ]] ||
  die "no native build in $native (scripts/build.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/arm_bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -z $old ]]; then
  if [[ -s bench/data/fs/rootfs-r2.fit.ext4 && -s bench/data/fs/rootfs-r3.fit.ext4 ]]; then
    old=bench/data/fs/rootfs-r2.fit.ext4
    new=bench/data/fs/rootfs-r3.fit.ext4
  else
    log "no bench/data/fs images (bench/fs_images.sh): generating a 32 MiB pair"
    old=$work/old.img
    new=$work/new.img
    python3 - "$old" "$new" <<'PY'
import random, sys
r = random.Random(19)
size = 32 << 20
old = bytearray(r.getrandbits(8 * size).to_bytes(size, "little"))
new = bytearray(old)
for _ in range(size // 50 // 65536):          # 2 % rewritten, in 64 KiB runs
    at = r.randrange(0, size - 65536)
    new[at:at + 65536] = r.getrandbits(8 * 65536).to_bytes(65536, "little")
for _ in range(8):                             # 4 KiB inserted, 4 KiB removed
    at = r.randrange(0, len(new) - 4096)
    new[at:at] = r.getrandbits(8 * 4096).to_bytes(4096, "little")
    at = r.randrange(0, len(new) - 4096)
    del new[at:at + 4096]
open(sys.argv[1], "wb").write(old)
open(sys.argv[2], "wb").write(new)
PY
  fi
fi
[[ -s $old && -s $new ]] || die "missing image pair: $old $new"
patch=$work/delta.otd
log "ota diff $old $new"
"$native/tools/ota" diff "$old" "$new" -o "$patch" -q
new_sum=$(b2sum <"$new" | cut -d' ' -f1)
# The signed bundle the agent installs: the full image and the delta from OLD.
export SOURCE_DATE_EPOCH=1780000000
"$native/tools/ota" keygen -o "$work/k" -q >/dev/null
"$native/tools/ota" root init --key "$work/k.pub" --threshold 1 --expires 2099-01-01 -o "$work/root.json" -q
"$native/tools/ota" root sign "$work/root.json" --key "$work/k.key" -q >/dev/null
log "ota build (the delta and the full image)"
"$native/tools/ota" build --image "$new" --base "$old" --version 2.0.0 --hw bench --key "$work/k.key" -q -o "$work/b.otb"
bank_bytes=$(( $(stat -c %s "$old") > $(stat -c %s "$new") ? $(stat -c %s "$old") : $(stat -c %s "$new") ))
bank_bytes=$(( bank_bytes + 1048576 ))
# One run of time -v: prints "WALL_S RSS_KIB".
time_of() {
  sed -nE 's/.*Elapsed \(wall clock\) time.*: (([0-9]+):)?([0-9]+):([0-9.]+)$/\1 \3 \4/p' "$1" |
    awk '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }' | tr '\n' ' '
  sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p' "$1"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
kib() { awk -v b="$1" 'BEGIN { printf "%d", (b + 1023) / 1024 }'; }

# arch label, build dir, strip, the command prefix that runs a target program.
rows=()
status=0
measure() {
  local label=$1 dir=$2 strip=$3; shift 3
  local -a run=("$@")
  local agent=$dir/device-agent/ota-agent patcher=$dir/tools/ota-patch
  if [[ ! -x $agent || ! -x $patcher ]]; then
    log "$label: no ota-agent/ota-patch in $dir (scripts/cross-test.sh), left out"
    return 0
  fi
  command -v "$strip" >/dev/null || { log "$label: no $strip, left out"; return 0; }
  "$strip" -o "$work/agent.$label" "$agent"
  "$strip" -o "$work/patch.$label" "$patcher"
  local agent_size patch_size linkage
  agent_size=$(stat -c %s "$work/agent.$label")
  patch_size=$(stat -c %s "$work/patch.$label")
  linkage=$(file -b "$patcher" | grep -q 'statically linked' && echo static || echo dynamic)
  local results=() i
  for ((i = 0; i < runs; i++)); do
    rm -f "$work/out.img"
    if ! /usr/bin/time -v -o "$work/time.txt" "${run[@]}" "$work/patch.$label" -q "$old" "$patch" -o "$work/out.img" \
      >"$work/patch.log" 2>&1; then
      cat "$work/patch.log" >&2
      log "$label: ota-patch failed"
      status=1
      return 0
    fi
    if [[ $(b2sum <"$work/out.img" | cut -d' ' -f1) != "$new_sum" ]]; then
      log "$label: ota-patch output differs from NEW"
      status=1
      return 0
    fi
    results+=("$(time_of "$work/time.txt")")
  done
  local median
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  # ota-agent install: a fresh device each run (OLD in bank a, bank b empty).
  local installs=() dev=$work/dev.$label
  for ((i = 0; i < runs; i++)); do
    rm -rf "$dev"
    mkdir -p "$dev"
    truncate -s "$bank_bytes" "$dev/a" "$dev/b"
    dd if="$old" of="$dev/a" conv=notrunc status=none
    printf '{"device_id": "bench", "hardware_id": "bench", "banks": {"a": "%s", "b": "%s"}, "boot": {"backend": "file", "file": "%s"}, "trust_root": "%s", "state_dir": "%s"}\n' \
      "$dev/a" "$dev/b" "$dev/env.json" "$work/root.json" "$dev/state" >"$dev/agent.json"
    if ! /usr/bin/time -v -o "$work/time.txt" "${run[@]}" "$agent" -c "$dev/agent.json" install "file://$work/b.otb" -q \
      >"$work/agent.log" 2>&1; then
      cat "$work/agent.log" >&2
      log "$label: ota-agent install failed"
      status=1
      return 0
    fi
    if ! cmp -s -n "$(stat -c %s "$new")" "$new" "$dev/b"; then
      log "$label: bank b does not hold NEW after ota-agent install"
      status=1
      return 0
    fi
    installs+=("$(time_of "$work/time.txt")")
  done
  local imedian
  imedian=$(printf '%s\n' "${installs[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  local how=native
  ((${#run[@]})) && how="${run[0]##*/} (qemu-user)"
  rows+=("| $label | $how | $(kib "$agent_size") | $(kib "$patch_size") ($linkage) | $(awk -v s="${median% *}" 'BEGIN { printf "%.2f", s }') | $(awk -v k="${median#* }" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v s="${imedian% *}" 'BEGIN { printf "%.2f", s }') | $(awk -v k="${imedian#* }" 'BEGIN { printf "%.1f", k / 1024 }') |")
  log "$label: agent $(kib "$agent_size") KiB, ota-patch $(kib "$patch_size") KiB, apply ${median% *} s, peak RSS ${median#* } KiB"
}

measure x86-64 "$native" strip
measure arm64 "$arm64" aarch64-linux-gnu-strip qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib
measure armhf "$armhf" arm-linux-gnueabihf-strip qemu-arm -L /usr/arm-linux-gnueabihf -E LD_LIBRARY_PATH=/usr/arm-linux-gnueabihf/lib

{
  echo "Installing a delta: \`ota-patch -q OLD DELTA -o NEW\`, OLD $(basename "$old") ($(mib "$(stat -c %s "$old")") MiB) ->"
  echo "NEW $(basename "$new") ($(mib "$(stat -c %s "$new")") MiB), delta $(kib "$(stat -c %s "$patch")") KiB by the native \`ota diff\`;"
  echo "median of $runs runs each, every output checked against NEW. Sizes after \`strip\` (the architecture's binutils)."
  echo "Agent install: \`ota-agent install file://BUNDLE\` of the signed bundle (full image and that delta, $(kib "$(stat -c %s "$work/b.otb")") KiB)"
  echo "into file banks holding OLD: signatures, the delta chosen by the bank's hash, streamed into bank b, checked, the trial set."
  echo
  echo "| arch | runs as | ota-agent stripped (KiB) | ota-patch stripped (KiB) | apply wall (s) | apply peak RSS (MiB) | agent install wall (s) | agent install peak RSS (MiB) |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Under qemu-user the peak RSS includes the emulator; the wall time is the emulation's on $(nproc) cores of $(uname -m)."
} | tee "${out:-/dev/null}"
exit $status
