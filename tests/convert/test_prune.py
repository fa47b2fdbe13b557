"""Pruning: the schedule really prunes, per-layer sparsity is measured, both Keras generations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convert.prune import magnitude_mask, polynomial_sparsity
from edge.errors import ConfigError


def test_magnitude_mask_zeroes_exactly_the_smallest_share() -> None:
    w = np.random.default_rng(0).normal(size=(3, 3, 8, 16)).astype(np.float32)
    m = magnitude_mask(w, 0.5)
    assert m.sum() == w.size // 2
    assert np.abs(w[m == 0]).max() <= np.abs(w[m == 1]).min()
    ties = np.ones(10, np.float32)
    assert magnitude_mask(ties, 0.3).sum() == 7


def test_polynomial_schedule_matches_tfmot_end_points() -> None:
    assert polynomial_sparsity(0, 100, 0.5) == 0.0
    assert polynomial_sparsity(100, 100, 0.5) == pytest.approx(0.5)
    assert polynomial_sparsity(500, 100, 0.5) == pytest.approx(0.5)
    assert 0.0 < polynomial_sparsity(20, 100, 0.5) < polynomial_sparsity(40, 100, 0.5) < 0.5


def _train_data(size: int, scale: str) -> tuple[np.ndarray, np.ndarray]:
    from support import fer_subset

    return fer_subset("train", 30, scale)


@pytest.mark.parametrize("which", ["keras3", "legacy"])
def test_finetune_pruning_reaches_the_target_in_every_layer(which: str, request: pytest.FixtureRequest) -> None:
    from convert.model_io import load_model
    from convert.prune import prune_model
    from convert.quantize import load_test, to_tflite

    path: Path = request.getfixturevalue("keras3_model" if which == "keras3" else "legacy_h5")
    src = load_model(path)
    x, y = _train_data(48, "zero_one" if which == "keras3" else "minus1to1")
    model, rep = prune_model(src, 0.5, train=(x, y), epochs=2, frequency=2, batch_size=64)
    assert rep["layers"] and all(abs(v["sparsity"] - 0.5) < 0.01 for v in rep["layers"].values()), rep
    assert ("prune_low_magnitude" in rep["method"]) == (which == "legacy")
    assert len(rep["history"]) == 2
    # The original model is untouched, and the pruned one converts to a loadable int8 model.
    assert all(np.mean(w == 0) < 0.1 for w in src.model.get_weights() if w.ndim == 4)
    data = to_tflite(model, "int8", representative=x[:20])
    assert load_test(data, x.shape[1:]).ok


def test_one_shot_pruning_without_data(keras3_model: Path) -> None:
    from convert.model_io import load_model
    from convert.prune import prune_model

    _, rep = prune_model(load_model(keras3_model), 0.6)
    assert rep["overall_sparsity"] == pytest.approx(0.6, abs=0.01)
    assert rep["method"].startswith("one-shot")


def test_a_schedule_that_would_never_fire_is_an_error(keras3_model: Path) -> None:
    from convert.model_io import load_model
    from convert.prune import prune_model

    x = np.zeros((64, 48, 48, 1), np.float32)
    with pytest.raises(ConfigError, match="never"):
        prune_model(load_model(keras3_model), 0.5, train=(x, np.zeros(64, int)), epochs=1, frequency=100)


def test_nested_export_model_prunes_inner_layers_and_keeps_frozen_ones(keras3_model: Path, tmp_path: Path) -> None:
    """The train stage exports ``softmax(model(x))`` averaged with a mirrored copy through a frozen Dense."""
    import keras

    from convert.model_io import load_model
    from convert.prune import prune_model

    inner = keras.saving.load_model(keras3_model)
    inp = keras.Input((48, 48, 1))
    mirror = keras.layers.Dense(48, use_bias=False, trainable=False, name="mirror_matrix")
    flipped = keras.layers.Permute((1, 3, 2))(mirror(keras.layers.Permute((1, 3, 2))(inp)))
    out = keras.layers.Average()([inner(inp), inner(flipped)])
    wrapper = keras.Model(inp, out)
    mirror.set_weights([np.eye(48, dtype="float32")[::-1]])
    wrapper.save(tmp_path / "export.keras")
    src = load_model(tmp_path / "export.keras")
    x, y = _train_data(48, "zero_one")
    model, rep = prune_model(src, 0.5, train=(x[:128], y[:128]), epochs=2, frequency=1, batch_size=64)
    assert "mirror_matrix" not in rep["layers"] and len(rep["layers"]) >= 3
    assert all(abs(v["sparsity"] - 0.5) < 0.01 for v in rep["layers"].values())
    kept = next(l for l in model.layers if l.name == "mirror_matrix").get_weights()[0]
    np.testing.assert_array_equal(kept, np.eye(48, dtype="float32")[::-1])
