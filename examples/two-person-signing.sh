#!/usr/bin/env bash
# Two-person signing with a 2-of-3 trust root: the build machine never holds a
# second key. Person A (or CI) builds and signs with one key; person B signs
# the exported bytes on an offline machine with any Ed25519 signer (ota's own
# key file through `ota sign`, or openssl with a key in PEM); A attaches B's
# signature, which ota checks before accepting.
set -euo pipefail
bundle=${1:?usage: two-person-signing.sh BUNDLE}

# 1. Build machine: the exact bytes to sign (the signing message, docs/formats.md).
ota sign "$bundle" --export-payload "$bundle.tbs"

# 2. Offline machine of person B (copy $bundle.tbs there, the signature back):
#    openssl pkeyutl -sign -rawin -inkey release-2.pem -in fw.otb.tbs -out fw.otb.sig
#    (or with an ota key file: ota sign fw.otb --key release-2.key, on a copy of the bundle)

# 3. Build machine: attach it; --pub makes ota check it first (exit 21 if it does not verify).
ota sign "$bundle" --import-signature "$bundle.sig" --pub release-2.pub
ota verify "$bundle" --trust root.json
