#!/usr/bin/env bash
# Vendored browser libraries of the web UI, pinned by exact version and SHA-256 (SHA256SUMS).
#
#   assets/vendor/refresh.sh          re-fetch from the npm registry (npm pack) and rewrite SHA256SUMS
#   assets/vendor/refresh.sh --check  only verify the committed files against SHA256SUMS
#
# Vendored: htm@3.1.1 `preact/standalone.module.js` (preact 10 + hooks + htm in one ES module, MIT),
# saved as htm-preact-3.1.1.js, with its LICENSE. To upgrade, change HTM_VERSION, run this script,
# and review the diff.
set -euo pipefail
cd "$(dirname "$0")"
HTM_VERSION=3.1.1

if [ "${1:-}" = "--check" ]; then
  sha256sum --quiet -c SHA256SUMS
  echo "vendored files match SHA256SUMS"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htm@$HTM_VERSION" >/dev/null && tar xzf "htm-$HTM_VERSION.tgz")
cp "$work/package/preact/standalone.module.js" "htm-preact-$HTM_VERSION.js"
cp "$work/package/LICENSE" "htm-preact-$HTM_VERSION.LICENSE.txt"
sha256sum "htm-preact-$HTM_VERSION.js" "htm-preact-$HTM_VERSION.LICENSE.txt" > SHA256SUMS
cat SHA256SUMS
