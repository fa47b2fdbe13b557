#!/usr/bin/env bash
# Rebuild the shipped default bundle (edge/models/default) from ../shared/data on a CPU.
#   scripts/build_default_model.sh            # DATA=../shared/data PY=.venv/bin/python WORK=runs/default
# 1. train edgenet (12 epochs, seed 1234)  2. structured pruning of the last block's inner width 192 -> 96
# + 2 fine-tuning epochs (int8 bundle under 1 MB)  3. full-int8 bundle + held-out figures (VALIDATION.md).
# Each stage is resumable: rerun the script to continue an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-runs/default}
common=(--data "$DATA/fer2013" --genki "$DATA/genki4k" --recipe edgenet --seed 1234)
stage() {  # stage OUT ARGS...: train unless OUT exists; resume a started run
    local out=$1; shift
    [ -f "$out" ] && return 0
    local resume=()
    [ -f "${out%.keras}.work/state.json" ] && resume=(--resume)
    "$PY" -m edge train "${common[@]}" --out "$out" "${resume[@]}" "$@"
}
stage "$WORK/base.keras"
stage "$WORK/model.keras" --init-from "$WORK/base.work/best.keras" --mid-channels 64,128,128,96 \
    --epochs 2 --lr 3e-4 --warmup-epochs 0.1
"$PY" scripts/ship_default_model.py "$WORK/model.keras" edge/models/default --data "$DATA"
