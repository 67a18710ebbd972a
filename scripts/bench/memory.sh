#!/usr/bin/env bash
# Benchmark: peak memory of the server with both default models loaded and used. Starts the
# `bench-test` build on a data directory linking the fetched models, waits until both are ready, runs
# a streamed chat completion (256 tokens) and a 32-input embeddings request through /v1, then prints
# the process's resident set now (VmRSS) and at its peak (VmHWM). Target: peak < 600 MB.
#
# Usage: scripts/bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
models="${ENCLAVE_TEST_MODELS:-$HOME/.cache/enclave/test-data/models}"
[ -d "$models/SmolLM2-135M-Instruct" ] || { echo "memory.sh: no models in $models (scripts/fetch-models.sh)" >&2; exit 2; }
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
build_bench_server
mkdir -p "$work/data"
ln -s "$(cd "$models" && pwd)" "$work/data/models"
start_bench_server
read -r key _ < <(python3 scripts/bench/setup_server.py "$base" "$work/data" "$tool" inference)

python3 - "$base" "$key" <<'PY'
import json, sys, time, urllib.request
base, key = sys.argv[1:3]
def call(path, body=None):
    req = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req) as r:
        return r.read()
deadline = time.time() + 300
while True:
    states = [m["state"] for m in json.loads(call("/v1/models"))["data"]]
    if len(states) == 2 and all(s == "ready" for s in states):
        break
    if any(s == "failed" for s in states) or time.time() > deadline:
        sys.exit(f"models not ready: {states}")
    time.sleep(0.2)
call("/v1/chat/completions", {"messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
     "max_tokens": 256, "temperature": 0.7, "seed": 1, "stream": True})
sentences = [f"Sentence number {i} about the quarterly planning of the platform team and its roadmap." for i in range(32)]
call("/v1/embeddings", {"input": sentences})
PY

rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
peak=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
echo "server RSS with both models loaded and used: now $((rss / 1024)) MB, peak $((peak / 1024)) MB (target < 600 MB)"
