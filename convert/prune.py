"""Magnitude pruning, with fine-tuning when training data is given, one-shot otherwise.

Which implementation runs depends on the model's Keras:

- tf-keras (legacy Keras 2 ``.h5``, Keras SavedModels): TensorFlow Model Optimization's
  ``prune_low_magnitude`` with a ``PolynomialDecay`` schedule and an explicit update
  ``frequency``, then ``strip_pruning``.
- Keras 3 (``.keras``): tfmot 0.8 cannot wrap Keras 3 layers, and Keras 3 configs do not
  load in tf-keras, so the same schedule runs by hand: a callback recomputes
  per-layer magnitude masks every ``frequency`` steps (sparsity rising polynomially
  to the target over the first 80% of steps) and re-applies them after every batch.
- tf-keras models that nest other models (tfmot cannot wrap those) use the same masks.
- No training data: one-shot magnitude pruning of each prunable kernel to the target.

Nested models (a training model inside an export wrapper) are walked layer by layer;
frozen layers (``trainable=False``, e.g. a fixed mirror matrix for flip averaging) are
never pruned.

Sparsity is always measured afterwards on the final weights and reported per layer;
a schedule that never fired (too few steps for its frequency) is an error, never a
silently dense "pruned" model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edge.errors import ConfigError

log = logging.getLogger(__name__)

PRUNABLE = ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D")
MIN_WEIGHTS = 512  # smaller kernels (e.g. a first 3x3x1x8 conv) gain nothing and hurt accuracy most
RAMP = 0.8  # fraction of fine-tuning steps over which sparsity ramps up


def _kernel_vars(layer: Any) -> list[Any]:
    """The prunable weight variables of a layer (kernels, not biases or BN; frozen layers are left alone)."""
    if layer.__class__.__name__ not in PRUNABLE or not layer.trainable:
        return []
    out = []
    for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
        v = getattr(layer, attr, None)
        if v is not None and int(np.prod(v.shape)) >= MIN_WEIGHTS:
            out.append(v)
    return out


def leaf_layers(model: Any) -> list[Any]:
    """Every layer, nested models flattened (e.g. a training model wrapped by an export model), once each."""
    out: list[Any] = []
    seen: set[int] = set()

    def walk(m: Any) -> None:
        for layer in getattr(m, "layers", []):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if getattr(layer, "layers", None):
                walk(layer)
            else:
                out.append(layer)

    walk(model)
    return out


def prunable_layers(model: Any) -> list[Any]:
    return [layer for layer in leaf_layers(model) if _kernel_vars(layer)]


def _is_flat(model: Any) -> bool:
    return not any(getattr(layer, "layers", None) for layer in model.layers)


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """0/1 mask zeroing the ``sparsity`` fraction of smallest-magnitude weights."""
    k = int(round(sparsity * w.size))
    if k <= 0:
        return np.ones_like(w, dtype=w.dtype)
    thresh = np.partition(np.abs(w).ravel(), k - 1)[k - 1]
    mask = (np.abs(w) > thresh).astype(w.dtype)
    # Ties at the threshold: keep exactly size - k weights.
    extra = int(mask.sum()) - (w.size - k)
    if extra < 0:
        ties = np.flatnonzero((np.abs(w) == thresh).ravel())[: -extra]
        mask.ravel()[ties] = 1
    return mask


def polynomial_sparsity(step: int, end_step: int, target: float, power: int = 3) -> float:
    """tfmot's PolynomialDecay from 0: ``target * (1 - (1 - step/end)^power)``."""
    frac = min(1.0, max(0.0, step / max(1, end_step)))
    return target * (1.0 - (1.0 - frac) ** power)


def measure_sparsity(model: Any) -> dict[str, Any]:
    """Per-layer and overall fraction of zero weights in prunable kernels."""
    layers: dict[str, Any] = {}
    zeros = total = 0
    for layer in leaf_layers(model):
        for v in _kernel_vars(layer):
            w = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            z = int(np.sum(w == 0))
            layers[layer.name] = {"weights": int(w.size), "sparsity": round(z / w.size, 4)}
            zeros += z
            total += w.size
    return {"layers": layers, "overall_sparsity": round(zeros / total, 4) if total else 0.0}


def prune_model(
    src: Any,
    sparsity: float,
    *,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 2,
    frequency: int = 20,
    batch_size: int = 64,
    learning_rate: float = 2e-4,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Return ``(pruned Keras model, report)``; ``src`` is a ``convert.model_io.SourceModel``."""
    if not prunable_layers(src.model):
        raise ConfigError(f"{src.path}: no Conv2D/Dense kernels with >= {MIN_WEIGHTS} weights to prune")
    if frequency < 1:
        raise ConfigError("--prune-frequency must be at least 1 step")
    if train is None:
        model = _clone(src)
        for layer in prunable_layers(model):
            for v in _kernel_vars(layer):
                w = v.numpy()
                v.assign(w * magnitude_mask(w, sparsity))
        method = "one-shot magnitude pruning (no --finetune data)"
        history: list[dict[str, float]] = []
    else:
        x, y = train
        steps = int(np.ceil(len(x) / batch_size)) * epochs
        end_step = max(1, int(steps * RAMP))
        if end_step < frequency:
            raise ConfigError(
                f"fine-tuning has {steps} steps but the pruning mask updates every {frequency}: it would never "
                f"prune. Lower --prune-frequency or add --epochs / data"
            )
        if src.framework == "tf_keras" and _is_flat(src.model):
            model, history = _tfmot_finetune(src, sparsity, x, y, epochs, frequency, end_step, batch_size,
                                             learning_rate, seed)
            method = f"tfmot prune_low_magnitude, PolynomialDecay to {end_step} steps, frequency {frequency}"
        else:
            model, history = _mask_finetune(src, sparsity, x, y, epochs, frequency, end_step, batch_size,
                                            learning_rate, seed)
            why = "Keras 3" if src.framework == "keras3" else "nested tf-keras model"
            method = (f"magnitude masks by hand ({why}; tfmot's polynomial schedule) to {end_step} steps, "
                      f"frequency {frequency}")
        method += f", fine-tuned {epochs} epoch(s) on {len(x)} faces"
    report = measure_sparsity(model)
    report.update({"target": sparsity, "method": method, "history": history})
    if report["overall_sparsity"] < 0.9 * sparsity:
        raise ConfigError(f"pruning reached only {report['overall_sparsity']:.1%} of the {sparsity:.0%} target "
                          "(the schedule did not finish): add --epochs or lower --prune-frequency")
    return model, report


def _keras_module(src: Any) -> Any:
    if src.framework == "tf_keras":
        import tf_keras as k
    else:
        import keras as k  # type: ignore[no-redef]
    return k


def _clone(src: Any) -> Any:
    """An independent copy: reloaded from its file (clone_model does not deep-copy nested models)."""
    from .model_io import load_model

    return load_model(src.path).model


def _loss(src: Any, k: Any) -> Any:
    return k.losses.SparseCategoricalCrossentropy(from_logits=src.output == "logits")


def _history(h: Any) -> list[dict[str, float]]:
    keys = ("loss", "accuracy")
    n = len(h.history.get("loss", []))
    return [{k: round(float(h.history[k][i]), 4) for k in keys if k in h.history} for i in range(n)]


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal flips: the only augmentation that is always label-safe for faces."""
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = out[flip, :, ::-1]
    return out


def _tfmot_finetune(src: Any, sparsity: float, x: np.ndarray, y: np.ndarray, epochs: int, frequency: int,
                    end_step: int, batch_size: int, lr: float, seed: int) -> tuple[Any, list[dict[str, float]]]:
    import tensorflow_model_optimization as tfmot
    import tf_keras as k

    k.utils.set_random_seed(seed)
    sched = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step,
                                                 frequency=frequency)
    names = {layer.name for layer in prunable_layers(src.model)}

    def wrap(layer: Any) -> Any:
        if layer.name in names:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sched)
        return layer

    base = _clone(src)
    pm = k.models.clone_model(base, clone_function=wrap)
    _copy_weights_by_name(base, pm)
    pm.compile(optimizer=k.optimizers.Adam(lr), loss=_loss(src, k), metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    hist = []
    for _ in range(epochs):
        h = pm.fit(_augment(x, rng), y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0,
                   callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        hist += _history(h)
    return tfmot.sparsity.keras.strip_pruning(pm), hist


def _copy_weights_by_name(src: Any, wrapped: Any) -> None:
    """Wrapping adds mask/threshold variables, so copy each original layer's weights by layer name."""
    by_name = {layer.name: layer for layer in src.layers}
    for layer in wrapped.layers:
        inner = getattr(layer, "layer", layer)
        orig = by_name.get(inner.name)
        if orig is not None and orig.get_weights():
            inner.set_weights(orig.get_weights())


def _mask_finetune(src: Any, sparsity: float, x: np.ndarray, y: np.ndarray, epochs: int, frequency: int,
                   end_step: int, batch_size: int, lr: float, seed: int) -> tuple[Any, list[dict[str, float]]]:
    keras = _keras_module(src)
    ops = getattr(keras, "ops", None)  # Keras 3; tf-keras variables multiply directly
    keras.utils.set_random_seed(seed)
    model = _clone(src)
    variables = [v for layer in prunable_layers(model) for v in _kernel_vars(layer)]

    class MaskCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.masks: list[Any] = [None] * len(variables)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if self.step % frequency == 0 or self.step == end_step:
                s = polynomial_sparsity(self.step, end_step, sparsity)
                self.masks = [magnitude_mask(np.asarray(v.numpy()), s) for v in variables]
                if ops is not None:
                    self.masks = [ops.convert_to_tensor(m) for m in self.masks]
            # Re-apply after every optimizer step so pruned weights stay at zero.
            for v, m in zip(variables, self.masks):
                if m is not None:
                    v.assign(ops.multiply(v, m) if ops is not None else v * m)

    cb = MaskCallback()
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=_loss(src, keras), metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    hist = []
    for _ in range(epochs):
        h = model.fit(_augment(x, rng), y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0, callbacks=[cb])
        hist += _history(h)
    # Make sure the final weights carry the full target sparsity.
    for v in variables:
        w = np.asarray(v.numpy())
        v.assign(w * magnitude_mask(w, sparsity))
    return model, hist
