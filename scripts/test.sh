#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests against the real binary, the default models
# fetched and verified, and the web UI in headless chromium. Run from anywhere; exits non-zero on failure.
#
# Build output goes to $CARGO_TARGET_DIR (default ~/.cache/enclave-target) so repeated runs and CI reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}"
started=$(date +%s)

scripts/install-test-deps.sh

# The default models, fetched once into a cache and verified; tests copy them into their own data dirs.
models_data="${ENCLAVE_TEST_MODELS_DATA:-$HOME/.cache/enclave/test-data}"
scripts/fetch-models.sh "$models_data"
export ENCLAVE_TEST_MODELS="$models_data/models"

echo "== cargo test"
cargo test --locked

echo "== web UI in headless chromium"
cargo build --locked --bin enclave
ENCLAVE_BIN="$CARGO_TARGET_DIR/debug/enclave" node --test tests/ui/

echo "== all tests passed in $(( $(date +%s) - started ))s"
