#!/usr/bin/env bash
# The main job end to end on embedded defaults: install what is missing, build,
# fetch a real firmware pair (Pybricks, from the npm registry), make a delta with
# `ota diff`, apply it with `ota patch`, check the result byte for byte, print
# the sizes and the ratio; then the signed release: three keys and a 2-of-3
# trust root, `ota build` of a bundle (full image + delta), signed by two key
# holders in turn, `ota verify`, and a tampered copy rejected; then a device:
# ota-agent installs the bundle over HTTP from a local nginx into file banks,
# reboots through the bootloader simulator and commits after its health check.
# Usage: scripts/demo.sh [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$root/build/demo}

"$root/scripts/install-deps.sh"
command -v npm >/dev/null || { echo "demo: npm is needed to fetch the firmware (apt-get install -y npm)"; exit 1; }
"$root/scripts/build.sh" "$root/build" >/dev/null
ota="$root/build/tools/ota"

mkdir -p "$work"
cd "$work"
fetch() {  # fetch PACKAGE VERSION BOARD -> firmware-VERSION.bin
  local tgz
  if [ ! -f "firmware-$2.bin" ]; then
    tgz=$(npm pack --silent "$1@$2" | tail -n 1)
    rm -rf "x-$2" && mkdir "x-$2" && tar xzf "$tgz" -C "x-$2"
    unzip -p "x-$2/package/build/$3.zip" firmware-base.bin > "firmware-$2.bin"
    rm -rf "x-$2" "$tgz"
  fi
}
echo "== fetching @pybricks/firmware 7.22.0 and 7.27.0 (primehub) from the npm registry"
fetch @pybricks/firmware 7.22.0 primehub
fetch @pybricks/firmware 7.27.0 primehub

echo "== ota diff firmware-7.22.0.bin firmware-7.27.0.bin -o update.otd"
"$ota" diff firmware-7.22.0.bin firmware-7.27.0.bin -o update.otd
echo "== ota patch firmware-7.22.0.bin update.otd -o firmware-7.27.0.patched"
"$ota" patch firmware-7.22.0.bin update.otd -o firmware-7.27.0.patched
cmp firmware-7.27.0.bin firmware-7.27.0.patched
echo "== result: byte-identical"

old=$(stat -c %s firmware-7.22.0.bin); new=$(stat -c %s firmware-7.27.0.bin); patch=$(stat -c %s update.otd)
full=$(zstd -19 -c firmware-7.27.0.bin | wc -c)
bsd=$(bsdiff firmware-7.22.0.bin firmware-7.27.0.bin update.bsdiff && stat -c %s update.bsdiff)
printf '\n%-34s %12s\n' "" "bytes"
printf '%-34s %12d\n' "old firmware (7.22.0)" "$old" "new firmware (7.27.0)" "$new" \
  "new firmware, zstd -19" "$full" "bsdiff 4.3 patch" "$bsd" "ota delta patch" "$patch"
awk -v p="$patch" -v n="$new" -v f="$full" -v b="$bsd" 'BEGIN {
  printf "\nota patch = %.1f%% of the new image, %.1f%% of its zstd -19, %.2f x bsdiff\n", 100*p/n, 100*p/f, p/b }'

echo
echo "== signed release: keys, a 2-of-3 trust root, a bundle, two signatures, verify"
rm -f release-*.key release-*.pub root.json firmware-7.27.0.otb tampered.otb
for k in release-1 release-2 release-3; do printf '%s key id: ' "$k"; "$ota" keygen -o "$k"; done
"$ota" root init --key release-1.pub --key release-2.pub --key release-3.pub --threshold 2 \
  --expires 2030-01-01 -o root.json -q
"$ota" root sign root.json --key release-1.key --key release-2.key
echo "== ota build --image firmware-7.27.0.bin --base firmware-7.22.0.bin --key release-1.key -o firmware-7.27.0.otb"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600} "$ota" build --image firmware-7.27.0.bin --version 7.27.0 \
  --hw primehub --base firmware-7.22.0.bin --security-version 1 --key release-1.key -o firmware-7.27.0.otb -q
"$ota" inspect firmware-7.27.0.otb
echo "== verify with one signature (threshold is 2): rejected"
set +e; "$ota" verify firmware-7.27.0.otb --trust root.json --hw primehub; rc=$?; set -e
echo "exit code $rc (22: too few signatures)"
"$ota" sign firmware-7.27.0.otb --key release-3.key -q
echo "== after a second key holder signed:"
"$ota" verify firmware-7.27.0.otb --trust root.json --hw primehub
cp firmware-7.27.0.otb tampered.otb
printf 'X' | dd of=tampered.otb bs=1 seek=$(( $(stat -c %s tampered.otb) - 2000 )) conv=notrunc status=none
set +e; "$ota" verify tampered.otb --trust root.json; rc=$?; set -e
echo "tampered copy: exit code $rc (26: payload does not match the signed manifest)"

echo
echo "== a device: ota-agent installs the bundle over HTTP (a local nginx) into file banks"
agent="$root/build/device-agent/ota-agent"
rm -rf device && mkdir -p device/www device/nginx/tmp
cp firmware-7.27.0.otb device/www/
truncate -s 4M device/bank-a device/bank-b           # bank a runs 7.22.0; bank b is inactive
dd if=firmware-7.22.0.bin of=device/bank-a conv=notrunc status=none
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ng="$work/device/nginx"
cat > "$ng/nginx.conf" <<CONF
worker_processes 1;
$( [ "$(id -u)" -eq 0 ] && echo "user root root;" )
error_log $ng/error.log warn;
pid $ng/nginx.pid;
events { worker_connections 16; }
http {
  access_log $ng/access.log;
  client_body_temp_path $ng/tmp/b; proxy_temp_path $ng/tmp/p; fastcgi_temp_path $ng/tmp/f;
  uwsgi_temp_path $ng/tmp/u; scgi_temp_path $ng/tmp/s;
  server { listen 127.0.0.1:$port; root $work/device/www; }
}
CONF
nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/error.log"
trap 'kill "$(cat "$ng/nginx.pid")" 2>/dev/null || true' EXIT
cat > device/agent.json <<CONF
{"device_id": "hub-1", "hardware_id": "primehub",
 "banks": {"a": "$work/device/bank-a", "b": "$work/device/bank-b"},
 "boot": {"backend": "file", "file": "$work/device/bootenv.json"},
 "trust_root": "$work/root.json", "state_dir": "$work/device/state",
 "health_check": {"command": ["true"], "timeout_s": 30}}
CONF
echo "== ota-agent install http://127.0.0.1:$port/firmware-7.27.0.otb"
"$agent" -c device/agent.json install "http://127.0.0.1:$port/firmware-7.27.0.otb"
echo "== reboot (the bootloader simulator), then boot-check: health check, commit"
"$agent" -c device/agent.json simulate-boot
"$agent" -c device/agent.json boot-check
"$agent" -c device/agent.json status
cmp -n "$(stat -c %s firmware-7.27.0.bin)" device/bank-b firmware-7.27.0.bin && echo "bank b holds 7.27.0, byte for byte"
