#!/usr/bin/env bash
# Benchmark: text generation in process with candle (Enclave) against llama.cpp (llama-cpp-python), on
# the same GGUF file and the same prompt, greedy, 2 threads each, side by side in one run. Prints the
# medians of prompt processing (pp) and generation (tg) tokens/s and the Enclave/llama.cpp ratios, for
# the shipped Q4_1 file and for its Q8_0 requantisation (what the import does for slow formats).
# Target: generation >= 0.8x llama.cpp.
#
# Enclave side: examples/bench_generate.rs, built with the `bench-test` profile and
# RUSTFLAGS="-C target-cpu=x86-64-v3" (AVX2/FMA, what the release targets), RAYON_NUM_THREADS=2.
# llama.cpp side: llama-cpp-python, installed by this script into a venv under ~/.cache (never in CI),
# built from source without AMX (the default native build crashes on this CPU's AMX unit) and with
# AVX2/FMA, n_threads = n_threads_batch = 2. Both sides time the prompt pass (up to the first logits)
# and then N-1 single-token passes with an argmax, generating as many tokens as Enclave did.
#
# Usage: [THREADS=2] scripts/bench/generate.sh [ROUNDS, default 5] [MAX_TOKENS, default 128]
# On a machine busy with other work, two spinning threads per engine collapse (rayon's and ggml's
# barriers wait on descheduled threads): compare with THREADS=1 there and check `uptime`.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-5}"
max_tokens="${2:-128}"
threads="${THREADS:-2}"
models="${ENCLAVE_TEST_MODELS:-$HOME/.cache/enclave/test-data/models}"
gguf="$models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$gguf" ] || { echo "generate.sh: $gguf is missing (scripts/fetch-models.sh)" >&2; exit 2; }

llama_version=0.3.36
venv="$HOME/.cache/enclave-bench/llama-cpp-$llama_version"
if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "installing llama-cpp-python $llama_version into $venv (builds llama.cpp: several minutes)" >&2
  python3 -m venv "$venv"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    "$venv/bin/pip" install --quiet --no-cache-dir "llama-cpp-python==$llama_version" numpy
fi

# Its own build directory: other RUSTFLAGS in the shared one would rebuild everything each time the
# other benchmarks and the tests build there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}-x86-64-v3"
RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --quiet --locked --profile bench-test --example bench_generate
bench="$CARGO_TARGET_DIR/bench-test/examples/bench_generate"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A ChatML prompt (SmolLM2's template) asking for a long answer.
cat >"$work/prompt.txt" <<'TXT'
<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face. You write clear, detailed and well structured answers, with examples where they help the reader understand.<|im_end|>
<|im_start|>user
I am preparing a talk for a local library about the history of bread. Please write a long, detailed story about a baker in a small village who discovers sourdough, how the village reacts, how the recipe spreads to the neighbouring towns, and what the baker learns about patience, fermentation, flour, water, salt and time. Describe the seasons, the market days, the smell of the oven in the morning and the people who come to buy bread.<|im_end|>
<|im_start|>assistant
TXT
q8="$work/SmolLM2-135M-Instruct.Q8_0.gguf"
"$bench" requantize "$gguf" "$q8" 2>/dev/null

cat >"$work/llama.py" <<'PY'
import json, sys, time
import numpy as np
from llama_cpp import Llama
path, prompt_file, n_gen, rounds, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=path, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
tokens = llm.tokenize(open(prompt_file, encoding="utf-8").read().encode(), add_bos=False, special=True)
for r in range(rounds):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    for _ in range(n_gen - 1):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([tok])
    t2 = time.perf_counter()
    print(json.dumps({"round": r, "prompt_tokens": len(tokens), "completion_tokens": n_gen,
                      "pp_tps": len(tokens) / (t1 - t0), "tg_tps": (n_gen - 1) / (t2 - t1)}))
PY

median() { python3 -c 'import json,statistics,sys; k=sys.argv[1]; print("%.1f" % statistics.median(json.loads(l)[k] for l in sys.stdin if "\"round\"" in l))' "$1"; }
field() { python3 -c 'import json,sys; k=sys.argv[1]; print([json.loads(l) for l in sys.stdin if "\"round\"" in l][0][k])' "$1"; }

echo "threads: $threads; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-22s %10s %10s %8s %8s\n' file engine "pp tok/s" "tg tok/s" prompt gen
for f in "$gguf" "$q8"; do
  label=$(basename "$f" .gguf | sed 's/.*\.//')
  # One warm-up round each, then interleaved rounds so both see the same machine load.
  RAYON_NUM_THREADS=$threads "$bench" run "$f" "$work/prompt.txt" "$max_tokens" 1 >/dev/null
  : >"$work/enclave.$label"; : >"$work/llama.$label"
  n_gen=""
  for _ in $(seq 1 "$rounds"); do
    RAYON_NUM_THREADS=$threads "$bench" run "$f" "$work/prompt.txt" "$max_tokens" 1 | tee -a "$work/enclave.$label" >/dev/null
    n_gen=${n_gen:-$(field completion_tokens <"$work/enclave.$label")}
    "$venv/bin/python" "$work/llama.py" "$f" "$work/prompt.txt" "$n_gen" 1 "$threads" >>"$work/llama.$label"
  done
  e_pp=$(median pp_tps <"$work/enclave.$label"); e_tg=$(median tg_tps <"$work/enclave.$label")
  l_pp=$(median pp_tps <"$work/llama.$label"); l_tg=$(median tg_tps <"$work/llama.$label")
  printf '%-8s %-22s %10s %10s %8s %8s\n' "$label" enclave "$e_pp" "$e_tg" "$(field prompt_tokens <"$work/enclave.$label")" "$n_gen"
  printf '%-8s %-22s %10s %10s %8s %8s\n' "$label" "llama.cpp $llama_version" "$l_pp" "$l_tg" "$(field prompt_tokens <"$work/llama.$label")" "$n_gen"
  python3 -c "import sys; e_pp,e_tg,l_pp,l_tg=map(float,sys.argv[1:5]); print('%-8s ratio enclave/llama.cpp   pp %.2fx   tg %.2fx' % (sys.argv[5], e_pp/l_pp, e_tg/l_tg))" "$e_pp" "$e_tg" "$l_pp" "$l_tg" "$label"
  grep rss "$work/enclave.$label" | tail -1 | sed "s/^/$label enclave memory (MiB): /"
done
