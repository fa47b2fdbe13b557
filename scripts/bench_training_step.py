"""Time training steps of a recipe's model with stock and with fused BatchNorm, on this CPU.

    python scripts/bench_training_step.py [--recipe edgenet] [--steps 20] [--rounds 3]

Each round trains a fresh model for ``--steps`` steps on random 48 px images,
once with each BatchNorm. The two runs alternate, so a noisy shared host slows
both alike. The script prints ms per step for each run and the median ratio.

The batches come from a ``tf.data`` pipeline with autotuning off, as in ``train``:
fed numpy arrays, Keras builds an autotuned pipeline, and with it the steps of
this project's 2-core host often ran on one core (about 2x slower, ~114 % CPU),
which made earlier runs of this script compare a slow mode with a fast one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def step_ms(recipe_name: str, fused: bool, steps: int, precision: str) -> float:
    """Milliseconds per training step (after 3 warm-up steps) of a fresh model."""
    import keras
    import numpy as np
    import tensorflow as tf

    from convert.fused_batchnorm import fused_batchnorm
    from convert.recipes import build_model, get_recipe
    from convert.train import without_autotuning

    keras.mixed_precision.set_global_policy(precision)
    r = get_recipe(recipe_name)
    with fused_batchnorm(enabled=fused):
        model = build_model(r, 7)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.random((r.batch_size * (steps + 3), r.input_size, r.input_size, 1), dtype=np.float32)
        y = rng.integers(0, 7, len(x))
        warm = r.batch_size * 3

        def batches(lo: int, hi: int):
            return without_autotuning(
                tf.data.Dataset.from_tensor_slices((x[lo:hi], y[lo:hi])).batch(r.batch_size).prefetch(2))

        model.fit(batches(0, warm), epochs=1, verbose=0, shuffle=False)
        t0 = time.perf_counter()
        model.fit(batches(warm, len(x)), epochs=1, verbose=0, shuffle=False)
        return (time.perf_counter() - t0) / steps * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="edgenet")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="auto", help="auto | float32 | mixed_bfloat16")
    a = ap.parse_args()
    from convert.train import resolve_precision

    precision = resolve_precision(a.precision)
    print(f"recipe {a.recipe}, {precision}, {os.cpu_count()} CPUs, {a.steps} steps per run")
    ratios = []
    for i in range(a.rounds):
        stock = step_ms(a.recipe, False, a.steps, precision)
        fused = step_ms(a.recipe, True, a.steps, precision)
        ratios.append(stock / fused)
        print(f"round {i + 1}: stock {stock:6.0f} ms/step   fused {fused:6.0f} ms/step   x{stock / fused:.2f}")
    print(f"median speed-up x{statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
