"""Fused BatchNorm for Keras 3 training on the TensorFlow backend.

Keras 3 computes ``BatchNormalization`` from unfused ops: it casts a bf16
activation to float32, takes ``tf.nn.moments`` and normalises element-wise, and
autodiff differentiates each of those ops. On a 2-core CPU that made BatchNorm
about half of an edgenet training step, while the convolutions (oneDNN on AMX)
took the rest. ``FusedBatchNormV3`` does the same maths in one oneDNN kernel per
direction, and it reads bf16 activations with float32 statistics.

The patch changes only how ``call`` computes. The layer class, its weights and
its config stay the same, so saved ``.keras`` files are plain Keras. Layers that
use masks, renorm, synchronisation or a non-channel-last axis keep the stock
path. ``scripts/bench_training_step.py`` measures the speed-up, and
``tests/convert/test_fused_batchnorm.py`` checks that the outputs, the gradients
and the moving statistics match the stock layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def _fused_call(stock):
    import keras
    import tensorflow as tf

    def call(self, inputs, training=None, mask=None):
        if (mask is not None or self.renorm or self.synchronized or len(inputs.shape) != 4
                or self.axis not in (-1, 3)):
            return stock(self, inputs, training=training, mask=mask)
        c = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([c])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([c])
        if training and self.trainable:
            empty = tf.constant([], tf.float32)
            y, mean, var, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty,
                epsilon=self.epsilon, is_training=True)
            # The op returns the unbiased batch variance; Keras keeps the biased one.
            n = tf.cast(tf.size(inputs) // c, tf.float32)
            var = var * ((n - 1.0) / n)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
        else:
            y, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta,
                mean=tf.cast(self.moving_mean, tf.float32), variance=tf.cast(self.moving_variance, tf.float32),
                epsilon=self.epsilon, is_training=False)
        return keras.ops.cast(y, self.compute_dtype)

    return call


@contextlib.contextmanager
def fused_batchnorm(enabled: bool = True) -> Iterator[bool]:
    """Within the block, Keras ``BatchNormalization`` layers compute with ``FusedBatchNormV3``.

    Yields whether the patch is active. It is inactive when ``enabled`` is False
    or the Keras backend is not TensorFlow. Graphs traced inside the block keep
    the fused op after it ends, so build and fit the model inside it.
    """
    import keras

    if not enabled or keras.backend.backend() != "tensorflow":
        yield False
        return
    cls = keras.layers.BatchNormalization
    stock = cls.call
    cls.call = _fused_call(stock)
    try:
        yield True
    finally:
        cls.call = stock
