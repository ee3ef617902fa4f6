#!/usr/bin/env bash
# Rewrites the golden fixtures in tests/data/golden from tests/golden/golden.cpp
# (deterministic: the same bytes on every run and machine). Run it only when a
# format change is intended, commit the files with B2SUMS, and say what changed
# in docs/formats.md; ctest -R Golden checks the committed files against the
# generator.
#   scripts/make-golden.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
  cmake -S . -B "$build" -G Ninja >/dev/null
fi
cmake --build "$build" --target ota_make_golden
"$build/tests/ota_make_golden" tests/data/golden
(cd tests/data/golden && b2sum -l 256 -c --quiet B2SUMS)
echo "tests/data/golden rewritten; review with: git diff --stat tests/data/golden"
