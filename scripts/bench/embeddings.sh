#!/usr/bin/env bash
# Benchmark: sentence embeddings per second with the default model (all-MiniLM-L6-v2), Enclave in
# process (EmbeddingModel, examples/embed_bench.rs) and over HTTP (the server's POST /v1/embeddings
# with an API key, one request at a time on a kept-alive connection) against sentence-transformers on
# PyTorch (CPU), side by side in one run with the same thread count and the same inputs: 1,000
# generated sentences of 30-60 words, fed as requests of 1 and of 32 sentences. Prints each side's
# median sentences/s over the rounds and the ratios to PyTorch. Target: >= 1.0.
#
# Enclave is built with the `bench-test` profile and `-C target-cpu=x86-64-v3`, as release builds are
# (the profile's debug assertions apply to Enclave's own code only, never to gemm, candle or actix).
# PyTorch and sentence-transformers are installed once into a venv under ~/.cache (not in CI): from
# PyTorch's CPU wheel index when it is reachable, else PyPI's torch wheel (the same library; its CUDA
# libraries are unused here). The model comes from the local directory scripts/fetch-models.sh fills.
#
# Run it on an otherwise idle machine: with other loads on the cores, PyTorch's OpenMP threads spin and
# its numbers collapse far more than candle's (seen: 5 sentences/s at batch 1 under a load of 6).
#
# Usage: scripts/bench/embeddings.sh [ROUNDS, default 3] [THREADS, default nproc]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
threads="${2:-$(nproc)}"
models="${ENCLAVE_TEST_MODELS:-$HOME/.cache/enclave/test-data/models}"
model="$models/all-MiniLM-L6-v2"
[ -f "$model/model.safetensors" ] || { echo "embeddings.sh: $model is missing (run scripts/fetch-models.sh)" >&2; exit 2; }

venv="${ENCLAVE_BENCH_VENV:-$HOME/.cache/enclave/bench-venv}"
if ! "$venv/bin/python" -c "import torch, sentence_transformers" 2>/dev/null; then
  echo "== installing PyTorch (CPU) and sentence-transformers into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch 2>/dev/null \
    || "$venv/bin/pip" install --quiet torch
  "$venv/bin/pip" install --quiet sentence-transformers
fi

# Its own build directory: other RUSTFLAGS in the shared one would rebuild everything each time the
# other benchmarks and the tests build there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}-x86-64-v3"
export RUSTFLAGS="-C target-cpu=x86-64-v3"
cargo build --quiet --locked --profile bench-test --example embed_bench
embed_bench="$CARGO_TARGET_DIR/bench-test/examples/embed_bench"
# The server, for the HTTP side (sets $bin, $tool and $work, removed at exit with the server stopped).
# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
build_bench_server
unset RUSTFLAGS
"$venv/bin/python" - "$work/sentences.txt" <<'PY'
import random, sys
words = """the a of and to in is it that for on with as was at by be this are from or have an they
which one you had not but what all were when we there can more if no out so said up its about into
than them only other new some could time these two may then first any like now my such make over our
even most me state after also made many did must before back see through way where get much go well
your know should down work year because come people just say each those take day good how long left
same system data model network server request answer search vector tenant user key quota audit log
document prompt report policy team office project customer market price water river mountain city
road train music garden kitchen window morning evening weather summer winter history science school
quickly slowly carefully often never always again together almost already however although while""".split()
rng = random.Random(20240601)
with open(sys.argv[1], "w") as out:
    for _ in range(1000):
        n = rng.randint(30, 60)
        s = " ".join(rng.choice(words) for _ in range(n))
        out.write(s[0].upper() + s[1:] + ".\n")
PY

# The timed rounds, shared by the PyTorch and the HTTP client (each imports it from $work).
cat >"$work/rounds.py" <<'PY'
import statistics, time
def timed_rounds(run, chunks, n_sentences, rounds):
    rates = []
    for r in range(1, rounds + 1):
        t = time.perf_counter()
        run(chunks)
        secs = time.perf_counter() - t
        rates.append(n_sentences / secs)
        print(f"round {r}: {rates[-1]:.1f} sentences/s ({n_sentences} sentences, {secs:.2f} s)", flush=True)
    print(f"median {statistics.median(rates):.1f}")
PY

cat >"$work/torch_bench.py" <<'PY'
import os, sys
from rounds import timed_rounds
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
model_dir, path, batch, rounds, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(model_dir, device="cpu")
sentences = open(path).read().splitlines()
chunks = [sentences[i:i + batch] for i in range(0, len(sentences), batch)]
def run(chs):
    for c in chs:
        model.encode(c, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
run([sentences[i:i + batch] for i in range(0, 64, batch)])
timed_rounds(run, chunks, len(sentences), rounds)
PY

cat >"$work/http_bench.py" <<'PY'
import http.client, json, sys, time, urllib.parse
from rounds import timed_rounds
base, key, path, batch, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
url = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
def call(method, route, body=None):
    conn.request(method, route, body=None if body is None else json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{method} {route}: {r.status} {data[:300]!r}")
    return json.loads(data)
deadline = time.time() + 300
while not any(m.get("state") == "ready" and m["id"] == "all-MiniLM-L6-v2" for m in call("GET", "/v1/models")["data"]):
    if time.time() > deadline:
        sys.exit("the embedding model did not become ready")
    time.sleep(0.2)
sentences = open(path).read().splitlines()
chunks = [sentences[i:i + batch] for i in range(0, len(sentences), batch)]
def run(chs):
    for c in chs:
        out = call("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": c})
        assert len(out["data"]) == len(c)
run(chunks[: max(1, 64 // batch)])
timed_rounds(run, chunks, len(sentences), rounds)
PY

export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
mkdir -p "$work/data"
ln -s "$(cd "$models" && pwd)" "$work/data/models"
start_bench_server
read -r key _ < <(python3 scripts/bench/setup_server.py "$base" "$work/data" "$tool" inference)
versions=$("$venv/bin/python" -c "import torch, sentence_transformers as s; print(f'torch {torch.__version__}, sentence-transformers {s.__version__}')" 2>/dev/null)
echo "== 1,000 sentences of 30-60 words, $threads threads, $rounds rounds; PyTorch: $versions"
summary=()
for batch in 1 32; do
  echo "-- batch $batch: Enclave, in process"
  out=$("$embed_bench" "$model" "$work/sentences.txt" "$batch" "$rounds")
  echo "$out"
  enclave=$(awk '/^median/ {print $2}' <<<"$out")
  echo "-- batch $batch: Enclave, over HTTP"
  out=$(python3 "$work/http_bench.py" "$base" "$key" "$work/sentences.txt" "$batch" "$rounds")
  echo "$out"
  http=$(awk '/^median/ {print $2}' <<<"$out")
  echo "-- batch $batch: sentence-transformers (PyTorch)"
  out=$("$venv/bin/python" "$work/torch_bench.py" "$model" "$work/sentences.txt" "$batch" "$rounds" "$threads" 2>/dev/null)
  echo "$out"
  torch=$(awk '/^median/ {print $2}' <<<"$out")
  summary+=("$(awk -v b="$batch" -v e="$enclave" -v h="$http" -v t="$torch" 'BEGIN { printf "batch %-3s  Enclave in process %7.1f/s (%.2fx)   over HTTP %7.1f/s (%.2fx)   PyTorch %7.1f/s", b, e, e / t, h, h / t, t }')")
done
echo "== medians (sentences/s; ratio to PyTorch in brackets, target >= 1.0)"
printf '%s\n' "${summary[@]}"
