#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test.
#   scripts/test.sh          release build + all tests, then the ASan/UBSan build + tests,
#                            then each fuzz target for a bounded time
#   scripts/test.sh --quick  release build + all tests only
# Exits non-zero on the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
[ "${1:-}" = "--quick" ] && quick=1
fuzz_seconds=${OTA_FUZZ_SECONDS:-40}
# The release tests enumerate every power-cut point whatever the caller's environment says
# (the ASan/UBSan run below sets its own stride).
unset OTA_POWERCUT_STRIDE

"$root/scripts/install-deps.sh"

echo "== release build and tests"
# -O2 without debug info (a third less compile time); the test code at -O1
# (the library, the tools and the agent it drives stay -O2).
"$root/scripts/build.sh" "$root/build" -DOTA_BUILD_BENCH=ON -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" -DOTA_TEST_FLAGS="-O1;-g0"
ctest --test-dir "$root/build" --output-on-failure -j"$(nproc)"

# The README's first command, reduced: the whole pipeline with 16 devices, 2 of
# them failing their health check; its JSON summary must be exact.
echo "== the one-command demo (16 devices, 2 failing)"
"$root/scripts/demo.sh" --no-build --devices 16 --failing 2 --work "$root/build/demo-ci" > "$root/build/demo-ci.log" 2>&1 ||
  { cat "$root/build/demo-ci.log"; exit 1; }
python3 - "$root/build/demo-ci/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["total"]
checks = {
    "campaign completed": s["state"] == "completed" and s["controller_exit"] == 0,
    "16 devices, 2 failing": s["devices"] == 16 and len(s["failing_devices"]) == 2,
    "every healthy device updated": s["healthy_updated"] and t["updated"] == 14,
    "every failing device rolled back": s["unhealthy_rolled_back"] and t["rolled_back"] == 2,
    "nothing failed otherwise or pending": t["failed"] == 0 and t["pending"] == 0 and t["targeted"] == 16,
    "deltas cost less than full images": 0 < t["bytes_sent"] < t["bytes_full_images"],
}
for name, ok in checks.items():
    print(("ok   " if ok else "FAIL ") + name)
sys.exit(0 if all(checks.values()) else 1)
PY

if [ "$quick" = 1 ]; then exit 0; fi
# (the full run ends with a one-line count of the release tests)

# The device side cross-built for arm64 and its tests under qemu-user, bounded
# for CI (~4 minutes on 2 cores with the install): ota-agent, ota-patch and
# ota_agent_tests with the power cuts at every 8th write. The subset is
# described in scripts/cross-test.sh; `scripts/cross-test.sh all` runs every
# device-side suite on arm64 and armhf.
echo "== arm64 cross build and device-side tests under qemu-user (bounded subset)"
"$root/scripts/cross-test.sh" arm64 --quick

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build: unit tests and the MQTT client tests"
# Only the suites this run executes (label unit, and ota_mqtt_tests of label mqtt). The campaign
# integration suites (ota_campaign_tests: mosquitto, nginx, the ota controller and fleets of
# ota-agent processes) run in the release stage only: under the sanitizers they took about a
# third of this stage (the ota and ota-agent builds and their timing-bound runs), and the code
# they drive is under the sanitizers here through its unit suites on fakes (DaemonTest,
# DaemonPowerCut, CampaignController, Agent, Lifecycle, the MQTT client against mosquitto).
# -O1 -g1 (line tables: enough for ASan's stack traces) compiles 2.4x faster than
# -O2 -g under the sanitizers (cmd_campaign.cpp: 27 s against 65 s on 2 cores);
# the test code at -O0 -g0, 2.5x faster again (trust_test.cpp: 13 s against 34 s).
cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTA_SANITIZE=ON -DOTA_BUILD_BENCH=OFF \
  -DOTA_BUILD_EXAMPLES=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DOTA_TEST_FLAGS="-O0;-g0" >/dev/null
cmake --build "$root/build-asan" -j"$(nproc)" --target ota_core_tests ota_delta_tests ota_sign_tests ota_storage_tests \
  ota_boot_tests ota_agent_tests ota_campaign_unit_tests ota_mqtt_tests
# The power-cut enumerations (agent_test, daemon_test, spool_test, storage_sim_test) cut at every
# 4th write plus the first and last three, per loss mode (OTA_POWERCUT_STRIDE, read by
# tests/support/power_cuts.hpp): the same code paths under the sanitizers at about half the
# CPU; the release run above cuts at every write (unset: 1).
OTA_POWERCUT_STRIDE=4 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j"$(nproc)" -L 'unit|mqtt'

# fuzz_patch gets the full budget; fuzz_embedded_elf, fuzz_elf_tables and the signing/bundle parsers (fuzz_bundle,
# fuzz_manifest, fuzz_signature_block, fuzz_trust, fuzz_keys, fuzz_agent_state, fuzz_campaign, fuzz_spool, fuzz_chunk_index,
# fuzz_campaign_view, fuzz_sbom) a shorter one each.
sign_fuzz_seconds=${OTA_FUZZ_SIGN_SECONDS:-$(( fuzz_seconds < 10 ? fuzz_seconds : 10 ))}
echo "== fuzzing (${fuzz_seconds}s for fuzz_patch, ${sign_fuzz_seconds}s per other target)"
# Only the fuzz targets (the CLI and the agent are built and tested above).
# -O1 with line tables, as libFuzzer's documentation builds its targets.
CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTA_FUZZ=ON \
  -DOTA_BUILD_TESTS=OFF -DOTA_BUILD_BENCH=OFF -DOTA_BUILD_EXAMPLES=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" >/dev/null
cmake --build "$root/build-fuzz" -j"$(nproc)" --target fuzz_patch fuzz_embedded_elf fuzz_elf_tables fuzz_bundle fuzz_manifest fuzz_signature_block \
  fuzz_trust fuzz_keys fuzz_agent_state fuzz_campaign fuzz_spool fuzz_chunk_index fuzz_campaign_view fuzz_sbom
# Every committed seed once under the sanitizers (the *_seeds tests).
ctest --test-dir "$root/build-fuzz" --output-on-failure -j"$(nproc)"
# One fuzzer per core at a time (fuzz_patch, the longest, first): each target
# keeps its whole budget on a core of its own, and the stage takes about
# (40 + 11 x 10) / nproc seconds instead of 150. Each target's last lines are
# printed in order once all have ended; any failure fails the run.
fuzz_logs=$(mktemp -d)
fuzz_targets=("$root/build-fuzz/fuzz/fuzz_patch")
for target in "$root"/build-fuzz/fuzz/fuzz_*; do
  [ -x "$target" ] && [ "$(basename "$target")" != fuzz_patch ] && fuzz_targets+=("$target")
done
for target in "${fuzz_targets[@]}"; do
  name=$(basename "$target")
  seconds=$sign_fuzz_seconds
  [ "$name" = fuzz_patch ] && seconds=$fuzz_seconds
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
  (
    corpus=$(mktemp -d)
    if [ -d "$root/fuzz/corpus/$name" ]; then cp -r "$root/fuzz/corpus/$name/." "$corpus/"; fi
    rc=0
    "$target" -max_total_time="$seconds" -print_final_stats=1 "$corpus" > "$fuzz_logs/$name.log" 2>&1 || rc=$?
    rm -rf "$corpus"
    echo "$rc" > "$fuzz_logs/$name.rc"
  ) &
done
wait
fuzz_failed=0
for target in "${fuzz_targets[@]}"; do
  name=$(basename "$target")
  seconds=$sign_fuzz_seconds
  [ "$name" = fuzz_patch ] && seconds=$fuzz_seconds
  echo "-- $name (${seconds}s)"
  rc=$(cat "$fuzz_logs/$name.rc" 2>/dev/null || echo missing)
  if [ "$rc" = 0 ]; then
    tail -n 12 "$fuzz_logs/$name.log"
  else
    tail -n 80 "$fuzz_logs/$name.log"
    echo "FAIL $name: exit $rc"
    fuzz_failed=1
  fi
done
rm -rf "$fuzz_logs"
[ "$fuzz_failed" = 0 ]

# Closing line: every test of the release run passed (set -e stopped us otherwise).
total=$(ctest --test-dir "$root/build" -N | sed -n 's/^Total Tests: //p')
echo "tests: ${total} passed, 0 failed"
