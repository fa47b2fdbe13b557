"""A tiny int8 classifier made in the test run (no trained model is committed for tests).

Needs TensorFlow (the [convert] extra); tests that use it skip without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FER7_VALENCE = {
    "angry": "negative", "disgust": "negative", "fear": "negative", "happy": "positive",
    "sad": "negative", "surprise": "neutral", "neutral": "neutral",
}


def tiny_int8_tflite(size: int = 48, classes: int = 7, seed: int = 0) -> bytes:
    """A random-weight 48x48 gray CNN converted to full int8 (int8 I/O)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((size, size, 1))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = tf.keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(classes, activation="softmax")(x)
    model = tf.keras.Model(inp, out)
    from convert.quantize import to_tflite

    rep = np.random.default_rng(seed).random((20, size, size, 1), dtype=np.float32)
    return to_tflite(model, "int8", representative=rep)


def make_tiny_bundle(out: Path, include_detector: bool = True) -> Path:
    from convert.bundle_writer import write_bundle
    from edge.preprocess import PreprocessSpec

    return write_bundle(
        out,
        tiny_int8_tflite(),
        bundle_id="tiny-test",
        preprocess=PreprocessSpec(input_size=48, color="gray", scale="zero_one", margin=0.1),
        classes=FER7,
        valence=FER7_VALENCE,
        include_detector=include_detector,
    )
