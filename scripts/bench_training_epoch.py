"""Wall time of training epochs with tf.data autotuning on and off, on this CPU.

    python scripts/bench_training_epoch.py [--recipe edgenet] [--steps 60] [--epochs 6]

Trains one model on random 48 px faces through ``convert.train.epoch_dataset``,
one ``fit`` call per epoch as ``train`` does, alternating autotune on and off.
For each epoch it prints the time spent in training steps and the time ``fit``
took to return after its last step (the iterator teardown), then the totals.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="edgenet")
    ap.add_argument("--steps", type=int, default=60, help="steps per epoch")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per setting")
    a = ap.parse_args()

    import keras
    import numpy as np

    from convert.fused_batchnorm import fused_batchnorm
    from convert.recipes import build_model, get_recipe
    from convert.train import epoch_dataset, partial_label_loss, resolve_precision

    precision = resolve_precision("auto")
    keras.mixed_precision.set_global_policy(precision)
    r = get_recipe(a.recipe)
    rng = np.random.default_rng(0)
    n = r.batch_size * a.steps
    x = rng.integers(0, 256, (n, r.input_size, r.input_size), dtype=np.uint8)
    mask = np.eye(7, dtype=np.float32)[rng.integers(0, 7, n)]
    w = np.ones(n, np.float32)

    class Marks(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.first = time.perf_counter()

        def on_train_end(self, logs=None):
            self.last = time.perf_counter()

    print(f"recipe {a.recipe}, {precision}, {os.cpu_count()} CPUs, {a.steps} steps per epoch")
    totals: dict[bool, list[float]] = {True: [0.0, 0.0], False: [0.0, 0.0]}
    with fused_batchnorm():
        model = build_model(r, 7)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=partial_label_loss(0.1))
        warm = r.batch_size * 3
        model.fit(epoch_dataset(x[:warm], mask[:warm], w[:warm], r, 0, 0), epochs=1, verbose=0)  # trace outside timings
        for epoch in range(2 * a.epochs):
            autotune = epoch % 2 == 0
            marks = Marks()
            ds = epoch_dataset(x, mask, w, r, 0, epoch, autotune=autotune)
            model.fit(ds, epochs=1, verbose=0, callbacks=[marks])
            done = time.perf_counter()
            steps_s, teardown_s = marks.last - marks.first, done - marks.last
            totals[autotune][0] += steps_s
            totals[autotune][1] += teardown_s
            print(f"epoch {epoch + 1:2d} autotune {'on ' if autotune else 'off'}  steps {steps_s:5.1f} s  "
                  f"teardown {teardown_s:5.1f} s", flush=True)
    for autotune in (True, False):
        steps_s, teardown_s = totals[autotune]
        print(f"autotune {'on ' if autotune else 'off'}: {a.epochs} epochs, steps {steps_s:6.1f} s, "
              f"teardown {teardown_s:6.1f} s, wall {steps_s + teardown_s:6.1f} s")


if __name__ == "__main__":
    main()
