# Shared by the server benchmarks (sourced): starts `$bin` on a free loopback port with the data
# directory "$work/data", logs in "$work/out" and "$work/err"; sets $pid and $base. The caller's EXIT
# trap stops it.
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
