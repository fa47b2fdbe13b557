"""Tiny FER classifiers trained in the test run on a few hundred images (skips without data / TensorFlow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Several conftest.py files exist: shared names come from tests/support.py, never `from conftest import`.
from support import DATA, FER7, ROOT, have_tensorflow  # noqa: E402,F401
from support import fer_subset as _fer  # noqa: E402


def _layers(k, x, width: int = 16):  # type: ignore[no-untyped-def]
    for f in (width, 2 * width):
        x = k.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = k.layers.MaxPooling2D()(x)
    x = k.layers.Conv2D(4 * width, 3, padding="same", activation="relu")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dense(64, activation="relu")(x)
    return k.layers.Dense(7, activation="softmax")(x)


@pytest.fixture(scope="session")
def fer_needed() -> None:
    if not (DATA / "fer2013" / "train").is_dir():
        pytest.skip(f"FER2013 not found in {DATA}")
    if not have_tensorflow():
        pytest.skip("TensorFlow ([convert] extra) is needed for convert tests")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



@pytest.fixture
def few_genki(genki_dir: Path, tmp_path: Path) -> Path:
    """The first 40 GENKI photos as a GENKI folder in tmp (links, no copies)."""
    from convert.datasets import read_genki_labels

    lines = (genki_dir / "labels.csv").read_text().splitlines()
    (tmp_path / "files").mkdir()
    (tmp_path / "labels.csv").write_text("\n".join(lines[:41]) + "\n")
    for f, _ in read_genki_labels(tmp_path):
        (tmp_path / "files" / f).symlink_to(genki_dir / "files" / f)
    return tmp_path


def _train_tiny(k, scale: str, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Train the tiny CNN for 3 epochs with Keras module ``k`` (tf_keras or keras) and save it to ``path``."""
    k.utils.set_random_seed(0)
    x, y = _fer("train", 60, scale)
    inp = k.Input((48, 48, 1))
    m = k.Model(inp, _layers(k, inp))
    m.compile(k.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=64, epochs=3, verbose=0, shuffle=True)
    m.save(path)
    return path


@pytest.fixture(scope="session")
def legacy_h5(fer_needed: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tf-keras (Keras 2) model saved as legacy .h5, preprocessing outside the model: 48px gray, [-1, 1]."""
    import tf_keras

    return _train_tiny(tf_keras, "minus1to1", tmp_path_factory.mktemp("models") / "legacy.h5")


@pytest.fixture(scope="session")
def keras3_model(fer_needed: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras 3 .keras model, 48px gray, [0, 1]."""
    import keras

    return _train_tiny(keras, "zero_one", tmp_path_factory.mktemp("models") / "k3.keras")


@pytest.fixture(scope="session")
def fer_calib(fer_needed: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from calibration.representative import build_calibration_set, save_calibration_set
    from edge.preprocess import PreprocessSpec

    cs = build_calibration_set([DATA / "fer2013" / "train"], PreprocessSpec(input_size=48, color="gray"), n=70)
    return save_calibration_set(cs, tmp_path_factory.mktemp("calib") / "calib.npz")["npz"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``edge.cli.main`` with only this stage's commands registered (others may not be installed here)."""
    from edge import cli as cli_mod

    mine = {k: v for k, v in cli_mod.COMMANDS.items() if k in ("calibrate", "convert", "eval")}
    monkeypatch.setattr(cli_mod, "COMMANDS", mine)
    return cli_mod.main
