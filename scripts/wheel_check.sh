#!/usr/bin/env bash
# Build the wheel, install it into a brand-new venv, and run a small evaluation
# from outside the source tree, so a packaging mistake (missing package data,
# a wrong package-dir mapping) fails here rather than on a user's machine.
set -euo pipefail
PY=${1:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m build --wheel --outdir "$work/dist" "$root" >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/knowgen-*.whl
cd "$work"
"$work/venv/bin/python" - <<'PY'
import sys
import knowgen, knowgen.envs, knowgen.agents, knowgen.reference_policies, knowgen.leaderboard
assert "torch" not in sys.modules, "import knowgen must not import torch"
print("imports ok:", knowgen.__file__)
PY
"$work/venv/bin/knowgen" eval --policy oracle --limit 3 --run-dir "$work/run" --no-progress \
    --benchmark "world:cache_dir=$work/cache"
test -s "$work/run/results.json"
test -s "$work/run/summary.json"
echo "wheel check passed"
