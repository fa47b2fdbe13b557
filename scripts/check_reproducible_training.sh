#!/usr/bin/env bash
# Train the same short run twice and compare the weights: 0.0 means training is bit-reproducible here.
#   scripts/check_reproducible_training.sh            # DATA=../shared/data PY=.venv/bin/python EPOCHS=1
# Augmentation is keyed per (seed, epoch, batch) (convert/augment.py); before that, thread timing in
# tf.data's parallel map calls changed which batch got which random draws (max difference 8.8 after 1 epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in a b; do
    "$PY" -m edge train --data "$DATA/fer2013" --genki "$DATA/genki4k" --recipe edgenet --seed 7 \
        --epochs "$EPOCHS" --out "$tmp/$run.keras" | grep '^epoch'
done
"$PY" - "$tmp" <<'PY'
import sys

import keras
import numpy as np

a, b = (keras.models.load_model(f"{sys.argv[1]}/{r}.work/last.keras", compile=False).get_weights() for r in "ab")
diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
print(f"max abs weight difference between the two runs: {diff:g}")
sys.exit(0 if diff == 0.0 else 1)
PY
