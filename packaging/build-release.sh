#!/usr/bin/env bash
# Builds the release binary of the appliance: `enclave`, optimised for x86-64-v3, with only the
# production licence keys of packaging/license-keys/ trusted.
#
# Refuses the `test-license-key` feature (it trusts a key whose private half is in the repository);
# src/lib.rs also refuses it at compile time for any optimised build. The vendor tool `enclave-license`
# is not part of the appliance and is not built here.
#
# Usage: packaging/build-release.sh [extra cargo build flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}"
for arg in "$@" ${CARGO_FEATURES:-} ${CARGO_BUILD_FEATURES:-}; do
  case "$arg" in
    *test-license-key*|--all-features)
      echo "build-release: refusing '$arg': release builds never trust the test licence key" >&2
      exit 2 ;;
  esac
done
cargo build --release --locked --bin enclave "$@"
bin="$CARGO_TARGET_DIR/release/enclave"
echo "build-release: $bin ($(du -h "$bin" | cut -f1))"
