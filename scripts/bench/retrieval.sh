#!/usr/bin/env bash
# Benchmark: knowledge-base ingestion and retrieval, Enclave against ChromaDB + sentence-transformers
# (Open WebUI's default retrieval stack), side by side on this machine with the same embedding model
# (all-MiniLM-L6-v2), the same segments and the same queries.
#
# Corpus: English technical documentation shipped by Debian packages (Python 3.11, PostgreSQL 15, Django,
# Git, the Debian Administrator's Handbook and Reference, the Linux kernel's HTML docs), installed with
# apt-get when missing and copied once, as shipped (HTML), into ~/.cache/enclave/bench-corpus/. A fixed
# shuffled prefix of it is chosen whose estimated segment count reaches SEGMENTS (the estimate is
# calibrated by earlier runs); Enclave's real count is printed.
#
# Enclave: the `bench-test` build (scripts/bench/lib.sh) on a fresh data directory linking the fetched
# models, an enterprise test licence, an API key with datasets:read,datasets:write. The files go up
# 100 per multipart request into one dataset with the default chunking (200 tokens, 32 overlap); ingest
# throughput = segments / seconds from the first upload to the last job done (every document ready:
# parsed, embedded, indexed). Then each ready document's segments are read back through the API.
# ChromaDB: a persistent client in a temporary directory gets exactly those segments, embedded by
# sentence-transformers (PyTorch CPU, nproc threads) with the same input text Enclave embeds (document
# title, heading path, segment text), one document after the other, `add` in batches within
# get_max_batch_size(); the Enclave server is stopped meanwhile.
#
# Queries: known-item queries made from the chosen documents (the title, or the first sentence of the
# first paragraph cut to 14 words); the answer is the document. One at a time, top 10, after 20 warm-up
# queries: Enclave keyword, semantic, hybrid (POST /datasets/search; client wall clock and the server's
# took_ms), Chroma semantic (query embedding + collection.query). MRR@10 and recall@10 count a hit when
# any of the 10 segments belongs to the answer document.
#
# Targets: ingest ratio Enclave/Chroma >= 1; Chroma semantic p50 / Enclave hybrid p50 > 1; hybrid p50
# <= 25 ms; hybrid MRR@10 above keyword's and semantic's. Raw results go to
# ~/.cache/enclave/bench-results/retrieval-*.json (printed at the end). Run it on an otherwise idle
# machine: PyTorch's threads suffer badly from other loads (see embeddings.sh).
#
# Duration on 2 idle cores (Enclave ingests ~30 segments/s, Chroma ~26/s): 5000 segments ~10 minutes,
# 100000 about 2 hours.
#
# Usage: scripts/bench/retrieval.sh [SEGMENTS, default 100000]   (5000 for a quick check)
#   ENCLAVE_BENCH_BIN=path/to/bench-test/enclave  uses that build instead of building one
set -euo pipefail
cd "$(dirname "$0")/../.."
segments="${1:-100000}"
here=scripts/bench/retrieval
models="${ENCLAVE_TEST_MODELS:-$HOME/.cache/enclave/test-data/models}"
model="$models/all-MiniLM-L6-v2"
[ -f "$model/model.safetensors" ] || { echo "retrieval.sh: $model is missing (run scripts/fetch-models.sh)" >&2; exit 2; }
corpus="${ENCLAVE_BENCH_CORPUS:-$HOME/.cache/enclave/bench-corpus}"
results="${ENCLAVE_BENCH_RESULTS:-$HOME/.cache/enclave/bench-results}"
threads=$(nproc)

# The peer: versions pinned. PyTorch's CPU wheel index when reachable, else PyPI's wheel of the same version.
venv="${ENCLAVE_BENCH_VENV:-$HOME/.cache/enclave/bench-venv}"
if ! "$venv/bin/python" -c "import torch, sentence_transformers, chromadb" 2>/dev/null; then
  echo "== installing PyTorch (CPU), sentence-transformers and chromadb into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch==2.15.0 2>/dev/null \
      || "$venv/bin/pip" install --quiet torch==2.15.0
  fi
  "$venv/bin/pip" install --quiet sentence-transformers==6.2.0 chromadb==1.5.9
fi
py="$venv/bin/python"

# The corpus: Debian's documentation packages, copied once into the cache.
mapfile -t -d ' ' pkgs < <(python3 "$here/corpus.py" packages | tr -d '\n')
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi
mkdir -p "$corpus" "$results"
"$py" "$here/corpus.py" build "$corpus" "$model/tokenizer.json"
factor=1.0
[ -f "$corpus/calibration" ] && factor=$(cat "$corpus/calibration")

# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
if [ -n "${ENCLAVE_BENCH_BIN:-}" ]; then # a prebuilt `bench-test` server (and its licence tool beside it)
  bin="$ENCLAVE_BENCH_BIN"
  tool="${ENCLAVE_BENCH_TOOL:-$(dirname "$bin")/enclave-license}"
  work=$(mktemp -d)
  pid=""
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
else
  build_bench_server
fi
unset ENCLAVE_BENCH_BIN ENCLAVE_BENCH_TOOL ENCLAVE_BENCH_VENV ENCLAVE_BENCH_CORPUS ENCLAVE_BENCH_RESULTS ENCLAVE_TEST_MODELS
trap 'echo "retrieval.sh: failed; the server log ends:" >&2; tail -20 "$work/err" >&2 2>/dev/null' ERR
out="$work/out.d"
mkdir -p "$out" "$work/data"
read -r n_files n_est < <("$py" "$here/corpus.py" select "$corpus" "$segments" "$out/selection.json" "$factor")
read -r n_queries _ _ < <("$py" "$here/corpus.py" queries "$out/selection.json" "$out/queries-all.json" 400)
echo "== $n_files documents chosen (~$n_est segments expected), $n_queries queries; $threads CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"

ln -s "$(cd "$models" && pwd)" "$work/data/models"
start_bench_server
read -r key _ < <(python3 scripts/bench/setup_server.py "$base" "$work/data" "$tool" datasets:read,datasets:write)
"$py" "$here/enclave_side.py" warmup "$base" "$key" bench
read -r made n_queries < <("$py" "$here/enclave_side.py" ingest "$base" "$key" bench "$out/selection.json" "$out/queries-all.json" "$out")
# Later selections aim better: the measured segments per estimated one.
python3 -c "import sys; print(round(float(sys.argv[1]) * int(sys.argv[2]) / max(1, int(sys.argv[3])), 3))" \
  "$factor" "$made" "$n_est" >"$corpus/calibration"
"$py" "$here/enclave_side.py" query "$base" "$key" bench "$out"
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true

export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
"$py" "$here/chroma_side.py" "$model" "$out/segments.json" "$out/queries.json" "$out/chroma.json" "$threads" 2> >(grep -v -e Warning -e 'Loading weights' >&2)
"$py" "$here/report.py" "$out" "$results/retrieval-$(date -u +%Y%m%dT%H%M%SZ)-$made.json" "$segments"
