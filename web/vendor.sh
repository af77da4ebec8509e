#!/usr/bin/env bash
# Copies the pinned browser builds (package.json + package-lock.json) into assets/vendor/,
# the files the admin console serves as /admin/assets/vendor/<file> with no bundler, plus
# each package's licence and a VERSIONS manifest (package, version, file, sha256).
#   web/vendor.sh          refresh assets/vendor/ from node_modules (npm ci first if needed)
#   web/vendor.sh --check  fail, naming the file, when a committed copy or VERSIONS differs
#                          from the pinned package (run by `make lint`)
#
# Strict CSP (script-src 'self'; style-src 'self'; no 'unsafe-inline'/'unsafe-eval'),
# read from the dist code and checked in Chromium by tests/peers/browser/smoke.mjs:
# - htmx 2.0.11 inserts an inline <style> for .htmx-indicator at load (a style-src
#   violation) and compiles hx-on:*, hx-vals/hx-vars "js:", trigger filters
#   (hx-trigger="click[...]") and htmx.eval with eval/Function: under this CSP hx-on and
#   "js:" vals throw an uncaught EvalError (the request is not sent) and a filter is logged
#   as htmx:syntax:error. Pages must carry, before htmx loads,
#   <meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'>
#   then htmx never calls eval: hx-on does nothing, "js:" vals are dropped, a filter counts
#   as true, each logging htmx:evalDisallowedError with console.error (which the browser
#   tests' assertNoErrors catches). So the console uses none of them and puts the indicator
#   CSS in its stylesheet. Swapped fragments must not carry style="" attributes either.
# - hls.js 1.7.4 starts its transmux worker from a blob: URL, so it needs worker-src blob:
#   (or enableWorker:false, or workerPath pointing at a served hls.worker.js). Without it
#   Chromium logs a worker-src violation and hls.js falls back to transmuxing on the main
#   thread (it still plays). Playback goes through a MediaSource blob: URL (media-src
#   blob:). No eval.
# - tus-js-client 4.3.1: no eval, no inline style, no workers; it only needs connect-src for
#   the upload endpoint (same origin: 'self').
# - chart.js 4.6.1 (UMD): no eval and no injected stylesheet (v2's was removed); it sets
#   canvas sizes through element.style (CSSOM), which CSP does not restrict.
# The .min.js files end in a sourceMappingURL comment; only DevTools follows it (a 404).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/assets/vendor"
nm="$here/node_modules"

# package | file in the package | vendored name
files=(
  "htmx.org|dist/htmx.min.js|htmx.min.js"
  "htmx.org|LICENSE|htmx.org.LICENSE"
  "hls.js|dist/hls.min.js|hls.min.js"
  "hls.js|LICENSE|hls.js.LICENSE"
  "tus-js-client|dist/tus.min.js|tus.min.js"
  "tus-js-client|LICENSE|tus-js-client.LICENSE"
  "chart.js|dist/chart.umd.min.js|chart.umd.min.js"
  "chart.js|LICENSE.md|chart.js.LICENSE"
)

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# Same rule as scripts/install-deps.sh: install when node_modules is missing or older
# than the lock.
if [ ! -d "$nm" ] || [ "$here/package-lock.json" -nt "$nm" ]; then
  command -v npm >/dev/null || { echo "vendor.sh: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
  (cd "$here" && npm ci --silent --no-audit --no-fund)
  touch "$nm"
fi

manifest() {
  echo "# package version file sha256 (written by web/vendor.sh; do not edit)"
  local entry pkg src dst version sum
  for entry in "${files[@]}"; do
    IFS='|' read -r pkg src dst <<<"$entry"
    version="$(node -p "require('$nm/$pkg/package.json').version")"
    sum="$(sha256sum "$nm/$pkg/$src" | cut -d' ' -f1)"
    echo "$pkg $version $dst $sum"
  done
}

if [ "$check" -eq 0 ]; then
  mkdir -p "$out"
  for entry in "${files[@]}"; do
    IFS='|' read -r pkg src dst <<<"$entry"
    cp "$nm/$pkg/$src" "$out/$dst"
  done
  manifest >"$out/VERSIONS"
  exit 0
fi

bad=0
for entry in "${files[@]}"; do
  IFS='|' read -r pkg src dst <<<"$entry"
  if [ ! -f "$out/$dst" ]; then
    echo "vendor.sh: web/assets/vendor/$dst is missing (run web/vendor.sh)" >&2; bad=1
  elif ! cmp -s "$nm/$pkg/$src" "$out/$dst"; then
    echo "vendor.sh: web/assets/vendor/$dst differs from $pkg/$src (run web/vendor.sh)" >&2; bad=1
  fi
done
if ! manifest | cmp -s - "$out/VERSIONS"; then
  echo "vendor.sh: web/assets/vendor/VERSIONS is stale (run web/vendor.sh)" >&2; bad=1
fi
exit "$bad"
