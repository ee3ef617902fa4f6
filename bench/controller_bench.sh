#!/usr/bin/env bash
# controller_bench.sh: the campaign controller's throughput alone, against the
# size of the fleet it keeps a view of (ota-controller-bench, bench/controller_bench.cpp:
# the real Controller and its fsync'd journal, fed pre-generated device reports
# in process, as fast as it takes them; no broker, no devices).
#
#   bench/controller_bench.sh [--sizes 1000,10000,100000,1000000] [--broker-sizes 1000,10000,100000]
#                             [--reports N] [--bench PATH] [--out FILE] [--json FILE]
#
# Then the same through a real mosquitto on loopback (its own configuration and
# port, started and stopped here), for --broker-sizes: the fill arrives as the
# retained states the controller's subscription receives at once (a controller
# restart), the steady state from four publishing connections while it runs.
# Each size runs in its own process, signed (Ed25519 per report, checked
# against the fleet registry, which holds at most 100,000 devices) and
# unsigned. Reports per second for the fill (one first sighting per device,
# each journaled) and the steady state (rounds of downloading, rebooting,
# succeeded: a third of the reports are final results, journaled with group
# commit), the controller's memory, the journal's size and the time a
# restarted controller takes to replay it.
# Exit 0 when every run counted every result exactly once (and, through the
# broker, the controller's client dropped nothing); 1 otherwise.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_NAME=controller
source "$SCRIPT_DIR/lib.sh"

sizes=1000,10000,100000,1000000
broker_sizes=1000,10000,100000
reports=300000
bench=$ROOT/build/bench/ota-controller-bench
out=$ROOT/bench/results/controller.md
json=
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --broker-sizes) broker_sizes=$2; shift 2 ;;
    --reports) reports=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -n "$json" ] || json=${out%.md}.json
ensure_commands python3=python3 mosquitto=mosquitto
[ -x "$bench" ] || die "build first: scripts/build.sh build -DOTA_BUILD_BENCH=ON (needs $bench)"
mkdir -p "$(dirname "$out")" "$ROOT/bench/data/runs/controller"

runs=$(mktemp)
work=$(mktemp -d)
broker_pid=
cleanup() {
  [ -z "$broker_pid" ] || { kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; }
  rm -rf "$runs" "$work"
}
trap cleanup EXIT
status=0
# run_sizes SIZES [ARGS...]: every size, signed (up to the registry's limit) and unsigned.
run_sizes() {
  local list=$1 n mode; shift
  for n in ${list//,/ }; do
    for mode in signed unsigned; do
      if [ "$mode" = signed ] && [ "$n" -gt 100000 ]; then
        log "$n devices, signed: skipped (the registry holds at most 100,000 devices)"
        continue
      fi
      log "$n devices, $mode $*"
      if ! "$bench" --devices "$n" --reports "$reports" --mode "$mode" --dir "$ROOT/bench/data/runs/controller" "$@" >>"$runs"; then
        log "$n devices, $mode: a result was lost or counted twice"
        status=1
      fi
    done
  done
}
run_sizes "$sizes"
if [ -n "$broker_sizes" ]; then
  # A fresh broker per size: no retained state of an earlier run.
  for n in ${broker_sizes//,/ }; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/mosquitto.conf" <<CONF
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
persistence false
log_dest none
CONF
    mosquitto -c "$work/mosquitto.conf" &
    broker_pid=$!
    for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.1)" 2>/dev/null && break; sleep 0.1; done
    run_sizes "$n" --broker "mqtt://127.0.0.1:$port"
    kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=
  done
fi

python3 - "$runs" "$out" "$json" "bench/controller_bench.sh $*" <<'PY'
import json, os, platform, subprocess, sys, time
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, jpath, command = sys.argv[2], sys.argv[3], sys.argv[4].strip()
json.dump(runs, open(jpath, "w"), indent=2)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
load = open("/proc/loadavg").read().split()[:3]
src = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [
    "# Campaign controller throughput, alone",
    "",
    f"- Command: `{command}`",
    f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; source {src}",
    f"- Machine: {platform.machine()}, {cpu}, nproc {os.cpu_count()}; load average at the end {' '.join(load)}",
    "- Reports come from memory (no broker): the controller's own limit. Signed: an Ed25519 envelope per report,"
    " checked against the registry; unsigned: bare JSON. The journal is fsync'd as in production (group commit:"
    " every 512 results or at a quiet moment, and before every decision).",
    "- Fill: one first sighting per device (each journaled). Steady: rounds of downloading, rebooting, succeeded"
    " over the fleet (a third are final results, journaled with their envelope).",
    "- Controller memory: resident growth of the process from opening the campaign (the reports were generated"
    " before, in one block); replay: `Controller::open` on the journal the run left.",
    "",
    "- Through mosquitto: the fill is the retained states the controller's subscription receives at once; the"
    " steady state comes from four publishing connections (QoS 1, retained), on the same 2 cores as the broker.",
    "",
    "| transport | devices | reports | fill reports/s | steady reports/s | controller MiB | per device B | journal MB | replay s | counted |",
    "| :--- | ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | :--- |",
]
for r in runs:
    ok = r["succeeded"] == r["devices"] - 1 and r["targeted"] == r["devices"] and r.get("dropped_by_client_queue", 0) == 0
    mib = r["controller_rss_end_kib"] / 1024
    lines.append(
        f"| {r.get('transport', 'memory')} | {r['devices']:,} | {r['mode']} | {r['fill_reports_per_s']:,.0f} | {r['steady_reports_per_s']:,.0f} "
        f"({r['steady_reports']:,} in {r['steady_s']:.2f} s) | {mib:,.1f} | {r['controller_rss_end_kib'] * 1024 / r['devices']:,.0f} "
        f"| {r['journal_bytes'] / 1e6:,.1f} | {r['reopen_s']:.2f} | {'each once' if ok else '**LOST OR TWICE**'} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "report: $out, raw numbers: $json"
exit $status
