#!/usr/bin/env bash
# The whole pipeline on embedded defaults, in one command: installs what is
# missing, builds, then
#   firmware v1 and v2 images (generated, about 2 MiB)
#   -> three release keys and a 2-of-3 trust root
#   -> a bundle with the full image and a delta from v1, signed by two key holders in turn
#   -> a local mosquitto and a local nginx on free loopback ports
#   -> ota publish: a three-wave campaign (10 %, 50 %, 100 %)
#   -> N real ota-agent processes on file banks with the bootloader simulator,
#      a few of them with a failing health check
#   -> ota campaign run: the controller applies the gates
# and ends with a summary table per wave (targeted, updated, rolled back,
# failed, pending; bytes sent versus full images) and the same summary as JSON.
# Everything it starts, it stops.
#
# Usage: scripts/demo.sh [--devices N] [--failing K] [--summary FILE] [--work DIR] [--no-build] [--build-dir DIR]
#   defaults: 50 devices, 3 failing, build/demo/summary.json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
devices=50
failing=3
work=$root/build/demo
summary=
build=1
build_dir=$root/build
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices=$2; shift 2 ;;
    --failing) failing=$2; shift 2 ;;
    --summary) summary=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --build-dir) build_dir=$2; shift 2 ;;
    *) echo "usage: scripts/demo.sh [--devices N] [--failing K] [--summary FILE] [--work DIR] [--no-build] [--build-dir DIR]" >&2; exit 2 ;;
  esac
done
summary=${summary:-$work/summary.json}
if [ "$build" = 1 ]; then
  "$root/scripts/install-deps.sh"
  "$root/scripts/build.sh" "$build_dir" >/dev/null
fi
ota="$build_dir/tools/ota"
agent="$build_dir/device-agent/ota-agent"
tty=0; [ -t 1 ] && tty=1
say() { echo "== $*"; }

rm -rf "$work" && mkdir -p "$work" && cd "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -f nginx/nginx.pid ] && kill "$(cat nginx/nginx.pid)" 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "firmware images v1.0.0 and v2.0.0 (generated)"
python3 - <<'PY'
import random
r = random.Random(2026)
# Code-like blocks, tables, text and padding, as in a real image.
parts = []
for i in range(220):
    kind = r.randrange(4)
    n = r.randrange(2048, 16384)
    if kind == 0: parts.append(bytes(r.randrange(256) for _ in range(n // 8)) * 8)
    elif kind == 1: parts.append(b"".join(r.randrange(1 << 24).to_bytes(4, "little") for _ in range(n // 4)))
    elif kind == 2: parts.append((b"ota demo firmware string table %d\n" % i) * (n // 40))
    else: parts.append(b"\0" * (n // 4))
v1 = bytearray(b"".join(parts))
v2 = bytearray(v1)
for _ in range(300):                       # scattered patches
    at = r.randrange(len(v2) - 64)
    v2[at:at + 16] = bytes(r.randrange(256) for _ in range(16))
insert = r.randrange(len(v2))               # a new module
v2[insert:insert] = bytes(r.randrange(256) for _ in range(40000))
open("firmware-1.0.0.bin", "wb").write(bytes(v1))
open("firmware-2.0.0.bin", "wb").write(bytes(v2))
PY

say "release keys and a 2-of-3 trust root"
for k in release-1 release-2 release-3 operator; do "$ota" keygen -o "$k" -q >/dev/null; done
"$ota" root init --key release-1.pub --key release-2.pub --key release-3.pub --threshold 2 --expires 2099-01-01 -o root.json -q
"$ota" root sign root.json --key release-1.key --key release-2.key -q

say "bundle 2.0.0 (full image + delta from 1.0.0), signed by release-1, then release-2"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1780000000} "$ota" build --image firmware-2.0.0.bin --version 2.0.0 --hw demo-board \
  --base firmware-1.0.0.bin --key release-1.key -o firmware-2.0.0.otb -q
"$ota" sign firmware-2.0.0.otb --key release-2.key -q
"$ota" verify firmware-2.0.0.otb --trust root.json --hw demo-board -q

say "a local mosquitto and a local nginx on loopback"
mqtt_port=$(free_port)
mkdir -p broker www nginx/tmp
cat > broker/mosquitto.conf <<CONF
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $work/broker/mosquitto.log
CONF
mosquitto -c broker/mosquitto.conf 2>broker/stderr.log & pids+=($!)
http_port=$(free_port)
cat > nginx/nginx.conf <<CONF
worker_processes 1;
$( [ "$(id -u)" -eq 0 ] && echo "user root root;" )
error_log $work/nginx/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 256; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/tmp/b; proxy_temp_path $work/nginx/tmp/p; fastcgi_temp_path $work/nginx/tmp/f;
  uwsgi_temp_path $work/nginx/tmp/u; scgi_temp_path $work/nginx/tmp/s;
  server { listen 127.0.0.1:$http_port; root $work/www; }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log"
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$mqtt_port) 2>/dev/null && break; sleep 0.1; done
broker=mqtt://127.0.0.1:$mqtt_port

say "$devices devices (ota-agent run), $failing of them with a failing health check"
campaign=demo-2.0.0
# The failing devices are the first ones in the last wave, so the gates of
# waves 1 and 2 see healthy devices (wave of a device: docs/protocol.md).
failing_ids=$(python3 - "$campaign" "$devices" "$failing" <<'PY'
import hashlib, sys
campaign, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def wave(device, waves=(1000, 5000, 10000)):
    h = hashlib.blake2b(b"ota-wave-v1\0" + campaign.encode() + b"\0" + device.encode(), digest_size=32).digest()
    b = (int.from_bytes(h[:8], "big") * 10000) >> 64
    return next(i for i, w in enumerate(waves) if w > b)
ids = ["meter-%03d" % i for i in range(1, n + 1)]
print(" ".join([d for d in ids if wave(d) == 2][:k]))
PY
)
image_size=$(stat -c %s firmware-1.0.0.bin)
for i in $(seq 1 "$devices"); do
  id=$(printf 'meter-%03d' "$i")
  d="devices/$id"; mkdir -p "$d"
  truncate -s 4M "$d/bank-a" "$d/bank-b"
  dd if=firmware-1.0.0.bin of="$d/bank-a" conv=notrunc status=none
  health=true; case " $failing_ids " in *" $id "*) health=false ;; esac
  # Each device signs its reports with its own key, registered in the fleet registry.
  "$ota" device provision "$id" --fleet demo --registry registry.json -o "$d/device" -q
  cat > "$d/agent.json" <<CONF
{"device_id": "$id", "hardware_id": "demo-board",
 "banks": {"a": "$work/$d/bank-a", "b": "$work/$d/bank-b"},
 "boot": {"backend": "file", "file": "$work/$d/bootenv.json"},
 "trust_root": "$work/root.json", "state_dir": "$work/$d/state",
 "health_check": {"command": ["$health"], "timeout_s": 30},
 "mqtt": {"broker": "$broker", "fleet": "demo", "retry_delay_s": 2, "device_key": "$work/$d/device.key"}}
CONF
  "$agent" -c "$d/agent.json" run 2>"$d/log" & pids+=($!)
done

say "ota publish: campaign $campaign, waves 10,50,100, gates: 3 finished per wave, pause above 30 % failures"
"$ota" publish firmware-2.0.0.otb --broker "$broker" --fleet demo --campaign "$campaign" --waves 10,50,100 \
  --store www --url "http://127.0.0.1:$http_port" --trust root.json --key release-1.key --key release-2.key \
  --registry registry.json --operator operator.pub \
  --min-sample 3 --failure-threshold 0.3 --device-timeout 5m --json > publish.json
"$ota" campaign run "$campaign" --broker "$broker" --json > controller.json 2>controller.log & controller=$!
pids+=($controller)

say "ota campaign run: the controller applies the gates"
start=$(date +%s)
while kill -0 "$controller" 2>/dev/null; do
  if [ $(( $(date +%s) - start )) -gt 600 ]; then echo "demo: the campaign did not finish in 10 minutes" >&2; exit 1; fi
  if [ "$tty" = 1 ]; then
    "$ota" campaign status "$campaign" --fleet demo --broker "$broker" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin); s = d.get("controller_status") or {}
w = " | ".join("%g%%: %d ok %d failed %d pending" % (x["percent"], x["succeeded"], x["rolled_back"] + x["failed"], x["pending"]) for x in s.get("waves", []))
print("\r\033[K%s, wave %d: %s" % (d["control"]["state"], d["control"]["wave"] + 1, w), end="", flush=True)' || true
  fi
  sleep 1
done
[ "$tty" = 1 ] && echo
set +e; wait "$controller"; rc=$?; set -e
# Give the last devices a moment to report their final state.
"$ota" campaign status "$campaign" --fleet demo --broker "$broker" --devices --json > status.json

python3 - "$summary" "$rc" "$image_size" "$failing_ids" <<'PY'
import json, os, sys
out, rc, image_size, failing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), set(sys.argv[4].split())
st = json.load(open("status.json"))
pub = json.load(open("publish.json"))
ctl = st["controller_status"] or {"waves": []}
waves = []
devices = st.get("devices", [])
for i, w in enumerate(ctl["waves"]):
    members = [d for d in devices if d["wave"] == i]
    waves.append({
        "wave": i + 1, "percent": w["percent"], "targeted": w["targeted"], "updated": w["succeeded"],
        "rolled_back": w["rolled_back"], "failed": w["failed"], "pending": w["pending"],
        "bytes_sent": w["bytes_fetched"], "bytes_full_images": w["targeted"] * image_size,
    })
healthy_updated = all(d["phase"] == "succeeded" for d in devices if d["device"] not in failing)
unhealthy_rolled_back = all(d["phase"] == "rolled-back" for d in devices if d["device"] in failing)
total = {k: sum(w[k] for w in waves) for k in ("targeted", "updated", "rolled_back", "failed", "pending", "bytes_sent", "bytes_full_images")}
doc = {"campaign": pub["campaign"], "version": pub["version"], "controller_exit": rc,
       "state": st["control"]["state"], "devices": len(devices), "failing_devices": sorted(failing),
       "healthy_updated": healthy_updated, "unhealthy_rolled_back": unhealthy_rolled_back,
       "waves": waves, "total": total}
json.dump(doc, open(out, "w"), indent=2)
print("\n%-6s %8s %9s %8s %12s %7s %8s %12s %12s" % ("wave", "percent", "targeted", "updated", "rolled back", "failed", "pending", "bytes sent", "full images"))
for w in waves + [dict(total, wave="total", percent="")]:
    print("%-6s %8s %9d %8d %12d %7d %8d %12d %12d" % (w["wave"], ("%g%%" % w["percent"]) if w["percent"] != "" else "",
          w["targeted"], w["updated"], w["rolled_back"], w["failed"], w["pending"], w["bytes_sent"], w["bytes_full_images"]))
ratio = total["bytes_sent"] / total["bytes_full_images"] if total["bytes_full_images"] else 0
print("\ncampaign %s: %s (controller exit %d); bytes sent = %.1f%% of full images" % (doc["campaign"], doc["state"], rc, 100 * ratio))
print("healthy devices updated: %s; failing devices rolled back: %s" % (healthy_updated, unhealthy_rolled_back))
print("summary: %s" % out)
PY
