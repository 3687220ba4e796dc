#!/usr/bin/env bash
# Refresh the console's vendored front-end libraries from the npm registry (npm pack): dagre
# (graph layout) and Chart.js (charts). They are committed under console/static/console/vendor/
# so the console works offline; run this by hand to move to newer versions, then update the
# file names in console/templates/console/*.html.
set -euo pipefail
cd "$(dirname "$0")/.."
out=console/static/console/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @dagrejs/dagre@1 chart.js@4 >/dev/null)
for tgz in "$work"/*.tgz; do mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"; done
dagre=$(ls -d "$work"/dagrejs-dagre-*/ | head -1); chart=$(ls -d "$work"/chart.js-*/ | head -1)
dv=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$dagre/package/package.json")
cv=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$chart/package/package.json")
cp "$dagre/package/dist/dagre.min.js" "$out/dagre-$dv.min.js"
cp "$dagre/package/LICENSE" "$out/LICENSE-dagre"
cp "$chart/package/dist/chart.umd.min.js" "$out/chart-$cv.umd.min.js"
cp "$chart/package/LICENSE.md" "$out/LICENSE-chart.js.md"
echo "vendored dagre $dv and Chart.js $cv into $out"
