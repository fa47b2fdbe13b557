#!/usr/bin/env bash
# Rebuild the shipped default bundle (edge/models/default) from ../shared/data on a CPU.
#   scripts/build_default_model.sh            # DATA=../shared/data PY=.venv/bin/python WORK=runs/default
# 1. train edgenet at its shipped width (last block's inner width 96, so the int8 bundle stays under 1 MB) for
# 80 epochs, seed 1234, dropout 0.1 before the logits and no SpatialDropout (session 8), then 16 epochs at a
# constant lr 3e-4 whose weights are averaged (SWA, session 13; BatchNorm recomputed), and ship that average (val is
# only watched). Every residual branch has an ECA channel-attention gate (`--eca`, session 14: 18 weights, 12 kB of
# int8 file, about 0.06 ms). AdamW (lr 2e-3), named here since edgenet's default became Nesterov SGD (session 10),
# with decoupled weight decay 0.2 (session 18: ten times sessions 8-17's 0.02; in a 4-seed PyTorch study the 7-class
# seed mean rose 0.7 points, 1.7 with SWA over 2 seeds; docs/training.md).
# About 77 min end to end on a 2-core AMD EPYC (Zen 5) (session 14), 94 min on session 18's slower Xeon, 85 min on
# that Xeon with val scored every 8th epoch (session 19, which wrote a byte-identical classifier.tflite).
# Peer heads (`--peer-heads 192,96`, session 11) cost 16 min more and did not help over two seeds (session 12,
# docs/training.md), so the build does not use them.
# Training this width from scratch beat pruning the full-width model 192 -> 96 + 2 distilled epochs on every
# figure (session 7, docs/training.md); `--init-from ... --mid-channels` still does that pruning.
# 2. `emotion-edge calibrate` + `convert` (full int8, gate, confidence calibration, report)
# 3. training record + held-out figures into bundle.json and VALIDATION.md.
# Val is scored after every 8th epoch only (`--val-every 8`, session 19: about 5 s an epoch on this 2-core host; the
# weights do not depend on it), and after epochs 80 and 96.
# Training is resumable: rerun the script to continue an interrupted run.
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
stage "$WORK/model.keras" --mid-channels 64,128,128,96 --dropout 0.1 --spatial-dropout 0 \
    --optimizer adamw --lr 2e-3 --weight-decay 0.2 --swa-epochs 16 --swa-lr 3e-4 --eca --val-every 8
"$PY" -m edge calibrate "$DATA/fer2013/train" --for "size=48,color=gray,margin=0.15,shift_y=-0.1" \
    --out "$WORK/calib.npz"
"$PY" -m edge convert "$WORK/model.keras" --labels fer7 --calib "$WORK/calib.npz" --eval "$DATA/fer2013/val" \
    --no-detector --id fer7-edgenet-int8 --out "$WORK/bundle"
mkdir -p edge/models/default
cp "$WORK/bundle/classifier.tflite" "$WORK/bundle/bundle.json" edge/models/default/
sed '/^!\[.*\.png)$/d' "$WORK/bundle/report.md" > edge/models/default/report.md   # plots stay in $WORK/bundle
"$PY" scripts/ship_default_model.py "$WORK/model.keras" edge/models/default --data "$DATA" --skip-quantize
