#!/usr/bin/env bash
# A release step for any CI system (GitHub Actions, GitLab CI, Jenkins): builds
# the bundle for a new image, signs it with the release key the CI holds in
# its secret store, verifies it, and publishes a staged campaign.
#
# Inputs (environment; the secrets come from the CI's secret store, never
# from the repository, and never appear on a command line or in the log):
#   OTA_RELEASE_KEY         the sealed secret key file's text (ota keygen --passphrase-env)
#   OTA_KEY_PASSPHRASE      its passphrase
#   OTA_MQTT_PASSWORD       the broker password of the `release` role (examples/mosquitto)
#   IMAGE, VERSION, HW      the new image, its SemVer, the hardware id
#   BASES                   space-separated previous images to build deltas from
#   ROOT                    the trust root (root.json, committed)
#   BROKER, FLEET, STORE, URL   where to publish (mqtts://..., fleet, bundle directory, its URL)
#   REGISTRY, OPERATOR_PUB  the fleet's device registry (ota device provision) and the operator
#                           public key that may pause, resume and abort (default registry.json,
#                           operator.pub, committed beside root.json)
# With a 2-of-3 root, the second signature comes from another person
# (examples/two-person-signing.sh): set OTA_SECOND_SIGNATURE to skip publishing
# until it is attached.
set -euo pipefail
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The key exists only in a 0600 file inside a temporary directory for the
# duration of the step.
printf '%s' "$OTA_RELEASE_KEY" > "$work/release.key"
printf '%s' "$OTA_MQTT_PASSWORD" > "$work/mqtt-password"

base_args=()
for b in ${BASES:-}; do base_args+=(--base "$b"); done
# SOURCE_DATE_EPOCH makes the bundle reproducible: two CI runs give the same bytes.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
ota build --image "$IMAGE" --version "$VERSION" --hw "$HW" "${base_args[@]}" \
  --key "$work/release.key" --passphrase-env OTA_KEY_PASSPHRASE -o "fw-$VERSION.otb" --json > build.json
if [ -n "${OTA_SECOND_SIGNATURE:-}" ]; then
  ota sign "fw-$VERSION.otb" --import-signature "$OTA_SECOND_SIGNATURE" --pub "$OTA_SECOND_PUB"
fi
# Exit 22 (too few signatures) stops the pipeline here until a second key holder signed.
ota verify "fw-$VERSION.otb" --trust "$ROOT" --hw "$HW" --json > verify.json
ota publish "fw-$VERSION.otb" --broker "$BROKER" --fleet "$FLEET" --campaign "fw-$VERSION" \
  --waves 1,10,50,100 --min-sample 20 --soak 2h --failure-threshold 0.02 \
  --store "$STORE" --url "$URL" --trust "$ROOT" \
  --registry "${REGISTRY:-registry.json}" --operator "${OPERATOR_PUB:-operator.pub}" \
  --key "$work/release.key" --passphrase-env OTA_KEY_PASSPHRASE \
  --username release --password-file "$work/mqtt-password" --ca "${BROKER_CA:-/etc/ssl/certs/ca-certificates.crt}" \
  --json > publish.json
echo "published $(jq -r .topic publish.json) revision $(jq -r .revision publish.json)"
