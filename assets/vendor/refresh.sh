#!/usr/bin/env bash
# Vendored browser libraries of the web UI, pinned by exact version and SHA-256 (SHA256SUMS).
#
#   assets/vendor/refresh.sh          re-fetch from the npm registry (npm pack) and rewrite SHA256SUMS
#   assets/vendor/refresh.sh --check  only verify the committed files against SHA256SUMS (no network)
#
# Vendored: htm@3.1.1 `preact/standalone.module.js` (preact 10 + hooks + htm in one ES module, MIT),
# saved as htm-preact-3.1.1.js, with its LICENSE. To upgrade, change HTM_VERSION, run this script,
# change the `vendor/htm-preact-<version>.js` imports of the modules, and review the diff. Both modes fail when a file here is not listed in SHA256SUMS or a listed one
# is missing or differs.
set -euo pipefail
cd "$(dirname "$0")"
HTM_VERSION=3.1.1

# Every vendored file (all but this script and SHA256SUMS) must be listed in SHA256SUMS.
check_listed() {
  local f status=0
  for f in *; do
    case "$f" in refresh.sh | SHA256SUMS) continue ;; esac
    if ! cut -d' ' -f3- SHA256SUMS | grep -qxF -- "$f"; then
      echo "refresh.sh: $f is not listed in SHA256SUMS" >&2
      status=1
    fi
  done
  return "$status"
}

if [ "${1:-}" = "--check" ]; then
  sha256sum --quiet --strict -c SHA256SUMS
  check_listed
  echo "vendored files match SHA256SUMS"
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# npm pack checks the tarball against the registry's integrity hash; no install scripts run.
(cd "$work" && npm pack --silent "htm@$HTM_VERSION" >/dev/null && tar xzf "htm-$HTM_VERSION.tgz")
grep -q "\"version\": \"$HTM_VERSION\"" "$work/package/package.json" || { echo "refresh.sh: not htm $HTM_VERSION" >&2; exit 1; }
# Files of another version go; the modules import the versioned name, so an upgrade edits those imports.
for f in htm-preact-*; do
  case "$f" in "htm-preact-$HTM_VERSION.js" | "htm-preact-$HTM_VERSION.LICENSE.txt") ;; *) echo "removing $f"; rm -f -- "$f" ;; esac
done
cp "$work/package/preact/standalone.module.js" "htm-preact-$HTM_VERSION.js"
cp "$work/package/LICENSE" "htm-preact-$HTM_VERSION.LICENSE.txt"

old=$(cat SHA256SUMS 2>/dev/null || true)
sha256sum "htm-preact-$HTM_VERSION.js" "htm-preact-$HTM_VERSION.LICENSE.txt" > SHA256SUMS
sha256sum --quiet --strict -c SHA256SUMS
check_listed
cat SHA256SUMS
if [ "$old" = "$(cat SHA256SUMS)" ]; then
  echo "unchanged: the fetched files match the pinned checksums"
else
  echo "SHA256SUMS changed: review the diff of assets/vendor/ before committing"
fi
