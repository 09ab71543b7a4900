#!/usr/bin/env bash
# The README's agent results table: the reference policies and the tiny agent at each
# training stage, on the same even-stride subset of the world's test split (entities never
# seen in training). Usage: bash scripts/agent_results.sh [LIMIT] [OUT]
# Expects the checkpoints of the README's "Training the agent" commands: SFT in
# runs/tiny/sft/final, GRPO with the dual reward in runs/tiny/grpo/final, with the image
# reward only (grpo.alpha=0) in runs/tiny-image and the text reward only (grpo.alpha=1) in
# runs/tiny-text. Rows whose checkpoint is missing are skipped.
set -euo pipefail
LIMIT=${1:-90}
OUT=${2:-runs/agent-results}
KG=${KNOWGEN:-knowgen}
mkdir -p "$OUT"
run() {  # name policy-spec
  if [ -f "$OUT/$1/summary.json" ]; then echo "$1: done"; return; fi
  "$KG" eval --policy "$2" --limit "$LIMIT" --run-dir "$OUT/$1" --no-progress
}
run direct direct
run scripted scripted
run oracle oracle
agent() {  # name checkpoint-folder
  if [ -d "$2" ]; then run "$1" "transformers:path=$2,device=cpu"; else echo "$1: no $2, skipped"; fi
}
agent tiny-sft runs/tiny/sft/final
agent tiny-grpo-dual runs/tiny/grpo/final
agent tiny-grpo-image runs/tiny-image/grpo/final
agent tiny-grpo-text runs/tiny-text/grpo/final
run gen-searcher-tiny gen-searcher-tiny
"$KG" compare "$OUT"/*/ --title "World test split, $LIMIT tasks: reference policies and the tiny agent"
