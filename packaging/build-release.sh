#!/usr/bin/env bash
# Builds the release of the appliance: `enclave` statically linked for x86_64 Linux (glibc, crt-static,
# x86-64-v3), with only the production licence keys of packaging/license-keys/ trusted, then the signed
# bundles (packaging/make-bundle.sh).
#
#   packaging/build-release.sh [--key KEY.pem] [--out DIR] [--models DIR | --no-models] [-- cargo flags]
#
#   --key     the release signing key (default: $HOME/.config/enclave-vendor/enclave-release-2026.pem;
#             tests pass tests/fixtures/release/enclave-release-test.pem, and the bundles then say so)
#   --out     where the bundles go (default: dist/)
#   --models  the default models for the air-gapped bundle (default: $ENCLAVE_TEST_MODELS, else
#             ~/.cache/enclave/test-data/models, else ./data/models; fetch with scripts/fetch-models.sh)
#
# Build output goes to $RELEASE_TARGET_DIR (default ~/.cache/enclave-release-target), apart from the
# development build. The binary is checked: no ELF interpreter, and
# `enclave version` runs in an empty environment.
#
# Refuses the `test-license-key` feature (it trusts a key whose private half is in the repository);
# src/lib.rs also refuses it at compile time for any optimised build. The vendor tool `enclave-license`
# is not part of the appliance and is not built here.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
# Its own target directory (not $CARGO_TARGET_DIR, which scripts/test.sh points at the debug build).
export CARGO_TARGET_DIR="${RELEASE_TARGET_DIR:-$HOME/.cache/enclave-release-target}"
target=x86_64-unknown-linux-gnu

key="$HOME/.config/enclave-vendor/enclave-release-2026.pem"
out="$repo/dist"
models=""
no_models=0
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --key) key=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --no-models) no_models=1; shift ;;
    --) shift; cargo_args=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) cargo_args+=("$1"); shift ;;
  esac
done
for arg in "${cargo_args[@]}" ${CARGO_FEATURES:-} ${CARGO_BUILD_FEATURES:-}; do
  case "$arg" in
    *test-license-key*|*test-upgrade-migration*|*test-failing-migration*|--all-features)
      echo "build-release: refusing '$arg': release builds never trust the test licence key nor carry test migrations" >&2
      exit 2 ;;
  esac
done
[ -f "$key" ] || { echo "build-release: no signing key $key (see packaging/release-keys/README.md; tests use --key tests/fixtures/release/enclave-release-test.pem)" >&2; exit 1; }
if [ "$no_models" -eq 0 ] && [ -z "$models" ]; then
  for m in "${ENCLAVE_TEST_MODELS:-}" "$HOME/.cache/enclave/test-data/models" "$repo/data/models"; do
    if [ -n "$m" ] && [ -d "$m" ]; then models=$m; break; fi
  done
  [ -n "$models" ] || echo "build-release: no models found: only the online bundle is made (scripts/fetch-models.sh for the air-gapped one)" >&2
fi

# Static glibc: +crt-static gives a static-pie executable. RUSTFLAGS replaces the target-cpu of
# .cargo/config.toml, so it is repeated here. --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-C target-feature=+crt-static -C target-cpu=x86-64-v3"
started=$SECONDS
cargo build --release --locked --target "$target" --bin enclave "${cargo_args[@]}"
bin="$CARGO_TARGET_DIR/$target/release/enclave"
echo "build-release: built $bin ($(du -h "$bin" | cut -f1)) in $((SECONDS - started))s"

# (grep without -q: it reads everything, so the writer never dies of SIGPIPE under pipefail)
if readelf -l "$bin" | grep INTERP >/dev/null || ! ldd "$bin" 2>&1 | grep 'not a dynamic executable\|statically linked' >/dev/null; then
  echo "build-release: error: $bin is dynamically linked" >&2; ldd "$bin" >&2 || true; exit 1
fi
env -i "$bin" version | grep '^enclave ' >/dev/null || { echo "build-release: error: '$bin version' does not run in an empty environment" >&2; exit 1; }
echo "build-release: static ($(ldd "$bin" 2>&1 | tr -d '\t')), runs: $(env -i "$bin" version | head -n 1)"

bundle_args=(--binary "$bin" --key "$key" --out "$out")
[ -z "$models" ] || bundle_args+=(--models "$models")
packaging/make-bundle.sh "${bundle_args[@]}"
