"""Build an untrained bundle whose classifier has the shape of a real one, for speed figures.

    .venv/bin/python scripts/make_speed_bundle.py /tmp/speed-bundle
    .venv/bin/python -m edge bench --bundle /tmp/speed-bundle

Until a trained default bundle ships, `emotion-edge bench` needs *some* bundle;
the classifier's speed depends on its architecture, not its weights. This one is
the VGG-style baseline from the design notes (4 conv-conv-pool blocks with batch
norm, global average pooling, Dense 128; 48x48 gray; about 1.2M parameters),
converted to full int8 exactly as `convert` does, with random weights.
Needs TensorFlow (the [convert] extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def vgg_int8(size: int = 48, classes: int = 7, seed: int = 0) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    inp = tf.keras.Input((size, size, 1))
    x = inp
    for filters in (32, 64, 128, 256):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, activation="relu")(x)
    out = layers.Dense(classes, activation="softmax")(x)
    model = tf.keras.Model(inp, out)
    from convert.quantize import to_tflite

    rep = np.random.default_rng(seed).random((30, size, size, 1), dtype=np.float32)
    return to_tflite(model, "int8", representative=rep)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="bundle directory to write")
    args = ap.parse_args()
    from tiny_model import FER7, FER7_VALENCE

    from convert.bundle_writer import write_bundle
    from edge.preprocess import PreprocessSpec

    path = write_bundle(
        args.out,
        vgg_int8(),
        bundle_id="speed-vgg-untrained",
        preprocess=PreprocessSpec(input_size=48, color="gray", scale="zero_one", margin=0.1),
        classes=FER7,
        valence=FER7_VALENCE,
        provenance={"note": "random weights: for speed measurements only, predictions are meaningless"},
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
