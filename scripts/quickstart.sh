#!/usr/bin/env bash
# Quick start: build Enclave, fetch the default models into ./data/models, and start the server on the
# embedded defaults (http://127.0.0.1:8080/, data in ./data). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}"
packaging/build-release.sh
scripts/fetch-models.sh "${ENCLAVE_DATA_DIR:-./data}"
exec "$CARGO_TARGET_DIR/release/enclave" serve "$@"
