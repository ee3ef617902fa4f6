#!/usr/bin/env bash
# bundle_bench.sh: ota's signed bundles against Debian's mender-artifact (3.9) on the
# same 64 MiB image of real bytes: build/write, full verify/validate, metadata-only
# verify. See bench/README.md.
#
#   bench/bundle_bench.sh [--quick] [--repeat N] [--write-repeat N] [--out FILE] [--json FILE] [--ota PATH] [--build] [--keep]
#
# Exit status: 0 when every command succeeded and every check passed (the product
# targets are reported as PASS/MISS but never fail the run); 1 when a tool failed or a
# check failed; 2 on a usage or setup error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$ROOT"   # every path below is relative to the repository root

# ---- the input -------------------------------------------------------------
LIBDIR=/usr/lib/x86_64-linux-gnu   # *.so* regular files (top level), sorted by name, concatenated
IMAGE_BYTES=$((64 * 1024 * 1024))   # ... and cut to exactly this many bytes with head -c
HW=bench-device
OTA_VERSION=1.0.0
MENDER_NAME=bench-1.0
ROOT_EXPIRES=2030-01-01

# ---- arguments -------------------------------------------------------------
usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --quick       skip the slow informative row (ota build --level 19, ~18 s)
  Every operation runs once under /usr/bin/time (peak RSS, CPU), then N more times directly
  for the median wall time:
  --repeat N    N for `ota verify --metadata-only` (default 20); full verify and
                validate get max(3, N/4)
  --write-repeat N  N for the writes: ota build, mender-artifact write (default 3;
                0: the single run); ota build --level 19 and the mender extract run once
  --out FILE    Markdown report (default bench/results/bundle.md)
  --json FILE   raw numbers as JSON (default: --out with .json, i.e. bench/results/bundle.json)
  --ota PATH    the ota CLI to measure (default $OTA_BIN or build/tools/ota)
  --build       configure and build build/tools/ota (Release, target ota_cli) before measuring
  --keep        keep the extracted image and the tampered copies (default: removed once checked)
EOF
}

ORIG_ARGS=("$@")
QUICK=0
BUILD=0
KEEP=0
REPEAT=20
WRITE_REPEAT=3
OUT="bench/results/bundle.md"
JSON=""
OTA="${OTA_BIN:-build/tools/ota}"
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --build) BUILD=1 ;;
    --keep) KEEP=1 ;;
    --repeat) [[ $# -ge 2 ]] || { echo "--repeat needs a number" >&2; exit 2; }; REPEAT=$2; shift ;;
    --repeat=*) REPEAT=${1#--repeat=} ;;
    --write-repeat) [[ $# -ge 2 ]] || { echo "--write-repeat needs a number" >&2; exit 2; }; WRITE_REPEAT=$2; shift ;;
    --write-repeat=*) WRITE_REPEAT=${1#--write-repeat=} ;;
    --out) [[ $# -ge 2 ]] || { echo "--out needs a file" >&2; exit 2; }; OUT=$2; shift ;;
    --out=*) OUT=${1#--out=} ;;
    --json) [[ $# -ge 2 ]] || { echo "--json needs a file" >&2; exit 2; }; JSON=$2; shift ;;
    --json=*) JSON=${1#--json=} ;;
    --ota) [[ $# -ge 2 ]] || { echo "--ota needs a path" >&2; exit 2; }; OTA=$2; shift ;;
    --ota=*) OTA=${1#--ota=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat needs a positive integer, not '$REPEAT'" >&2; exit 2; }
[[ "$WRITE_REPEAT" =~ ^[0-9]+$ ]] || { echo "--write-repeat needs a non-negative integer, not '$WRITE_REPEAT'" >&2; exit 2; }
REPEAT_FULL=$(( REPEAT / 4 > 3 ? REPEAT / 4 : 3 ))
if [[ -z "$JSON" ]]; then
  JSON="${OUT%.md}.json"
  [[ "$JSON" != "$OUT" ]] || JSON="$OUT.json"
fi

BENCH_NAME=bundle_bench
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"   # log, die, ensure_commands (and the npm helpers, unused here)

# ---- 1. tools ----------------------------------------------------------------
ensure_tools() {
  ensure_commands mender-artifact=mender-artifact openssl=openssl /usr/bin/time=time python3=python3 cmp=diffutils \
    dpkg-query=dpkg sync=coreutils sha256sum=coreutils head=coreutils find=findutils
}

# ---- 2. data -------------------------------------------------------------------
BDIR=$DATA/bundle        # image, keys, bundles
RUNS=$BDIR/runs          # per-command time files, stdout, stderr; raw.tsv and meta.tsv
IMG=$BDIR/image-64MiB.bin

# make_image FILE: the *.so* regular files at the top of $LIBDIR, sorted by name (C locale),
# concatenated and cut to exactly $IMAGE_BYTES bytes. Only the files needed are read.
make_image() {
  local img=$1 list=$BDIR/image-files.txt
  local -a files=()
  local total=0 f
  while IFS= read -r -d '' f; do
    files+=("$f")
    total=$((total + $(stat -c %s "$f")))
    ((total < IMAGE_BYTES)) || break
  done < <(find "$LIBDIR" -maxdepth 1 -type f -name '*.so*' -print0 | LC_ALL=C sort -z)
  ((total >= IMAGE_BYTES)) || die "the *.so* files of $LIBDIR hold only $total bytes, need $IMAGE_BYTES"
  printf '%s\n' "${files[@]}" >"$list"
  # head stops reading after IMAGE_BYTES, so cat may die of SIGPIPE on the last file: expected.
  { cat -- "${files[@]}" | head -c "$IMAGE_BYTES" >"$img.tmp"; } || true
  [[ $(stat -c %s "$img.tmp") -eq $IMAGE_BYTES ]] || die "could not write $IMAGE_BYTES bytes to $img"
  mv -f "$img.tmp" "$img"
  IMAGE_FILES=${#files[@]}
  IMAGE_FIRST=$(basename "${files[0]}")
  IMAGE_LAST=$(basename "${files[-1]}")
}

# ---- 3. measurement ------------------------------------------------------------
RAW=""        # TSV of raw measurements, one row per operation
META=""       # key<TAB>value lines for the report
NOTES=()
FAILED=0

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# CPU time of the whole machine so far, in clock ticks (all cores, busy states only).
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# run_timed TIMEFILE STDOUT STDERR CMD...: runs CMD under /usr/bin/time -f '%e %M %U %S'; sets
#   T_RC, T_WALL (s), T_RSS (peak KiB) and T_CPU (user + system s, all threads) from /usr/bin/time,
#   T_HIRES: wall s by the bash clock around /usr/bin/time (finer, includes its fork),
#   T_OTHER: CPU cores that other processes kept busy meanwhile, on average
#            ((machine busy ticks - T_CPU) / wall; 0 on a quiet machine).
run_timed() {
  local tf=$1 so=$2 se=$3; shift 3
  sync   # flush earlier writes now, so no command pays for another's writeback
  local t0 t1 b0 b1 rc=0
  b0=$(machine_busy_ticks)
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$so" 2>"$se" || rc=$?
  t1=$EPOCHREALTIME
  b1=$(machine_busy_ticks)
  T_RC=$rc
  T_HIRES=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
  # On failure GNU time writes "Command exited with non-zero status N" first; the numbers are last.
  local last
  last=$(tail -n 1 "$tf" 2>/dev/null || true)
  if [[ "$last" =~ ^([0-9.]+)\ ([0-9]+)\ ([0-9.]+)\ ([0-9.]+)$ ]]; then
    T_WALL=${BASH_REMATCH[1]}; T_RSS=${BASH_REMATCH[2]}
    T_CPU=$(awk -v u="${BASH_REMATCH[3]}" -v s="${BASH_REMATCH[4]}" 'BEGIN { printf "%.2f", u + s }')
  else
    T_WALL=""; T_RSS=""; T_CPU=""
    [[ $T_RC -ne 0 ]] || T_RC=125
  fi
  T_OTHER=$(awk -v b0="$b0" -v b1="$b1" -v hz="$CLK_TCK" -v cpu="${T_CPU:-0}" -v w="$T_HIRES" \
    'BEGIN { o = (b1 - b0) / hz - cpu; if (o < 0) o = 0; printf "%.3f", (w > 0 ? o / w : 0) }')
}

# run_repeat N PREFIX CMD...: runs CMD N more times, directly (no /usr/bin/time, whose fork
# and exec would be part of a millisecond measurement), each timed by the bash clock, each
# after a `sync` (untimed, and outside the CPU accounting below only approximately).
# Sets R_SAMPLES (comma-separated wall s), R_FAILS (runs with a non-zero exit) and
# R_OTHER (other processes' busy cores over the whole block, as T_OTHER).
run_repeat() {
  local n=$1 prefix=$2; shift 2
  local i t0 t1 rc b0 b1 start end cpu0 cpu1
  R_SAMPLES=""; R_FAILS=0
  times >"$prefix.cpu0"
  b0=$(machine_busy_ticks); start=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    rc=0
    sync
    t0=$EPOCHREALTIME
    "$@" >"$prefix.stdout" 2>"$prefix.stderr" || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 0)) || { R_FAILS=$((R_FAILS + 1)); cp -f "$prefix.stderr" "$prefix.failed.stderr"; }
    R_SAMPLES+="${R_SAMPLES:+,}$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
  done
  end=$EPOCHREALTIME; b1=$(machine_busy_ticks)
  times >"$prefix.cpu1"
  # user + system CPU of this shell's finished children (the N runs), from `times`.
  cpu0=$(tail -n 1 "$prefix.cpu0" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } print s }')
  cpu1=$(tail -n 1 "$prefix.cpu1" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } print s }')
  rm -f "$prefix.cpu0" "$prefix.cpu1"
  R_OTHER=$(awk -v b0="$b0" -v b1="$b1" -v hz="$CLK_TCK" -v c0="$cpu0" -v c1="$cpu1" -v a="$start" -v b="$end" \
    'BEGIN { w = b - a; o = (b1 - b0) / hz - (c1 - c0); if (o < 0) o = 0; printf "%.3f", (w > 0 ? o / w : 0) }')
}

q() { printf '%q ' "$@" | sed 's/ $//'; }

# measure ID TOOL LABEL BASELINE OUTPUT REPEATS CMD...
#   ID: the row id (the report refers to it); BASELINE: the mender row this one is compared
#   with ("" for none); OUTPUT: the file the command writes ("" for none); REPEATS: extra
#   direct runs for a median (0 for none). Sets M_RC (0 when the command and all repeats
#   succeeded). The row's check column is filled in later by `check`.
measure() {
  local id=$1 tool=$2 label=$3 baseline=$4 output=$5 repeats=$6; shift 6
  local base=$RUNS/$id
  [[ -z "$output" ]] || rm -f "$output"
  log "$label"
  run_timed "$base.time" "$base.stdout" "$base.stderr" "$@"
  local rc=$T_RC wall=$T_WALL rss=$T_RSS cpu=$T_CPU hires=$T_HIRES other=$T_OTHER
  local out_bytes="" samples="" fails="" r_other=""
  [[ -n "$output" && -f "$output" ]] && out_bytes=$(stat -c %s "$output")
  if ((repeats > 0)) && [[ $rc -eq 0 ]]; then
    log "$label: $repeats more runs for the median"
    run_repeat "$repeats" "$base.repeat" "$@"
    samples=$R_SAMPLES fails=$R_FAILS r_other=$R_OTHER
  fi
  M_RC=$rc
  [[ -z "$fails" || "$fails" -eq 0 ]] || M_RC=1
  if [[ $M_RC -ne 0 ]]; then
    log "$label FAILED (rc=$rc${fails:+, $fails of $repeats repeats failed}); logs in $base.*"
    FAILED=1
  fi
  printf '%s\n' "$id" "$tool" "$label" "$baseline" "$rc" "$wall" "$rss" "$cpu" "$hires" "$other" \
    "$output" "$out_bytes" "$repeats" "$samples" "$fails" "$r_other" "$(q "$@")" "$base.stdout" \
    | paste -sd '\t' >>"$RAW"
}

# check NAME RESULT DETAIL: one correctness check (OK or FAIL) for the report.
CHECKS=""
check() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$CHECKS"
  if [[ $2 != OK ]]; then
    FAILED=1
    log "check FAILED: $1: $3"
  fi
}

# tamper SRC DST: a copy of SRC with one byte (in the middle of the file) inverted.
tamper() {
  python3 - "$1" "$2" <<'EOF'
import shutil, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copyfile(src, dst)
with open(dst, "r+b") as f:
    f.seek(0, 2)
    off = f.tell() // 2
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
print(off)
EOF
}

# ---- main ------------------------------------------------------------------------
main() {
  ensure_tools

  if ((BUILD)); then
    log "building the ota CLI"
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
    cmake --build build -j"$(nproc)" --target ota_cli >&2
  fi
  [[ -x "$OTA" ]] || die "no ota CLI at $OTA: build it (cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build --target ota_cli) or pass --ota / --build"
  local stale
  stale=$(find libota tools -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -newer "$OTA" 2>/dev/null | head -n 5 || true)
  if [[ -n "$stale" ]]; then
    log "warning: sources newer than $OTA: $(echo "$stale" | paste -sd ' ')"
    NOTES+=("The ota binary is older than these sources (rebuild before trusting the numbers): $(echo "$stale" | paste -sd ' ')")
  fi

  mkdir -p "$BDIR" "$(dirname "$OUT")" "$(dirname "$JSON")"
  rm -rf "$RUNS"; mkdir -p "$RUNS"

  # Measure a private copy: the build tree may be rebuilt while this runs.
  local OTA_RUN=$BDIR/ota-under-test
  local ota_mtime
  ota_mtime=$(date -u -r "$OTA" '+%Y-%m-%d %H:%M:%S UTC')
  cp -f "$OTA" "$OTA_RUN.tmp" && mv -f "$OTA_RUN.tmp" "$OTA_RUN"
  local load_start; load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  local git_rev
  git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- libota tools 2>/dev/null || echo ' + uncommitted changes in libota/ or tools/')"
  # Kept after the run: `python3 bench/bundle_report.py --raw bench/data/bundle/runs/raw.tsv
  # --meta bench/data/bundle/runs/meta.tsv --checks bench/data/bundle/runs/checks.tsv
  # --md FILE --json FILE` re-renders the report.
  RAW=$RUNS/raw.tsv
  META=$RUNS/meta.tsv
  CHECKS=$RUNS/checks.tsv
  : >"$RAW"; : >"$META"; : >"$CHECKS"

  # The input, rebuilt every run (0.2 s) so its provenance is this machine's libraries now.
  log "making the 64 MiB image from $LIBDIR/*.so*"
  make_image "$IMG"
  local img_sha; img_sha=$(sha256sum "$IMG" | cut -d' ' -f1)

  # Keys (untimed setup): ota Ed25519 key and a self-signed root; mender ECDSA P-256 key.
  local K=$BDIR/keys
  rm -rf "$K"; mkdir -p "$K"
  "$OTA_RUN" keygen -o "$K/ota" -q >"$RUNS/setup.log" 2>&1 || die "ota keygen failed (see $RUNS/setup.log)"
  "$OTA_RUN" root init --key "$K/ota.pub" --threshold 1 --expires "$ROOT_EXPIRES" -o "$K/root.json" -q \
    >>"$RUNS/setup.log" 2>&1 || die "ota root init failed (see $RUNS/setup.log)"
  "$OTA_RUN" root sign "$K/root.json" --key "$K/ota.key" -q >>"$RUNS/setup.log" 2>&1 \
    || die "ota root sign failed (see $RUNS/setup.log)"
  openssl ecparam -genkey -name prime256v1 -noout -out "$K/mender.key" 2>>"$RUNS/setup.log" \
    || die "openssl ecparam failed (see $RUNS/setup.log)"
  openssl ec -in "$K/mender.key" -pubout -out "$K/mender.pub" 2>>"$RUNS/setup.log" \
    || die "openssl ec -pubout failed (see $RUNS/setup.log)"

  local OTB=$BDIR/image.otb MEN=$BDIR/image.mender
  local -a OTA_BUILD=("$OTA_RUN" build --image "$IMG" --version "$OTA_VERSION" --hw "$HW" --key "$K/ota.key" --json)
  local -a OTA_VERIFY=("$OTA_RUN" verify "$OTB" --trust "$K/root.json" -q)

  # Warm the page cache for the image: every tool reads it warm.
  cat "$IMG" >/dev/null

  # ota and mender alternate, so that each pair of rows sees about the same machine load.
  measure ota_build ota "ota build" mender_write "$OTB" "$WRITE_REPEAT" "${OTA_BUILD[@]}" -o "$OTB"
  measure mender_write mender "mender-artifact write rootfs-image" "" "$MEN" "$WRITE_REPEAT" \
    mender-artifact write rootfs-image --compression gzip --no-progress \
    -t "$HW" -n "$MENDER_NAME" -f "$IMG" -k "$K/mender.key" -o "$MEN"
  measure ota_verify ota "ota verify (full)" mender_validate "" "$REPEAT_FULL" "${OTA_VERIFY[@]}"
  local VERIFY_RC=$M_RC
  measure mender_validate mender "mender-artifact validate" "" "" "$REPEAT_FULL" \
    mender-artifact validate -k "$K/mender.pub" "$MEN"
  local VALIDATE_RC=$M_RC
  measure ota_verify_meta ota "ota verify --metadata-only" mender_validate "" "$REPEAT" \
    "${OTA_VERIFY[@]}" --metadata-only

  # mender can give the image back: dump it and compare (informative row + check).
  local DUMP=$BDIR/mender-dump
  rm -rf "$DUMP"; mkdir -p "$DUMP"
  # Once: dump refuses to overwrite a file it extracted before.
  measure mender_extract mender "mender-artifact dump --files (extract)" "" "$DUMP/$(basename "$IMG")" 0 \
    mender-artifact dump --files "$DUMP" "$MEN"
  if [[ -f "$DUMP/$(basename "$IMG")" ]] && cmp -s "$DUMP/$(basename "$IMG")" "$IMG"; then
    check "mender-artifact dump: extracted image = input" OK "cmp: identical"
  else
    check "mender-artifact dump: extracted image = input" FAIL "missing or differs from the input"
  fi
  ((KEEP)) || rm -rf "$DUMP"

  # Informative ota rows (no targets): other zstd levels and a single thread.
  local -a extras=("ota_build_t1|ota build --threads 1|--threads 1|$WRITE_REPEAT")
  extras+=("ota_build_l3|ota build --level 3|--level 3|$WRITE_REPEAT")
  extras+=("ota_build_l9|ota build --level 9|--level 9|$WRITE_REPEAT")
  ((QUICK)) || extras+=("ota_build_l19|ota build --level 19|--level 19|0")   # ~18 s: once
  local e id label opts reps
  for e in "${extras[@]}"; do
    IFS='|' read -r id label opts reps <<<"$e"
    local -a eopts; read -r -a eopts <<<"$opts"
    measure "$id" ota "$label" mender_write "$BDIR/$id.otb" "$reps" "${OTA_BUILD[@]}" "${eopts[@]}" -o "$BDIR/$id.otb"
    if [[ $M_RC -eq 0 ]] && "$OTA_RUN" verify "$BDIR/$id.otb" --trust "$K/root.json" -q >"$RUNS/$id.verify.log" 2>&1; then
      check "$label: ota verify (full) of its bundle" OK "exit 0"
    else
      check "$label: ota verify (full) of its bundle" FAIL "build rc=$M_RC or verify failed (see $RUNS/$id.verify.log)"
    fi
  done
  ((QUICK)) && NOTES+=("--quick: the ota build --level 19 row was skipped.")

  # Outputs accepted: ota verify and mender validate exited 0 on every run (above).
  if ((VERIFY_RC == 0)); then
    check "ota verify (full) of the default bundle" OK "exit 0 on all $((REPEAT_FULL + 1)) runs"
  else
    check "ota verify (full) of the default bundle" FAIL "non-zero exit (see $RUNS/ota_verify.*)"
  fi
  if ((VALIDATE_RC == 0)) && grep -q 'validated successfully' "$RUNS/mender_validate.stdout" "$RUNS/mender_validate.stderr"; then
    check "mender-artifact validate of the artifact" OK "exit 0 on all $((REPEAT_FULL + 1)) runs, \"validated successfully\""
  else
    check "mender-artifact validate of the artifact" FAIL "non-zero exit or no \"validated successfully\" (see $RUNS/mender_validate.*)"
  fi

  # Both verifiers must reject a copy with one byte flipped in the middle of the file (in the
  # payload): otherwise their timings would not be those of a real check. Untimed.
  local off trc
  off=$(tamper "$OTB" "$BDIR/tampered.otb")
  trc=0; "$OTA_RUN" verify "$BDIR/tampered.otb" --trust "$K/root.json" >"$RUNS/tamper.ota.log" 2>&1 || trc=$?
  if ((trc == 0)); then
    check "ota verify (full) rejects the bundle with byte $off inverted" FAIL "accepted (exit 0)"
  else
    check "ota verify (full) rejects the bundle with byte $off inverted" OK \
      "exit $trc: $(grep -v '^[[:space:]]*$' "$RUNS/tamper.ota.log" | tail -n 1 | cut -c1-150)"
  fi
  off=$(tamper "$MEN" "$BDIR/tampered.mender")
  trc=0; mender-artifact validate -k "$K/mender.pub" "$BDIR/tampered.mender" >"$RUNS/tamper.mender.log" 2>&1 || trc=$?
  if ((trc == 0)); then
    check "mender-artifact validate rejects the artifact with byte $off inverted" FAIL "accepted (exit 0)"
  else
    check "mender-artifact validate rejects the artifact with byte $off inverted" OK \
      "exit $trc: $(grep -v '^[[:space:]]*$' "$RUNS/tamper.mender.log" | tail -n 1 | cut -c1-150)"
  fi
  ((KEEP)) || rm -f "$BDIR/tampered.otb" "$BDIR/tampered.mender"

  # Context for the report.
  local cmdline="bench/bundle_bench.sh"
  ((${#ORIG_ARGS[@]} == 0)) || cmdline+=" $(q "${ORIG_ARGS[@]}")"
  meta command "$cmdline"
  meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  meta quick "$QUICK"
  meta repeat "$REPEAT"
  meta repeat_full "$REPEAT_FULL"
  meta write_repeat "$WRITE_REPEAT"
  meta image_path "$IMG"
  meta image_bytes "$IMAGE_BYTES"
  meta image_sha256 "$img_sha"
  meta image_recipe "the first $IMAGE_FILES of \`find $LIBDIR -maxdepth 1 -type f -name '*.so*' | LC_ALL=C sort\`, concatenated, \`head -c $IMAGE_BYTES\` (first $IMAGE_FIRST, last (cut) $IMAGE_LAST; list in $BDIR/image-files.txt)"
  meta image_gzip_bytes "$(gzip -6 -c "$IMG" | wc -c)"
  meta ota_path "$OTA"
  meta ota_run_path "$OTA_RUN"
  meta ota_version "$("$OTA_RUN" --version 2>&1 | head -n 1 || echo unknown)"
  meta ota_sha256 "$(sha256sum "$OTA_RUN" | cut -c1-16)"
  meta ota_mtime "$ota_mtime"
  # The build type of the binary's CMake tree, when it is in one (the targets assume Release).
  local d cache="" btype="unknown"
  d=$(dirname "$OTA")
  for _ in 1 2 3; do
    [[ -f "$d/CMakeCache.txt" ]] && { cache=$d/CMakeCache.txt; break; }
    d=$(dirname "$d")
  done
  [[ -z "$cache" ]] || btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache" | head -n 1)
  meta ota_build_type "${btype:-unknown}${cache:+ ($cache)}"
  [[ "${btype:-}" == Release ]] || NOTES+=("The ota binary was not built as Release (CMAKE_BUILD_TYPE: ${btype:-unset}).")
  meta mender_version "$(mender-artifact --version 2>&1 | head -n 1)"
  meta loadavg "start $load_start, end $(cut -d' ' -f1-3 /proc/loadavg)"
  meta git_rev "$git_rev"
  local pkgs
  pkgs=$(dpkg-query -W mender-artifact openssl 2>/dev/null | awk '{printf "%s%s %s", (NR>1 ? ", " : ""), $1, $2}' || true)
  meta dpkg "$pkgs"
  meta arch "$(uname -m)"
  meta cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  meta nproc "$(nproc)"
  meta ota_keys "Ed25519 (ota keygen), root v1 threshold 1 expiring $ROOT_EXPIRES"
  meta mender_keys "ECDSA P-256 (openssl ecparam -name prime256v1)"
  local note
  for note in "${NOTES[@]+"${NOTES[@]}"}"; do meta note "$note"; done

  local rc=0
  python3 bench/bundle_report.py --raw "$RAW" --meta "$META" --checks "$CHECKS" --md "$OUT" --json "$JSON" || rc=$?
  log "report: $OUT, raw numbers: $JSON"
  ((rc != 0)) || ((FAILED == 0)) || rc=1
  return "$rc"
}

main
