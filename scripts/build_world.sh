#!/usr/bin/env bash
# Rebuild knowgen/world/data from its upstream packages: countryinfo (PyPI),
# flag-icons and simple-icons (npm). Maintainers only; users get the built world.
set -euo pipefail
PY=${1:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
npm_dir=$(mktemp -d)
trap 'rm -rf "$npm_dir"' EXIT
(cd "$npm_dir" && npm install --silent --no-audit --no-fund flag-icons@7.5.0 simple-icons@16.37.0 >/dev/null)
"$PY" -m knowgen.world.builder --npm-dir "$npm_dir/node_modules" --out "$root/knowgen/world/data"
