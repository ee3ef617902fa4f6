#!/usr/bin/env bash
# The ota diff/patch contract on two generated images. Usage: examples/delta-roundtrip.sh [OTA]
set -euo pipefail
ota=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/tools/ota}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

head -c 1000000 /dev/urandom > v1.bin
{ head -c 400000 v1.bin; printf 'new feature'; tail -c +400001 v1.bin; } > v2.bin

"$ota" diff v1.bin v2.bin -o v1-to-v2.otd                # exit 0, prints the size
"$ota" patch --json v1.bin v1-to-v2.otd -o v2.out        # one JSON line (schemas/patch-result.schema.json)
cmp v2.bin v2.out && echo "patched image is byte-identical"

set +e
"$ota" patch v2.bin v1-to-v2.otd -o wrong.out            # the wrong base
echo "exit code $? (12 = old_mismatch, docs/error-codes.md); wrong.out exists: $([ -e wrong.out ] && echo yes || echo no)"
