# Shared by the server benchmarks (sourced from the repository root).

# Builds the server and the licence tool with the `bench-test` profile (release optimisations, and
# the test licence key trusted) and makes a work directory removed at exit, with the server stopped;
# sets $bin, $tool and $work.
build_bench_server() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}"
  cargo build --quiet --locked --profile bench-test --features test-license-key --bins
  bin="$CARGO_TARGET_DIR/bench-test/enclave"
  tool="$CARGO_TARGET_DIR/bench-test/enclave-license"
  work=$(mktemp -d)
  pid=""
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
}

# Starts `$bin` on a free loopback port with the data directory "$work/data", logs in "$work/out"
# and "$work/err"; sets $pid and $base.
start_bench_server() {
  env -u ENCLAVE_LISTEN "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --log-level warn >"$work/out" 2>"$work/err" &
  pid=$!
  base=""
  for _ in $(seq 1 200); do
    base=$(grep -o 'listening on http://[^ ]*' "$work/out" 2>/dev/null | head -1 | sed 's/listening on //; s#/$##') || true
    [ -n "$base" ] && break
    sleep 0.05
  done
  [ -n "$base" ] || { echo "server did not start:"; cat "$work/err"; exit 1; }
}
