#!/usr/bin/env bash
# Benchmark: encrypted backup throughput and peak memory against `tar | zstd` of the same files (no
# encryption), in the same run on the same machine.
#
# Builds a data directory of about SIZE_MB (default 1024) MB: system.db and a tenant database made by
# the CLI, and the tenant's files — text from /usr/share/doc (compressible, as documents are) and
# random bytes (incompressible, as PDFs and images mostly are), half and half. Then, three times each,
# alternating: `enclave backup now` and `tar -cf - data | zstd -3` (both one compression thread). Prints
# the median wall time of each, the throughput ratio (target >= 0.70) and Enclave's peak resident memory
# (target < 100 MB), from /usr/bin/time.
#
# Usage: scripts/bench/backup.sh [SIZE_MB]     (run it alone: the machine's other load skews it)
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb="${1:-1024}"
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
build_bench_server
data="$work/data"
"$bin" --data-dir "$data" --log-level warn init --config-out "$work/enclave.toml" >/dev/null
"$bin" --data-dir "$data" --log-level warn tenant create "Bench" --id bench >/dev/null
files="$data/tenants/bench/files"
mkdir -p "$files/text" "$files/binary"

echo "== making $size_mb MB of tenant files"
half=$((size_mb * 1024 * 1024 / 2))
written=0
n=0
while [ "$written" -lt "$half" ]; do
  while IFS= read -r -d '' f; do
    n=$((n + 1))
    cp "$f" "$files/text/$n.txt"
    written=$((written + $(stat -c %s "$f")))
    [ "$written" -ge "$half" ] && break
  done < <(find /usr/share/doc -type f \( -name '*.txt' -o -name '*.html' -o -name 'copyright' -o -name '*.md' \) -size +2k -print0)
  [ "$n" -gt 0 ] || { echo "backup.sh: no text files in /usr/share/doc" >&2; exit 2; }
done
for i in $(seq 1 $((half / (8 * 1024 * 1024) + 1))); do
  head -c $((8 * 1024 * 1024)) /dev/urandom >"$files/binary/$i.bin"
done
total=$(du -sb "$data" | cut -f1)
echo "data directory: $((total / 1024 / 1024)) MB in $(find "$data" -type f | wc -l) files"

export ENCLAVE_BACKUP_PASSPHRASE="benchmark passphrase, long enough"
enclave_runs=()
peer_runs=()
rss=()
for round in 1 2 3; do
  rm -rf "$work/out" && mkdir -p "$work/out"
  sync
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" --data-dir "$data" --log-level warn backup now --out "$work/out" >/dev/null
  read -r secs kb <"$work/time"
  enclave_runs+=("$secs")
  rss+=("$kb")
  enclave_bytes=$(stat -c %s "$work"/out/*.enclave-backup)
  rm -rf "$work/out"
  sync
  /usr/bin/time -f '%e' -o "$work/time" sh -c "tar -C '$work' -cf - data | zstd -q -3 -T1 -o '$work/peer.tar.zst'"
  peer_runs+=("$(cat "$work/time")")
  peer_bytes=$(stat -c %s "$work/peer.tar.zst")
  rm -f "$work/peer.tar.zst"
  echo "round $round: enclave ${secs}s (peak ${kb} KB), tar|zstd $(cat "$work/time")s"
done

python3 - "$total" "$enclave_bytes" "$peer_bytes" "${enclave_runs[*]}" "${peer_runs[*]}" "${rss[*]}" <<'PY'
import statistics, sys
total, enclave_bytes, peer_bytes = (int(x) for x in sys.argv[1:4])
enclave = [float(x) for x in sys.argv[4].split()]
peer = [float(x) for x in sys.argv[5].split()]
rss = [int(x) for x in sys.argv[6].split()]
e, p = statistics.median(enclave), statistics.median(peer)
mb = total / 1024 / 1024
print()
print(f"{'':34}{'Enclave':>10}{'tar|zstd':>10}{'ratio':>8}")
print(f"{'median seconds':34}{e:>10.2f}{p:>10.2f}")
print(f"{'throughput MB/s':34}{mb / e:>10.1f}{mb / p:>10.1f}{p / e:>7.2f}x  target >= 0.70")
print(f"{'output MB (of ' + format(mb, '.0f') + ' MB)':34}{enclave_bytes / 1048576:>10.1f}{peer_bytes / 1048576:>10.1f}")
print(f"{'peak resident MB (max of 3)':34}{max(rss) / 1024:>10.1f}{'':>10}        target < 100")
PY
