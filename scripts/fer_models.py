"""Make the two models the convert stage's figures are measured on (docs/convert.md).

    python scripts/fer_models.py legacy-h5 OUT.h5   # "trained elsewhere": tf-keras, legacy .h5,
                                                    # 56 px gray in [-1, 1], preprocessing outside the model
    python scripts/fer_models.py keras3 OUT.keras   # ours: Keras 3, 48 px gray in [0, 1]

Both train briefly on FER2013 train (../shared/data) on the CPU; they stand in for real
models, the point is what conversion does to them, not their accuracy.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DATA = Path(os.environ.get("EMOTION_EDGE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def load(split: str, size: int, per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    xs, ys = [], []
    for i, c in enumerate(FER7):
        for p in sorted((DATA / "fer2013" / split / c).glob("*.jpg"))[:per_class]:
            im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if size != im.shape[0]:
                im = cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR)
            xs.append(im)
            ys.append(i)
    return np.array(xs, np.uint8)[..., None], np.array(ys)


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips and shifts of up to 3 px, in numpy so nothing of it ends up in the model."""
    out = x.copy()
    flip = rng.random(len(x)) < 0.5
    out[flip] = out[flip, :, ::-1]
    for i in range(len(out)):
        dy, dx = rng.integers(-3, 4, 2)
        out[i] = np.roll(out[i], (dy, dx), axis=(0, 1))
    return out


def net(k, size: int, widths: tuple[int, ...], dense: int, bn: bool = True):  # type: ignore[no-untyped-def]
    inp = k.Input((size, size, 1))
    x = inp
    for f in widths:
        for _ in range(2):
            if bn:
                x = k.layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
                x = k.layers.BatchNormalization(momentum=0.9)(x)
                x = k.layers.ReLU()(x)
            else:
                x = k.layers.Conv2D(f, 3, padding="same", activation="relu", kernel_initializer="he_normal")(x)
        x = k.layers.MaxPooling2D()(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dropout(0.3)(x)
    x = k.layers.Dense(dense, activation="relu")(x)
    return k.Model(inp, k.layers.Dense(len(FER7), activation="softmax")(x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("legacy-h5", "keras3"))
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=None)
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rng = np.random.default_rng(0)
    if a.kind == "legacy-h5":
        import tf_keras as k

        size, scale = 56, lambda u: u.astype(np.float32) / 127.5 - 1.0
        # A brief run needs many small steps: batch 32, and BN statistics that settle fast (momentum 0.9).
        epochs, per_class, widths, dense, bn, batch = a.epochs or 4, a.per_class or 2000, (24, 48, 96), 96, True, 32
    else:
        import keras as k  # type: ignore[no-redef]

        size, scale = 48, lambda u: u.astype(np.float32) / 255.0
        epochs, per_class, widths, dense, bn, batch = a.epochs or 8, a.per_class, (32, 64, 128, 192), 128, True, 128
    k.utils.set_random_seed(0)
    x, y = load("train", size, per_class)
    xv, yv = load("val", size, None)
    m = net(k, size, widths, dense, bn)
    steps = epochs * int(np.ceil(len(x) / batch))
    lr = k.optimizers.schedules.CosineDecay(1e-3, steps, alpha=0.1)
    m.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.time()
    for e in range(epochs):
        h = m.fit(scale(augment(x, rng)), y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
        va = m.evaluate(scale(xv), yv, verbose=0)[1]
        print(f"epoch {e + 1}/{epochs}: loss {h.history['loss'][0]:.3f} val acc {100 * va:.1f}% "
              f"({time.time() - t0:.0f} s)", flush=True)
    print(f"{m.count_params():,} parameters")
    m.save(a.out)


if __name__ == "__main__":
    main()
