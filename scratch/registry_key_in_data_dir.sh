#!/usr/bin/env bash
# Repro: FRAUD_REGISTRY_KEY_DIR inside FRAUD_DATA_DIR is accepted by scripts/with-env, which then writes the
# registry signing key into the data directory (the PAN key refuses the same setting: LocalKeyError).
set -u
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
export FRAUD_DATA_DIR="$tmp/data" DAGSTER_HOME="$tmp/home" FRAUD_PAN_KEY_DIR="$tmp/pan_keys"
unset FRAUD_PAN_KEY FRAUD_REGISTRY_KEY
echo "--- PAN key dir inside the data dir:"
FRAUD_PAN_KEY_DIR="$tmp/data/keys" scripts/with-env true; echo "exit $?"
echo "--- registry key dir inside the data dir:"
FRAUD_REGISTRY_KEY_DIR="$tmp/data/keys" scripts/with-env true; echo "exit $?"
find "$tmp/data" -name '*.key' -printf '%p %m\n'
rm -rf "$tmp"
