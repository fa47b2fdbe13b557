"""Load a trained classifier made by any tool: Keras 3 ``.keras``, legacy Keras 2 ``.h5``
(through tf-keras) or a TensorFlow SavedModel directory.

TensorFlow is imported inside functions: this module is cheap to import.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.errors import ConfigError

log = logging.getLogger(__name__)

Framework = Literal["keras3", "tf_keras", "saved_model"]


@dataclass
class SourceModel:
    """A loaded model and what the rest of the convert stage needs to know about it."""

    path: Path
    framework: Framework
    model: Any  # keras.Model, tf_keras.Model, or a SavedModel signature function
    input_size: int
    channels: int
    n_outputs: int
    output: Literal["probabilities", "logits"]

    @property
    def is_keras(self) -> bool:
        return self.framework in ("keras3", "tf_keras")

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """Raw model output (probabilities or logits) for float input ``(N, S, S, C)``."""
        outs = []
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            if self.is_keras:
                y = self.model(xb, training=False)
            else:
                # Signature functions take keyword arguments only.
                y = self.model(**{self.model._emotion_edge_input: xb})
                if isinstance(y, dict):
                    y = next(iter(y.values()))
            outs.append(np.asarray(y, np.float32))
        return np.concatenate(outs) if outs else np.zeros((0, self.n_outputs), np.float32)


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA, absl) sent to the debug log."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys

    if "tensorflow" in sys.modules:
        return
    from .quantize import captured_output

    with captured_output() as lines:
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probing logs (cuInit ...) happen here, captured
    if lines:
        log.debug("tensorflow start-up: %s", " | ".join(lines))


def load_model(path: str | Path) -> SourceModel:
    """Load ``path``; ``ConfigError`` in one line when it is missing, corrupt or not a classifier."""
    quiet_tensorflow()
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"model not found: {p}")
    suffix = p.suffix.lower()
    if p.is_dir():
        if not (p / "saved_model.pb").is_file():
            raise ConfigError(f"{p}: a directory but not a SavedModel (no saved_model.pb)")
        framework, model = _load_saved_model(p)
    elif suffix == ".keras":
        framework, model = "keras3", _load_keras3(p)
    elif suffix in (".h5", ".hdf5"):
        framework, model = "tf_keras", _load_h5(p)
    else:
        raise ConfigError(f"{p}: unknown model format {suffix or '(no suffix)'}; give a .keras, .h5 or SavedModel dir")
    return _describe(p, framework, model)


def _fail(p: Path, exc: BaseException) -> ConfigError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return ConfigError(f"cannot load model {p}: {first[:200]} (is the file complete and made by Keras/TensorFlow?)")


def _load_keras3(p: Path) -> Any:
    import keras

    try:
        model = keras.saving.load_model(p, compile=False)
    except Exception as exc:
        raise _fail(p, exc) from None
    return float32_model(model)


def _policies(model: Any) -> set[str]:
    layers = model._flatten_layers(include_self=False) if hasattr(model, "_flatten_layers") else model.layers
    return {getattr(getattr(layer, "dtype_policy", None), "name", "float32") for layer in layers}


def float32_model(model: Any) -> Any:
    """A mixed-precision (bf16/fp16) Keras 3 model rebuilt in float32 with the same weights.

    The TFLite converter rejects bf16 casts, and int8 ranges should be fitted on the
    float32 graph anyway. Variables of mixed-precision layers are float32 already, so
    the weights carry over exactly.
    """
    if _policies(model) <= {"float32"}:
        return model
    import keras

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
                return dict(node, config=dict(node["config"], name="float32"))
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        if isinstance(node, str) and node.startswith("mixed_"):
            return "float32"
        return node

    config = fix(keras.saving.serialize_keras_object(model))
    rebuilt = keras.saving.deserialize_keras_object(config)
    rebuilt.set_weights(model.get_weights())
    log.info("rebuilt mixed-precision model (%s) in float32", ", ".join(sorted(_policies(model) - {"float32"})))
    return rebuilt


def _load_h5(p: Path) -> Any:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            has_config = "model_config" in f.attrs
    except Exception as exc:
        raise _fail(p, exc) from None
    if not has_config:
        raise ConfigError(f"{p}: HDF5 file holds weights only (no model_config); save the whole model, not weights")
    import tf_keras

    try:
        return tf_keras.models.load_model(p, compile=False)
    except Exception as exc:
        raise _fail(p, exc) from None


def _load_saved_model(p: Path) -> tuple[Framework, Any]:
    try:
        import tf_keras

        m = tf_keras.models.load_model(p, compile=False)
        if isinstance(m, tf_keras.Model):
            return "tf_keras", m
    except Exception:
        log.debug("%s is not a tf-keras SavedModel; using its serving signature", p)
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(p))
        fn = loaded.signatures["serving_default"]
    except Exception as exc:
        raise _fail(p, exc) from None
    fn._emotion_edge_keep = loaded  # the signature needs its object alive
    return "saved_model", fn


def _describe(p: Path, framework: Framework, model: Any) -> SourceModel:
    if framework == "saved_model":
        key, spec = next(iter(model.structured_input_signature[1].items()))
        model._emotion_edge_input = key
        in_shape = tuple(spec.shape)
        out_spec = next(iter(model.structured_outputs.values()))
        out_shape = tuple(out_spec.shape)
        last_activation = None
    else:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(f"{p}: expected one image input and one class output, got "
                              f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
        in_shape = tuple(model.inputs[0].shape)
        out_shape = tuple(model.outputs[0].shape)
        last_activation = _last_activation(model)
    if len(in_shape) != 4 or in_shape[1] != in_shape[2] or in_shape[3] not in (1, 3) or in_shape[1] is None:
        raise ConfigError(f"{p}: input shape {in_shape} is not a square image (batch, S, S, 1|3)")
    if len(out_shape) != 2 or not out_shape[1]:
        raise ConfigError(f"{p}: output shape {out_shape} is not (batch, classes)")
    output = "probabilities" if last_activation in (None, "softmax") else "logits"
    m = SourceModel(p, framework, model, int(in_shape[1]), int(in_shape[3]), int(out_shape[1]), output)
    if last_activation is None:
        m.output = _sniff_output(m)
    log.info("loaded %s (%s): input %dx%dx%d, %d outputs (%s)", p, framework, m.input_size, m.input_size,
             m.channels, m.n_outputs, m.output)
    return m


def _last_activation(model: Any) -> str | None:
    """'softmax', 'linear' or None when the output layer does not say."""
    layer = model.layers[-1]
    act = getattr(layer, "activation", None)
    if act is not None:
        return getattr(act, "__name__", str(act))
    name = layer.__class__.__name__.lower()
    if name in ("softmax",) or (name == "activation" and "softmax" in str(layer.get_config().get("activation"))):
        return "softmax"
    return None


def _sniff_output(m: SourceModel) -> Literal["probabilities", "logits"]:
    """No declared activation: outputs that are non-negative and sum to 1 are probabilities."""
    rng = np.random.default_rng(0)
    y = m.predict(rng.random((4, m.input_size, m.input_size, m.channels), dtype=np.float32))
    if np.all(y >= -1e-6) and np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities"
    return "logits"
