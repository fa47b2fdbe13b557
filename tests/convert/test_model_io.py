"""Every input format loads and converts: Keras 3, legacy h5 (fixtures), SavedModels of both kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError


def test_formats_are_recognised(legacy_h5: Path, keras3_model: Path) -> None:
    from convert.model_io import load_model

    a, b = load_model(legacy_h5), load_model(keras3_model)
    assert (a.framework, a.input_size, a.channels, a.n_outputs, a.output) == ("tf_keras", 48, 1, 7, "probabilities")
    assert (b.framework, b.n_outputs) == ("keras3", 7)


def test_keras3_export_savedmodel_converts_through_its_signature(keras3_model: Path, tmp_path: Path) -> None:
    import keras

    from convert.model_io import load_model
    from convert.quantize import load_test, to_tflite

    keras.saving.load_model(keras3_model).export(str(tmp_path / "sm"), verbose=False)
    src = load_model(tmp_path / "sm")
    assert src.framework == "saved_model" and src.input_size == 48 and src.output == "probabilities"
    x = np.random.default_rng(0).random((8, 48, 48, 1), dtype=np.float32)
    data = to_tflite(None, "int8", representative=x, saved_model_dir=src.path)
    assert load_test(data, (48, 48, 1)).ok
    np.testing.assert_allclose(src.predict(x).sum(1), 1.0, atol=1e-4)


def test_tf_keras_savedmodel_loads_as_keras(legacy_h5: Path, tmp_path: Path) -> None:
    import tf_keras

    from convert.model_io import load_model

    tf_keras.models.load_model(legacy_h5).save(tmp_path / "sm2", save_format="tf")
    assert load_model(tmp_path / "sm2").framework == "tf_keras"


def test_weights_only_h5_and_unknown_suffix_are_explained(legacy_h5: Path, tmp_path: Path) -> None:
    import tf_keras

    from convert.model_io import load_model

    w = tmp_path / "w.weights.h5"
    tf_keras.models.load_model(legacy_h5).save_weights(w)
    with pytest.raises(ConfigError, match="weights only"):
        load_model(w)
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ConfigError, match="unknown model format"):
        load_model(tmp_path / "m.onnx")


def test_uint8_io_gives_uint8_tensors(keras3_model: Path) -> None:
    from convert.model_io import load_model
    from convert.quantize import to_tflite
    from edge.runtime import TFLiteModel

    x = np.random.default_rng(1).random((8, 48, 48, 1), dtype=np.float32)
    data = to_tflite(load_model(keras3_model).model, "int8", representative=x, io_type="uint8")
    with TFLiteModel(data) as m:
        assert m.input.dtype == np.uint8 and m.outputs[0].dtype == np.uint8
