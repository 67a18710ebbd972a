#!/usr/bin/env bash
# Crash test of the usage meter: clients hammer a metered endpoint, the server is killed with SIGKILL under
# load and restarted, and the count is compared with the clients' own tally of 2xx answers.
# Prints "acknowledged N, counted M, lost: 0" (lost > 0 fails the test).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}"
cargo test --quiet --locked --features test-license-key --test integration \
  usage::kill_9_under_load_loses_no_acknowledged_request -- --exact --nocapture 2>&1 | grep -E "lost:|test result"
