#!/usr/bin/env bash
# Rebuild the shipped default bundle (edge/models/default) from ../shared/data on a CPU.
#   scripts/build_default_model.sh            # DATA=../shared/data PY=.venv/bin/python WORK=runs/default
# Train (recipe edgenet, seed 1234; resumable: rerun to continue) -> full-int8 bundle -> held-out figures.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-runs/default}
resume=()
[ -f "$WORK/model.work/state.json" ] && resume=(--resume)
"$PY" -m edge train --data "$DATA/fer2013" --genki "$DATA/genki4k" --recipe edgenet --seed 1234 \
    --out "$WORK/model.keras" "${resume[@]}"
"$PY" scripts/ship_default_model.py "$WORK/model.keras" edge/models/default --data "$DATA"
