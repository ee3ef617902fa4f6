#!/usr/bin/env bash
# Installs the Debian packages that ota needs to build, test, fuzz and benchmark.
# Installs only what is missing; safe to run again. Usage: scripts/install-deps.sh
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # libraries (docs/design.md, "Dependencies")
  libdivsufsort-dev libzstd-dev liblzma-dev zlib1g-dev libsodium-dev libbz2-dev libcli11-dev nlohmann-json3-dev libexpected-dev libarchive-dev
  libubootenv-dev libcurl4-openssl-dev libp11-kit-dev
  # tests, fuzzing and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev python3 python3-jsonschema
  # peers used by the interop tests, the demo and the benchmarks
  bsdiff xdelta3 zstd time unzip ca-certificates mender-artifact tar openssl xxd
  # boot environments: mkenvimage, fw_printenv/fw_setenv, grub-editenv (tests/integration/bootctl_env_test.cpp)
  u-boot-tools libubootenv-tool grub-common
  # the HTTP server of the agent's download tests and benchmark
  nginx-light
  # MQTT for campaigns: libmosquitto, and the broker and clients of the tests and examples/mosquitto
  mosquitto mosquitto-clients libmosquitto-dev
  # the campaign controller's metrics server, and the Prometheus that its integration test scrapes it with
  libmicrohttpd-dev prometheus
  # a PKCS#11 token for the HSM signing tests (SoftHSM2), and OpenSC's pkcs11-tool that makes keys in it
  softhsm2 opensc
  # a clustered MQTT broker (mod_mqtt) for campaigns on a cluster: scripts/ejabberd-cluster.sh runs its own nodes
  ejabberd
  # the headless browser that renders `ota campaign serve` and `ota campaign report --html` in the tests
  chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
