#!/usr/bin/env bash
# reuse_bench.sh: bytes a device two versions back fetches (issue 16, item 4).
#
#   bench/reuse_bench.sh [--ota PATH] [--agent PATH] [--fs-dir DIR] [--only ext4,esbuild] [--reuse-args "FLAGS"] [--out FILE]
#
# --reuse-args: extra `ota build` flags for the chunking (e.g. "--reuse-min 4096 --reuse-avg-bits 12").
#
# For each set of three releases r1, r2, r3 (the ext4 root filesystems of
# bench/fs_images.sh, and @esbuild/linux-x64 0.23.1, 0.24.2, 0.25.0 from the
# npm registry): the bundle of r3 as a fleet on r2 gets it, `ota build
# --image r3 --base r2 --reuse` (a delta r2 -> r3, the full image and the
# chunks payload). A device with r1 in bank a (bank b empty) installs it with
# ota-agent from a local nginx; the bytes nginx sent are counted. Reported
# beside: the bundle, its full payload, the chunks payload, and a direct
# delta r1 -> r3 (`ota build --image r3 --base r1 --no-full`), the best a
# server that kept every old release could ship.
# Exit status: 0 when every install produced r3 in bank b; 1 otherwise; 2 on setup errors.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$ROOT"
BENCH_NAME=reuse_bench
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

OTA="${OTA_BIN:-build/tools/ota}"
AGENT="${OTA_AGENT_BIN:-build/device-agent/ota-agent}"
FS_DIR="$DATA/fs"
ONLY="ext4,esbuild"
REUSE_ARGS=""
OUT="bench/results/reuse.md"
ESBUILD_PKG="@esbuild/linux-x64"
ESBUILD_VERSIONS=(0.23.1 0.24.2 0.25.0)
ORIG_ARGS=("$@")
while (($#)); do
  case "$1" in
    --ota) OTA=$2; shift ;;
    --agent) AGENT=$2; shift ;;
    --fs-dir) FS_DIR=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --reuse-args) REUSE_ARGS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
mkdir -p "$(dirname "$OUT")"
[[ -x "$OTA" && -x "$AGENT" ]] || die "build ota and ota-agent first (cmake --build build), or pass --ota/--agent"
ensure_commands npm=npm nginx=nginx-light python3=python3 cmp=diffutils curl=curl

W=$ROOT/$DATA/reuse
rm -rf "$W"; mkdir -p "$W/www"
export SOURCE_DATE_EPOCH=1780000000
"$OTA" keygen -o "$W/k" >/dev/null
"$OTA" root init --key "$W/k.pub" --threshold 1 --expires 2099-01-01 -o "$W/root.json" -q
"$OTA" root sign "$W/root.json" --key "$W/k.key" >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NG=$W/nginx; mkdir -p "$NG/tmp"
cat >"$NG/nginx.conf" <<EOF
worker_processes 1;
$( [[ $(id -u) -eq 0 ]] && echo "user root root;" )
error_log $NG/error.log warn;
pid $NG/nginx.pid;
events { worker_connections 64; }
http {
  log_format ota '\$status \$body_bytes_sent "\$http_range" \$uri';
  access_log $NG/access.log ota;
  client_body_temp_path $NG/tmp/b; proxy_temp_path $NG/tmp/p; fastcgi_temp_path $NG/tmp/f;
  uwsgi_temp_path $NG/tmp/u; scgi_temp_path $NG/tmp/s;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$PORT; root $W/www; }
}
EOF
: >"$NG/access.log"
nginx -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log"
stop_nginx() { [[ -f "$NG/nginx.pid" ]] && kill "$(cat "$NG/nginx.pid")" 2>/dev/null; sleep 0.2; }
trap stop_nginx EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done

payload_size() {  # BUNDLE KIND: stored size of the payload of that kind
  "$OTA" inspect "$1" --json | python3 -c '
import json, sys
m = json.load(sys.stdin)
m = m.get("manifest", m)
print(sum(p["size"] for p in m["payloads"] if p["kind"] == sys.argv[1]))' "$2"
}

ROWS=()
# measure NAME R1 R2 R3
measure() {
  local name=$1 r1=$2 r2=$3 r3=$4 d=$W/$1
  mkdir -p "$d"
  log "$name: bundles"
  local t0 t1
  t0=$(date +%s.%N)
  "$OTA" build --image "$r3" --base "$r2" --reuse $REUSE_ARGS --version 3.0.0 --hw bench --key "$W/k.key" -q -o "$W/www/$name.otb"
  t1=$(date +%s.%N)
  "$OTA" build --image "$r3" --base "$r1" --no-full --version 3.0.0 --hw bench --key "$W/k.key" -q -o "$d/direct.otb"
  local size3 bank bundle full chunks delta23 direct
  size3=$(stat -c %s "$r3")
  bank=$(( ( $(stat -c %s "$r1") > size3 ? $(stat -c %s "$r1") : size3 ) / 1048576 * 1048576 + 8388608 ))
  bundle=$(stat -c %s "$W/www/$name.otb")
  full=$(payload_size "$W/www/$name.otb" full)
  chunks=$(payload_size "$W/www/$name.otb" chunks)
  delta23=$(payload_size "$W/www/$name.otb" delta)
  direct=$(payload_size "$d/direct.otb" delta)
  # The device: r1 in bank a, bank b empty.
  rm -rf "$d/state" "$d/bootenv.json" "$d/bank-a" "$d/bank-b"
  truncate -s "$bank" "$d/bank-a" "$d/bank-b"
  dd if="$r1" of="$d/bank-a" conv=notrunc bs=1M status=none
  cat >"$d/agent.json" <<EOF
{"device_id": "bench", "hardware_id": "bench",
 "banks": {"a": "$d/bank-a", "b": "$d/bank-b"},
 "boot": {"backend": "file", "file": "$d/bootenv.json"},
 "trust_root": "$W/root.json", "state_dir": "$d/state"}
EOF
  : >"$NG/access.log"
  log "$name: install from http (r1 in bank a)"
  local t2 t3
  t2=$(date +%s.%N)
  "$AGENT" -c "$d/agent.json" install "http://127.0.0.1:$PORT/$name.otb" --json >"$d/install.json" ||
    { log "$name: install failed: $(cat "$d/install.json")"; exit 1; }
  t3=$(date +%s.%N)
  cmp -s -n "$size3" "$d/bank-b" "$r3" || { log "$name: bank b does not hold r3"; exit 1; }
  local sent requests payload reused
  sent=$(awk '{s += $2} END {print s + 0}' "$NG/access.log")
  requests=$(wc -l <"$NG/access.log")
  payload=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["payload"])' "$d/install.json")
  reused=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_reused"])' "$d/install.json")
  ROWS+=("$name $size3 $bundle $full $chunks $delta23 $direct $sent $requests $payload $reused $(python3 -c "print(f'{$t1-$t0:.1f} {$t3-$t2:.1f}')")")
}

if want ext4; then
  for r in r1 r2 r3; do [[ -s "$FS_DIR/rootfs-$r.ext4" ]] || die "$FS_DIR/rootfs-$r.ext4 is missing (bash bench/fs_images.sh)"; done
  measure ext4 "$FS_DIR/rootfs-r1.ext4" "$FS_DIR/rootfs-r2.ext4" "$FS_DIR/rootfs-r3.ext4"
fi
if want esbuild; then
  bins=()
  for v in "${ESBUILD_VERSIONS[@]}"; do
    fetch "$ESBUILD_PKG" "$v"
    extract "$ESBUILD_PKG" "$v" package/bin/esbuild
    bins+=("$ROOT/$(pkg_dir "$ESBUILD_PKG" "$v")/package/bin/esbuild")
  done
  measure esbuild "${bins[@]}"
fi

{
  echo "# Reuse: a device two versions back (r1 installed, the bundle of r3 with a delta r2 -> r3)"
  echo
  echo "Command: \`bench/reuse_bench.sh ${ORIG_ARGS[*]@Q}\` ($(date -u +%Y-%m-%d), $(nproc) cores). Sizes in bytes."
  echo "ext4: bench/fs_images.sh rootfs r1/r2/r3; esbuild: @esbuild/linux-x64 ${ESBUILD_VERSIONS[*]}."
  echo
  echo "| set | image r3 | bundle | full payload | chunks payload | delta r2->r3 | direct delta r1->r3 | sent by nginx | requests | payload installed | reused from banks | sent / full | sent / direct delta | build s | install s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
  for row in "${ROWS[@]}"; do
    read -r n s3 b f c d23 dd sent req pl ru bt it <<<"$row"
    python3 - "$n" "$s3" "$b" "$f" "$c" "$d23" "$dd" "$sent" "$req" "$pl" "$ru" "$bt" "$it" <<'PY'
import sys
n, s3, b, f, c, d23, dd, sent, req, pl, ru, bt, it = sys.argv[1:]
s3, b, f, c, d23, dd, sent, req, ru = map(int, (s3, b, f, c, d23, dd, sent, req, ru))
print(f"| {n} | {s3:,} | {b:,} | {f:,} | {c:,} | {d23:,} | {dd:,} | {sent:,} | {req} | {pl} | {ru:,} | {sent/f:.3f} | {sent/dd:.2f} | {bt} | {it} |")
PY
  done
} >"$OUT"
cat "$OUT"
