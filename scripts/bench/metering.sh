#!/usr/bin/env bash
# Benchmark: an API-key-authenticated, rate-limited, metered endpoint (GET /api/v1/tenants/bench, each
# 2xx committed to the usage meter before it is answered) against the bare /healthz of the same server,
# in the same run, with wrk on loopback. Prints requests/s and p50/p99 latency of each, and the ratio.
# Target: metered >= 50 % of bare.
#
# The server is built with the `bench-test` profile (release optimisations plus debug assertions, so
# the test licence key can be trusted: an enterprise licence lifts the community plan's monthly quota).
# Key and tenant rate limits are raised to 10,000,000/min so the limiter runs but does not refuse.
#
# Usage: scripts/bench/metering.sh [SECONDS per run, default 10] [ROUNDS, default 3]
# CONNECTIONS (environment, default 32): wrk's open connections, the same for every route. A metered
# answer waits for a group commit (an fdatasync), so with few connections the metered route is bound by
# that wait as much as by CPU; more connections put more requests in each commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
rounds="${2:-3}"
conns="${CONNECTIONS:-32}"
[[ "$conns" =~ ^[1-9][0-9]*$ ]] || { echo "metering.sh: CONNECTIONS must be a positive whole number, not '$conns'" >&2; exit 2; }
command -v wrk >/dev/null || { echo "metering.sh: wrk is missing (apt-get install wrk)" >&2; exit 2; }
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
build_bench_server
start_bench_server

# Sign in, settle the admin password, install an enterprise licence, make a tenant and a raised key.
key=$(python3 scripts/bench/setup_server.py "$base" "$work/data" "$tool" read)
read -r key cookie <<<"$key"

run_wrk() { # name url [header]
  if [ -n "${3:-}" ]; then
    wrk -t2 -c"$conns" -d"${secs}s" --latency -H "$3" "$2"
  else
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$2"
  fi >"$work/wrk-$1"
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk-$1")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk-$1")
  p99=$(awk '$1=="99%" {print $2}' "$work/wrk-$1")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk-$1")
  echo "$rps $p50 $p99 ${non2xx:-0}"
}

echo "wrk: 2 threads, $conns connections, ${secs} s per route"
echo "round  bare req/s (p50, p99)            metered req/s (p50, p99)         ratio   (session, unmetered: req/s)"
ratios=()
for round in $(seq 1 "$rounds"); do
  read -r b_rps b_p50 b_p99 b_bad < <(run_wrk bare "$base/healthz")
  read -r m_rps m_p50 m_p99 m_bad < <(run_wrk metered "$base/api/v1/tenants/bench" "Authorization: Bearer $key")
  if [ "$b_bad" != "0" ] || [ "$m_bad" != "0" ]; then
    echo "non-2xx answers (bare $b_bad, metered $m_bad): the measurement is not valid" >&2
    exit 1
  fi
  read -r s_rps _ _ _ < <(run_wrk session "$base/api/v1/tenants/bench" "Cookie: $cookie")
  ratio=$(python3 -c "print(f'{$m_rps / $b_rps:.2f}')")
  ratios+=("$ratio")
  printf '%-6s %-32s %-32s %-7s %s\n' "$round" "$b_rps ($b_p50, $b_p99)" "$m_rps ($m_p50, $m_p99)" "$ratio" "$s_rps"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
counted=$(python3 - "$work/data/tenants/bench/tenant.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select coalesce(sum(quantity),0) from usage_daily where metric='api_requests'").fetchone()[0])
PY
)
echo "median ratio metered/bare: $median (target >= 0.50); api_requests counted: $counted"
