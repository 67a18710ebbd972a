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
# The venv with the openai client (made by install-test-deps.sh) for the compatibility test.
export ENCLAVE_TEST_PYTHON="${ENCLAVE_TEST_VENV:-$HOME/.cache/enclave/test-venv}/bin/python"

# The `test-license-key` feature makes this build trust the test licence key (tests/fixtures/license/),
# so the tests can issue licences; release builds refuse the feature (see src/lib.rs).
echo "== cargo test"
cargo test --locked --features test-license-key

echo "== web UI in headless chromium"
cargo build --locked --bins --features test-license-key
ENCLAVE_BIN="$CARGO_TARGET_DIR/debug/enclave" ENCLAVE_LICENSE_BIN="$CARGO_TARGET_DIR/debug/enclave-license" \
  node --test tests/ui/

# The release build (static, ~15-30 min the first time on 2 cores, cached in ~/.cache/enclave-release-target),
# the signed bundles, and install.sh for real in throw-away overlay roots: fresh install, idempotent
# re-run, upgrades with migration and automatic rollback, uninstall. Builds its own v2/v3 test binaries.
echo "== packaging"
tests/packaging/run.sh

echo "== all tests passed in $(( $(date +%s) - started ))s"
