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
# --cluster runs the same campaign twice, on mosquitto and then on a two-node
# ejabberd cluster (scripts/ejabberd-cluster.sh; Debian's ejabberd, mod_mqtt),
# and prints both side by side. On the cluster, device i starts on node
# i mod 2 and fails over to the other; the controller and the tools use node 1;
# with --kill-broker, node 2 is killed (-9) once the second wave opened and
# stays down: its devices move to node 1.
#
#   bench/fleet_bench.sh [--devices N] [--kill-broker] [--cluster] [--ota PATH] [--sim PATH] [--out FILE] [--json FILE]
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
cluster=0
ota=$ROOT/build/tools/ota
sim=$ROOT/build/bench/ota-fleet-sim
out=
json=
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices=$2; shift 2 ;;
    --kill-broker) kill_broker=1; shift ;;
    --cluster) cluster=1; shift ;;
    --ota) ota=$2; shift 2 ;;
    --sim) sim=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
ensure_commands mosquitto=mosquitto mosquitto_sub=mosquitto-clients python3=python3 /usr/bin/time=time
[ "$cluster" = 0 ] || ensure_commands erl=ejabberd ejabberdctl=ejabberd
[ -x "$ota" ] && [ -x "$sim" ] || die "build first: scripts/build.sh (needs $ota and $sim)"

# Threads and sockets for N devices in one process, and N connections in mosquitto.
sysctl -q -w kernel.pid_max=4194304 vm.max_map_count=1048576 >/dev/null 2>&1 || log "could not raise pid_max/max_map_count"
ulimit -n "$(ulimit -Hn)"
ulimit -s 256   # smaller default thread stacks

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -d "$work/ejabberd" ] && "$ROOT/scripts/ejabberd-cluster.sh" stop "$work/ejabberd" || true
  rm -rf "$work"
}
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
mkdir -p www
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- one run: a broker (mosquitto, or the ejabberd cluster), the fleet, the campaign ----
# run_campaign KIND RESULT_JSON
run_campaign() {
  local kind=$1 result=$2 campaign=fleet-2.0.0-$1
  local -a login=() sub_login=() sim_login=() state_ports=() broker_pids=()
  local broker ctl_broker kill_pid=
  rm -rf campaigns stats-*.json sim-*.rss sim-*.log controller.* "$work/broker" "$work/ejabberd"
  if [ "$kind" = mosquitto ]; then
    mkdir -p broker
    local port; port=$(free_port)
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
    start_mosquitto() { mosquitto -c broker/mosquitto.conf 2>>broker/stderr.log & mosquitto_pid=$!; pids+=("$mosquitto_pid"); }
    start_mosquitto
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    broker=mqtt://127.0.0.1:$port
    ctl_broker=$broker
    state_ports=("$port")
    broker_pids=("$mosquitto_pid")
    kill_pid=$mosquitto_pid
  else
    local p1 p2; p1=$(free_port); p2=$(free_port)
    log "starting a two-node ejabberd cluster on ports $p1 and $p2"
    "$ROOT/scripts/ejabberd-cluster.sh" start "$work/ejabberd" "$p1" "$p2" >&2
    broker=mqtt://127.0.0.1:$p1,mqtt://127.0.0.1:$p2
    ctl_broker=mqtt://127.0.0.1:$p1
    echo bench > broker-password
    login=(--username bench --password-file broker-password)
    sub_login=(-u bench -P bench)
    sim_login=(--username bench --password bench --failover-after 5)
    state_ports=("$p1" "$p2")
    broker_pids=("$(cat "$work/ejabberd/node1/pid")" "$(cat "$work/ejabberd/node2/pid")")
    kill_pid=${broker_pids[1]}
  fi
  # The brokers' peak memory (VmHWM, KiB), summed over the nodes, taken while they live.
  local peak_before=0 peak_killed=0 peak_after=0
  broker_peak() {
    local sum=0 p v
    for p in "${broker_pids[@]}"; do v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); sum=$((sum + ${v:-0})); done
    echo "$sum"
  }

  log "$kind: starting $devices devices"
  # libmosquitto's network loop uses select(): descriptors past 1023 cannot be
  # waited on, and each client holds three. So at most 300 devices per process.
  local per_proc=300 i n
  local -a sim_pids=()
  for ((i = 0; i * per_proc < devices; i++)); do
    n=$(( devices - i * per_proc < per_proc ? devices - i * per_proc : per_proc ))
    /usr/bin/time -f "%M" -o "sim-$i.rss" "$sim" --devices "$n" --broker "$broker" "${sim_login[@]}" --fleet sim \
      --trust root.json --image v1.bin --prefix "$(printf 'p%03d-' "$i")" --until-final "$campaign" \
      --stats "stats-$i.json" 2> "sim-$i.log" &
    sim_pids+=($!)
    pids+=($!)
  done
  # Wait for the fleet's retained idle states (one per device), on every node
  # (a cluster's nodes each hold the states of their own clients).
  python3 - "$devices" "${sub_login[*]}" "${state_ports[@]}" <<'PY'
import subprocess, sys, time
n, login, ports = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
deadline = time.time() + 600
while time.time() < deadline:
    topics = set()
    for port in ports:
        r = subprocess.run(["mosquitto_sub", "-p", port, *login, "-i", f"bench-count-{port}", "-t",
                            "ota/sim/devices/+/state", "-W", "3", "-v"], capture_output=True, text=True)
        topics |= {l.split(" ", 1)[0] for l in r.stdout.splitlines() if l.strip()}
    print(f"\r{len(topics)}/{n} devices reported", end="", file=sys.stderr, flush=True)
    if len(topics) >= n:
        print(file=sys.stderr)
        sys.exit(0)
    time.sleep(1)
sys.exit("the fleet did not come up")
PY
  peak_before=$(broker_peak)

  log "$kind: publish and run the controller"
  local t0 t1 ctl_pid ctl_rc sim_rc p
  t0=$(date +%s.%N)
  "$ota" publish v2.otb --broker "$ctl_broker" "${login[@]}" --fleet sim --campaign "$campaign" --waves 1,10,50,100 \
    --min-sample 50 --store www --url "file://$work/www" --trust root.json --key release.key --dir campaigns \
    --device-timeout 10m --unsigned -q
  /usr/bin/time -f "%M" -o controller.rss "$ota" campaign run "$campaign" --broker "$ctl_broker" "${login[@]}" \
    --dir campaigns --json > controller.json 2> controller.log & ctl_pid=$!
  pids+=("$ctl_pid")
  if [ "$kill_broker" = 1 ]; then
    while ! grep -q '"open-wave"' "campaigns/$campaign/journal.jsonl" 2>/dev/null; do sleep 0.2; done
    peak_killed=$(broker_peak)
    if [ "$kind" = mosquitto ]; then
      # kill -9 once the second wave is open, start it again 2 s later.
      log "kill -9 mosquitto (pid $kill_pid) after the first wave opened"
      kill -9 "$kill_pid"; wait "$kill_pid" 2>/dev/null || true
      sleep 2
      start_mosquitto
      broker_pids=("$mosquitto_pid")
    else
      log "kill -9 ejabberd node 2 (pid $kill_pid) after the first wave opened; it stays down"
      "$ROOT/scripts/ejabberd-cluster.sh" kill "$work/ejabberd" 2
      broker_pids=("${broker_pids[0]}")
    fi
  fi
  set +e
  wait "$ctl_pid"; ctl_rc=$?
  t1=$(date +%s.%N)
  peak_after=$(broker_peak)
  sim_rc=0
  for p in "${sim_pids[@]}"; do wait "$p" || sim_rc=$?; done
  set -e
  if [ "$kind" = ejabberd ]; then
    "$ROOT/scripts/ejabberd-cluster.sh" stop "$work/ejabberd"
  else
    kill "$mosquitto_pid" 2>/dev/null || true; wait "$mosquitto_pid" 2>/dev/null || true
  fi

  python3 - "$kind" "$devices" "$t0" "$t1" "$ctl_rc" "$sim_rc" "$kill_broker" "$peak_before" "$peak_after" \
    "$peak_killed" "$campaign" "$result" <<'PY'
import glob, json, sys
(kind, n, t0, t1, ctl_rc, sim_rc, killed, b0, b1, bk, campaign, result) = sys.argv[1:13]
n = int(n); dur = float(t1) - float(t0)
stats = [d for f in sorted(glob.glob("stats-*.json")) for d in json.load(open(f))]
journal = [json.loads(l) for l in open(f"campaigns/{campaign}/journal.jsonl")]
finals = {}
for r in journal:
    if r["type"] == "result" and r["report"]["phase"] == "succeeded":
        finals[r["report"]["device"]] = finals.get(r["report"]["device"], 0) + 1
decisions = [r["action"] for r in journal if r["type"] == "decision"]
reports = sum(d["reports"] for d in stats)
succeeded = sum(1 for d in stats if d["final"] == "succeeded")
try:
    status = json.load(open("controller.json"))["status"]
except (ValueError, KeyError):
    status = {"state": "?"}
res = {
    "broker": "mosquitto" if kind == "mosquitto" else "ejabberd, 2 nodes",
    "devices": n, "broker_killed": ("node 2 (-9, stays down)" if kind != "mosquitto" else "yes (-9, restarted)") if killed == "1" else "no",
    "controller_exit": int(ctl_rc), "sim_exit": int(sim_rc),
    "publish_to_completion_s": round(dur, 1), "decisions": decisions,
    "device_reports": reports, "reports_per_s": round(reports / dur, 1),
    "devices_succeeded": succeeded, "results_journaled": len(finals), "lost_results": n - len(finals),
    "duplicated_results": sum(c - 1 for c in finals.values() if c > 1),
    "reports_left_in_outboxes": sum(d["unsent"] for d in stats),
    "controller_peak_rss_mib": round(int(open("controller.rss").read().split()[-1]) / 1024, 1),
    "broker_peak_rss_mib": round(max(int(b0), int(b1), int(bk)) / 1024, 1),
    "fleet_sim_processes": len(glob.glob("sim-*.rss")),
    "fleet_sim_peak_rss_mib_per_process": round(max(int(open(f).read().split()[-1]) for f in glob.glob("sim-*.rss")) / 1024, 1),
    "state": status["state"],
}
json.dump(res, open(result, "w"), indent=2)
PY
}

kinds=(mosquitto)
[ "$cluster" = 1 ] && kinds+=(ejabberd)
for k in "${kinds[@]}"; do run_campaign "$k" "result-$k.json"; done

python3 - "${out:-}" "${json:-}" "${kinds[@]}" <<'PY'
import json, sys
out, js, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.load(open(f"result-{k}.json")) for k in kinds]
lines = ["| measure | " + " | ".join(r["broker"] for r in runs) + " |", "|---|" + "---|" * len(runs)]
for key in runs[0]:
    if key == "broker":
        continue
    lines.append(f"| {key} | " + " | ".join(str(r[key]) for r in runs) + " |")
text = "\n".join(lines)
print(text)
if out: open(out, "w").write(text + "\n")
if js: json.dump(runs[0] if len(runs) == 1 else runs, open(js, "w"), indent=2)
ok = all(r["controller_exit"] == 0 and r["lost_results"] == 0 and r["duplicated_results"] == 0
         and r["devices_succeeded"] == r["devices"] for r in runs)
sys.exit(0 if ok else 1)
PY
