"""The fused BatchNorm patch computes what stock Keras BatchNormalization computes.

Checked in float32 and in mixed bfloat16: training outputs, gradients of every
weight, the moving statistics after a step, and inference outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import have_tensorflow

pytestmark = pytest.mark.skipif(not have_tensorflow(), reason="TensorFlow ([convert] extra) is not installed")


@pytest.fixture
def policy(request):
    import keras

    old = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(old)


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization(momentum=0.9, beta_initializer="random_normal", gamma_initializer="random_uniform")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(6, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization(momentum=0.95, center=False)(x)
    x = L.ReLU()(x)  # without it the pooled, normalised output sums to zero and most gradients vanish
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(3, dtype="float32")(x))


def _step(model, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_sum(tf.square(out) * tf.constant([1.0, -2.0, 0.5]))
    grads = tape.gradient(loss, model.trainable_variables)
    moving = [v.numpy() for v in model.non_trainable_variables]
    return out.numpy(), [g.numpy() for g in grads], moving, model(x, training=False).numpy()


@pytest.mark.parametrize(("policy", "tol"), [("float32", 1e-4), ("mixed_bfloat16", 3e-2)], indirect=["policy"])
def test_fused_matches_stock(policy, tol):
    from convert.fused_batchnorm import fused_batchnorm

    x = np.random.default_rng(3).normal(1.0, 2.0, (16, 12, 12, 3)).astype(np.float32)
    stock = _step(_model(7), x)
    with fused_batchnorm() as active:
        assert active
        fused = _step(_model(7), x)
    out_s, grads_s, moving_s, infer_s = stock
    out_f, grads_f, moving_f, infer_f = fused
    np.testing.assert_allclose(out_f, out_s, rtol=tol, atol=tol)
    assert len(grads_f) == len(grads_s) == 7  # 2 convs, gamma+beta, gamma, dense kernel+bias
    for gf, gs in zip(grads_f, grads_s):
        np.testing.assert_allclose(gf, gs, rtol=tol, atol=tol * max(1.0, float(np.abs(gs).max())))
    for mf, ms in zip(moving_f, moving_s):
        np.testing.assert_allclose(mf, ms, rtol=1e-4, atol=1e-5)  # statistics stay float32 either way
    assert not np.allclose(moving_s[0], 0.0)  # the step did update the moving mean
    np.testing.assert_allclose(infer_f, infer_s, rtol=tol, atol=tol)


def test_patch_is_scoped_and_saved_models_stay_plain_keras(tmp_path):
    import keras

    from convert.fused_batchnorm import fused_batchnorm

    stock = keras.layers.BatchNormalization.call
    with fused_batchnorm():
        assert keras.layers.BatchNormalization.call is not stock
        model = _model(1)
        model.save(tmp_path / "m.keras")
    assert keras.layers.BatchNormalization.call is stock
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in loaded.layers].count("BatchNormalization") == 2
    with fused_batchnorm(enabled=False) as active:
        assert not active
        assert keras.layers.BatchNormalization.call is stock
