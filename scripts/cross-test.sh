#!/usr/bin/env bash
# Cross-builds the device side of ota (ota-agent, ota-patch and the device-side
# test programs) for ARM with Debian's cross toolchains, and runs the device-side
# tests under qemu-user. No binfmt_misc is needed: every target program runs as
# `qemu-<arch> -L /usr/<triplet> PROGRAM` through CMAKE_CROSSCOMPILING_EMULATOR
# (cmake/toolchains/), which ctest and gtest_discover_tests honour.
#
#   scripts/cross-test.sh [arm64|armhf|all] [--quick]
#
#   arm64   aarch64-linux-gnu into build-arm64 (Debian arm64)
#   armhf   arm-linux-gnueabihf into build-armhf (Debian armhf: 32-bit ARMv7, hard float)
#   all     both, one after the other (the default)
#
# Full mode builds ota-agent, ota-patch and the six device-side suites
# (ota_core_tests, ota_delta_tests, ota_sign_tests, ota_storage_tests,
# ota_boot_tests, ota_agent_tests) and runs every test of them, with the
# power-cut enumerations (agent_test, daemon_test, spool_test, storage_sim_test)
# cutting at every write (OTA_POWERCUT_STRIDE unset).
#
# --quick is the bounded subset that CI runs (scripts/test.sh, `arm64 --quick`;
# --quick without an architecture means arm64): it builds ota-agent, ota-patch
# and one suite, ota_agent_tests (the install steps, block reuse, the spool, the
# life cycle and the daemon on simulated storage, with the agent, daemon and
# spool power-cut enumerations), and runs all of that suite's tests with
# OTA_POWERCUT_STRIDE=8 (every 8th write plus the first and last three, per loss
# mode; tests/support/power_cuts.hpp). The other suites cost more compile time
# than CI's budget leaves (the stage is ~4 minutes on 2 cores with the install:
# docs/benchmarks.md, "On ARM").
#
# Installs what is missing first (dpkg --add-architecture, the cross toolchain,
# the :<arch> -dev packages of the dependencies and qemu-user; sudo when not
# root). Prints one summary line per architecture and exits non-zero if any
# build or test failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

arches=()
quick=0
for a in "$@"; do
  case "$a" in
    arm64 | armhf) arches+=("$a") ;;
    all) arches+=(arm64 armhf) ;;
    --quick) quick=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "cross-test: unknown argument '$a' (arm64|armhf|all, --quick)" >&2; exit 2 ;;
  esac
done
if ((${#arches[@]} == 0)); then
  if [ "$quick" = 1 ]; then arches=(arm64); else arches=(arm64 armhf); fi
fi

triplet_of() { case "$1" in arm64) echo aarch64-linux-gnu ;; armhf) echo arm-linux-gnueabihf ;; esac; }
qemu_of() { case "$1" in arm64) echo qemu-aarch64 ;; armhf) echo qemu-arm ;; esac; }

# The device side's dependencies (cmake/OtaDependencies.cmake and the top
# CMakeLists.txt: configuring needs them all, libmicrohttpd and p11-kit for the
# modules that libota's `ota` target builds), as :<arch> packages. CLI11,
# nlohmann/json and tl::expected are header-only (Architecture: all).
arch_dev_packages=(libdivsufsort-dev libzstd-dev liblzma-dev zlib1g-dev libsodium-dev libbz2-dev libarchive-dev
  libubootenv-dev libcurl4-openssl-dev libmosquitto-dev libmicrohttpd-dev libp11-kit-dev libgtest-dev)
# The build machine's: the build tools, the header-only libraries, and the peers
# the device-side suites run (tar and zstd in bundle_test.cpp; b2sum is coreutils), python3
# (reads ctest's test list) and file (prints what was built).
native_packages=(cmake ninja-build pkg-config python3 file libcli11-dev nlohmann-json3-dev libexpected-dev tar zstd)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_missing() {
  local missing=() add_arch=() p a
  for p in "${native_packages[@]}"; do installed "$p" || missing+=("$p"); done
  command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user)
  for a in "${arches[@]}"; do
    dpkg --print-foreign-architectures | grep -qx "$a" || add_arch+=("$a")
    installed "crossbuild-essential-$a" || missing+=("crossbuild-essential-$a")
    for p in "${arch_dev_packages[@]}"; do installed "$p:$a" || missing+=("$p:$a"); done
  done
  if ((${#missing[@]} == 0)) && ((${#add_arch[@]} == 0)); then return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  for a in "${add_arch[@]}"; do $sudo dpkg --add-architecture "$a"; done
  echo "cross-test: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  # The :<arch> libraries must be the same versions as the build machine's
  # (Multi-Arch: same): apt upgrades the native ones where they are older.
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

suites_full=(ota_core_tests ota_delta_tests ota_sign_tests ota_storage_tests ota_boot_tests ota_agent_tests)
suites_quick=(ota_agent_tests)

summaries=()
failed=0

run_arch() {
  local arch=$1 triplet qemu build suites t0 t1 t2 rc=0
  triplet=$(triplet_of "$arch")
  qemu=$(qemu_of "$arch")
  build="$root/build-$arch"
  if [ "$quick" = 1 ]; then suites=("${suites_quick[@]}"); else suites=("${suites_full[@]}"); fi
  echo "== cross build for $arch ($triplet) into $build"
  t0=$(date +%s)
  # Release flags as scripts/test.sh's release stage: -O2 without debug info,
  # the test code at -O1 -g0. No benchmarks and no examples: nothing a device runs.
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/$triplet.cmake" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" -DOTA_TEST_FLAGS="-O1;-g0" \
    -DOTA_BUILD_BENCH=OFF -DOTA_BUILD_EXAMPLES=OFF >/dev/null || return 1
  cmake --build "$build" -j"$(nproc)" --target ota_agent ota_patch "${suites[@]}" || return 1
  t1=$(date +%s)
  if command -v file >/dev/null; then
    file -b "$build/device-agent/ota-agent" "$build/tools/ota-patch" | sed 's/, BuildID[^,]*//; s/^/  /'
  fi

  # The device-side tests: those whose command runs one of the suites built
  # here. Everything else that ctest knows (the CLI's and the campaign's suites,
  # not built here, and the scripts run by the build machine) is excluded by name.
  local names
  names=$(ctest --test-dir "$build" --show-only=json-v1 | python3 -c '
import json, re, sys
suites = set(sys.argv[1:])
tests = json.load(sys.stdin)["tests"]
def ours(t):
    return any(c.rsplit("/", 1)[-1] in suites for c in t.get("command", []))
print(sum(1 for t in tests if ours(t)))
print("|".join("^" + re.escape(t["name"]) + "$" for t in tests if not ours(t)) or "^$")
' "${suites[@]}") || return 1
  local count exclude
  count=$(sed -n 1p <<<"$names")
  exclude=$(sed -n 2p <<<"$names")
  if [ "$count" = 0 ]; then echo "cross-test: no device-side test found in $build" >&2; return 1; fi

  echo "== $count device-side tests of ${suites[*]} under $qemu$([ "$quick" = 1 ] && echo ', OTA_POWERCUT_STRIDE=8')"
  local log="$build/cross-test.log"
  if [ "$quick" = 1 ]; then
    OTA_POWERCUT_STRIDE=8 ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -E "$exclude" 2>&1 | tee "$log" || rc=1
  else
    # Every power-cut point whatever the caller's environment says.
    env -u OTA_POWERCUT_STRIDE ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -E "$exclude" 2>&1 |
      tee "$log" || rc=1
  fi
  t2=$(date +%s)
  local line passed total
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
  total=$(sed -nE 's/.* out of ([0-9]+).*/\1/p' <<<"$line")
  local nfailed
  nfailed=$(sed -nE 's/.* ([0-9]+) tests failed.*/\1/p' <<<"$line")
  if [ -z "$total" ]; then total=0; nfailed=$count; rc=1; fi
  passed=$((total - nfailed))
  summaries+=("cross-test $arch$([ "$quick" = 1 ] && echo ' --quick'): $passed passed, $nfailed failed of $count device-side tests under $qemu (build $((t1 - t0)) s, tests $((t2 - t1)) s)")
  return $rc
}

start=$(date +%s)
install_missing
for arch in "${arches[@]}"; do
  if ! run_arch "$arch"; then
    failed=1
    # A build failure leaves no summary of its own.
    [ "${#summaries[@]}" -gt 0 ] && [[ "${summaries[-1]}" == "cross-test $arch"* ]] ||
      summaries+=("cross-test $arch: FAILED before the tests ran (see above)")
  fi
done
echo "== cross-test summary ($(($(date +%s) - start)) s in all)"
printf '%s\n' "${summaries[@]}"
exit $failed
