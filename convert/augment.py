"""Batched, vectorised training augmentation (TensorFlow ops, runs inside tf.data).

One random affine per image (rotation, shift, zoom, horizontal flip) is applied
with a single ``ImageProjectiveTransformV3`` call per batch, then photometric
jitter (brightness, contrast, gaussian noise) and optional random erasing, all
as whole-batch tensor ops: no per-image Python, which matters on a CPU.
Inputs and outputs are float32 ``(B, S, S, C)`` in [0, 1]. Given a key, every
random draw is stateless and derived from it, so training can be bit-reproducible.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class AugmentSpec(BaseModel):
    """Augmentation strengths; stored with the recipe in the training record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flip: bool = True
    rotation_deg: float = Field(15.0, ge=0, le=45)
    shift: float = Field(0.1, ge=0, le=0.3, description="max translation, fraction of the side")
    zoom: float = Field(0.15, ge=0, le=0.5, description="scale drawn from [1-zoom, 1+zoom]")
    brightness: float = Field(0.2, ge=0, le=0.5, description="additive, in [0, 1] pixel units")
    contrast: float = Field(0.3, ge=0, le=0.9, description="factor drawn from [1-c, 1+c] around the image mean")
    noise: float = Field(0.02, ge=0, le=0.2, description="std of gaussian pixel noise (max; drawn per image)")
    erase: float = Field(0.0, ge=0, le=1, description="probability of erasing one random rectangle")


def _draws(seed):
    """Stateless ``(uniform, normal)`` samplers for ``seed`` (an int ``[2]`` key): every draw gets its own
    key folded from it, so a batch's augmentation depends on its key only, not on which of tf.data's
    parallel map calls runs first (TensorFlow's global RNG made training runs differ)."""
    import itertools

    import tensorflow as tf

    counter = itertools.count()  # runs at trace time: the k-th draw in the code gets key k
    key = lambda: tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), next(counter))
    uniform = lambda shape, lo=0.0, hi=1.0: tf.random.stateless_uniform(shape, key(), lo, hi)
    normal = lambda shape: tf.random.stateless_normal(shape, key())
    return uniform, normal


def augment_batch(x, spec: AugmentSpec, seed):
    """Augment a float32 batch ``(B, S, S, C)`` in [0, 1]; ``seed``: an int ``[2]`` key that fixes every draw."""
    import tensorflow as tf

    uniform, normal = _draws(seed)
    b = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    c = (size - 1.0) / 2.0
    u = lambda lo, hi: uniform([b], lo, hi)
    ang = u(-1.0, 1.0) * (spec.rotation_deg * math.pi / 180.0)
    scale = u(1.0 - spec.zoom, 1.0 + spec.zoom)
    tx = u(-spec.shift, spec.shift) * size
    ty = u(-spec.shift, spec.shift) * size
    flip = tf.where(u(0.0, 1.0) < 0.5, -1.0, 1.0) if spec.flip else tf.ones([b])
    # Output pixel p maps to input pixel  R(ang) * diag(flip, 1) * (p - c) / scale + c - t.
    cos, sin = tf.cos(ang) / scale, tf.sin(ang) / scale
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = c - a0 * c - a1 * c - tx
    b2 = c - b0 * c - b1 * c - ty
    zeros = tf.zeros([b])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    out_shape = tf.shape(x)[1:3]
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=out_shape, fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT",
    )
    if spec.contrast > 0:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        f = tf.reshape(u(1.0 - spec.contrast, 1.0 + spec.contrast), [-1, 1, 1, 1])
        x = (x - mean) * f + mean
    if spec.brightness > 0:
        x = x + tf.reshape(u(-spec.brightness, spec.brightness), [-1, 1, 1, 1])
    if spec.noise > 0:
        std = tf.reshape(u(0.0, spec.noise), [-1, 1, 1, 1])
        x = x + normal(tf.shape(x)) * std
    if spec.erase > 0:
        x = _erase(x, spec.erase, uniform)
    return tf.clip_by_value(x, 0.0, 1.0)


def _erase(x, p: float, uniform):
    """Random erasing: with probability ``p`` one rectangle (2-25 % of the area) becomes noise."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    s = tf.shape(x)[1]
    sf = tf.cast(s, tf.float32)
    area = uniform([b], 0.02, 0.25) * sf * sf
    aspect = tf.exp(uniform([b], math.log(0.3), math.log(3.3)))
    h = tf.minimum(tf.sqrt(area * aspect), sf)
    w = tf.minimum(tf.sqrt(area / aspect), sf)
    y0 = uniform([b]) * (sf - h)
    x0 = uniform([b]) * (sf - w)
    grid = tf.cast(tf.range(s), tf.float32)
    in_y = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
    in_x = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
    on = uniform([b]) < p
    mask = in_y[:, :, None] & in_x[:, None, :] & on[:, None, None]
    noise = uniform(tf.shape(x))
    return tf.where(mask[..., None], noise, x)
