#!/usr/bin/env bash
# fleet_bench.sh: a staged campaign over N simulated devices (ota-fleet-sim:
# libota's real agent core, one real MQTT connection each, banks in memory)
# against a real mosquitto on loopback, driven by the real controller
# (`ota campaign run`). Measures the time from publish to the last wave's
# completion, the controller's throughput in reports per second, the peak
# memory of the broker and of the controller, and lost or duplicated results;
# with --kill-broker, mosquitto is killed (-9) once the second wave opened
# and started again.
#
#   bench/fleet_bench.sh [--devices N] [--kill-broker] [--ota PATH] [--sim PATH] [--out FILE] [--json FILE]
#
# N defaults to 10000. Raises kernel.pid_max and vm.max_map_count (N devices
# need ~4 N threads) and the open-file limit. Exit 0 when every device
# succeeded and every result was counted exactly once; 1 otherwise.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BENCH_NAME=fleet
source "$SCRIPT_DIR/lib.sh"

devices=10000
kill_broker=0
ota=$ROOT/build/tools/ota
sim=$ROOT/build/bench/ota-fleet-sim
out=
json=
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices=$2; shift 2 ;;
    --kill-broker) kill_broker=1; shift ;;
    --ota) ota=$2; shift 2 ;;
    --sim) sim=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
ensure_commands mosquitto=mosquitto mosquitto_sub=mosquitto-clients python3=python3 /usr/bin/time=time
[ -x "$ota" ] && [ -x "$sim" ] || die "build first: scripts/build.sh (needs $ota and $sim)"

# Threads and sockets for N devices in one process, and N connections in mosquitto.
sysctl -q -w kernel.pid_max=4194304 vm.max_map_count=1048576 >/dev/null 2>&1 || log "could not raise pid_max/max_map_count"
ulimit -n "$(ulimit -Hn)"
ulimit -s 256   # smaller default thread stacks

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

python3 - <<'PY'
import random
r = random.Random(7)
v1 = bytes(r.randrange(256) for _ in range(16384))
v2 = bytearray(v1)
for _ in range(40):
    v2[r.randrange(len(v2))] = r.randrange(256)
open("v1.bin", "wb").write(v1)
open("v2.bin", "wb").write(bytes(v2))
PY
"$ota" keygen -o release -q >/dev/null
"$ota" root init --key release.pub --threshold 1 --expires 2099-01-01 -o root.json -q
"$ota" root sign root.json --key release.key -q
"$ota" build --image v2.bin --version 2.0.0 --hw sim-board --base v1.bin --key release.key -o v2.otb -q
mkdir -p www broker

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > broker/mosquitto.conf <<CONF
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
listener $port 127.0.0.1
allow_anonymous true
# The controller subscribes to every device's state: a deep queue for it.
max_queued_messages 1000000
persistence true
persistence_location $work/broker/
autosave_interval 5
log_dest none
CONF
start_broker() { mosquitto -c broker/mosquitto.conf 2>>broker/stderr.log & broker_pid=$!; pids+=("$broker_pid"); }
broker_peak() { awk '/VmHWM/ {print $2}' "/proc/$broker_pid/status" 2>/dev/null || echo 0; }
start_broker
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
broker=mqtt://127.0.0.1:$port

campaign=fleet-2.0.0
log "starting $devices devices"
# libmosquitto's network loop uses select(): descriptors past 1023 cannot be
# waited on, and each client holds three. So at most 300 devices per process.
per_proc=300
sim_pids=()
for ((i = 0; i * per_proc < devices; i++)); do
  n=$(( devices - i * per_proc < per_proc ? devices - i * per_proc : per_proc ))
  /usr/bin/time -f "%M" -o "sim-$i.rss" "$sim" --devices "$n" --broker "$broker" --fleet sim --trust root.json \
    --image v1.bin --prefix "$(printf 'p%03d-' "$i")" --until-final "$campaign" --stats "stats-$i.json" 2> "sim-$i.log" &
  sim_pids+=($!)
  pids+=($!)
done
# Wait for the fleet's retained idle states (one per device).
python3 - "$port" "$devices" <<'PY'
import socket, subprocess, sys, time
port, n = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 600
while time.time() < deadline:
    r = subprocess.run(["mosquitto_sub", "-p", port, "-t", "ota/sim/devices/+/state", "-W", "3", "-v"],
                       capture_output=True, text=True)
    count = len([l for l in r.stdout.splitlines() if l.strip()])
    print(f"\r{count}/{n} devices reported", end="", file=sys.stderr, flush=True)
    if count >= n:
        print(file=sys.stderr)
        sys.exit(0)
    time.sleep(1)
sys.exit("the fleet did not come up")
PY
broker_peak_before=$(broker_peak)

log "publish and run the controller"
t0=$(date +%s.%N)
"$ota" publish v2.otb --broker "$broker" --fleet sim --campaign "$campaign" --waves 1,10,50,100 \
  --min-sample 50 --store www --url "file://$work/www" --trust root.json --key release.key --dir campaigns \
  --device-timeout 10m -q
/usr/bin/time -f "%M" -o controller.rss "$ota" campaign run "$campaign" --broker "$broker" --dir campaigns --json \
  > controller.json 2> controller.log & ctl_pid=$!
pids+=("$ctl_pid")
broker_peak_killed=0
if [ "$kill_broker" = 1 ]; then
  # kill -9 once the second wave is open, start it again 2 s later.
  while ! grep -q '"open-wave"' campaigns/$campaign/journal.jsonl 2>/dev/null; do sleep 0.2; done
  broker_peak_killed=$(broker_peak)
  log "kill -9 mosquitto (pid $broker_pid) after the first wave opened"
  kill -9 "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
  sleep 2
  start_broker
fi
set +e
wait "$ctl_pid"; ctl_rc=$?
t1=$(date +%s.%N)
sim_rc=0
for p in "${sim_pids[@]}"; do wait "$p" || sim_rc=$?; done
set -e
broker_peak_after=$(broker_peak)

python3 - "$devices" "$t0" "$t1" "$ctl_rc" "$sim_rc" "$kill_broker" "$broker_peak_before" "$broker_peak_after" \
  "$broker_peak_killed" "$campaign" "${out:-}" "${json:-}" <<'PY'
import json, sys
(n, t0, t1, ctl_rc, sim_rc, killed, b0, b1, bk, campaign, out, js) = sys.argv[1:13]
n = int(n); dur = float(t1) - float(t0)
import glob
stats = [d for f in sorted(glob.glob("stats-*.json")) for d in json.load(open(f))]
journal = [json.loads(l) for l in open(f"campaigns/{campaign}/journal.jsonl")]
finals = {}
for r in journal:
    if r["type"] == "result" and r["report"]["phase"] == "succeeded":
        finals[r["report"]["device"]] = finals.get(r["report"]["device"], 0) + 1
decisions = [r["action"] for r in journal if r["type"] == "decision"]
reports = sum(d["reports"] for d in stats)
succeeded = sum(1 for d in stats if d["final"] == "succeeded")
lost = n - len(finals)
duplicated = sum(c - 1 for c in finals.values() if c > 1)
unsent = sum(d["unsent"] for d in stats)
status = json.load(open("controller.json"))["status"]
res = {
    "devices": n, "broker_killed": killed == "1", "controller_exit": int(ctl_rc), "sim_exit": int(sim_rc),
    "publish_to_completion_s": round(dur, 1), "decisions": decisions,
    "device_reports": reports, "reports_per_s": round(reports / dur, 1),
    "devices_succeeded": succeeded, "results_journaled": len(finals), "lost_results": lost,
    "duplicated_results": duplicated, "reports_left_in_outboxes": unsent,
    "controller_peak_rss_mib": round(int(open("controller.rss").read().split()[-1]) / 1024, 1),
    "broker_peak_rss_mib": round(max(int(b0), int(b1), int(bk)) / 1024, 1),
    "fleet_sim_processes": len(glob.glob("sim-*.rss")),
    "fleet_sim_peak_rss_mib_per_process": round(max(int(open(f).read().split()[-1]) for f in glob.glob("sim-*.rss")) / 1024, 1),
    "state": status["state"],
}
lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in res.items()]
text = "\n".join(lines)
print(text)
if out: open(out, "w").write(text + "\n")
if js: json.dump(res, open(js, "w"), indent=2)
ok = res["controller_exit"] == 0 and lost == 0 and duplicated == 0 and succeeded == n
sys.exit(0 if ok else 1)
PY
