"""Stochastic weight averaging (SWA, Izmailov et al. 2018) for ``train``.

After the recipe's warm-up + cosine schedule, the run trains ``swa_epochs`` more
epochs at a constant learning rate (``swa_lr``) and keeps the running mean of the
weights at the end of each of them. The mean lies nearer the centre of the flat
region those epochs wander around than any single epoch does, and it costs
nothing at inference: the model is the same size and speed.

No batch has passed through the averaged weights, so the BatchNorm statistics are
recomputed for them (cumulative mean over one pass of augmented training batches,
as the paper and ``torch.optim.swa_utils.update_bn`` do).

The running mean is kept on disk next to ``last.keras`` so an interrupted run
resumes it exactly. This module imports Keras at import time: ``convert.train``
imports it only when it trains.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.errors import ConfigError

from .datasets import save_npz


@keras.saving.register_keras_serializable(package="emotion_edge")
class CosineThenConstant(keras.optimizers.schedules.LearningRateSchedule):
    """``cosine(step)`` before ``boundary`` steps, ``constant`` from then on (the SWA phase).

    Before the boundary it is exactly the recipe's cosine schedule, so a finished run extended with SWA trains the
    same first epochs as one planned with SWA from the start.
    """

    def __init__(self, cosine: keras.optimizers.schedules.LearningRateSchedule | dict[str, Any], boundary: int,
                 constant: float) -> None:
        if isinstance(cosine, dict):
            cosine = keras.optimizers.schedules.deserialize(cosine)
        self.cosine, self.boundary, self.constant = cosine, int(boundary), float(constant)

    def __call__(self, step):
        step = keras.ops.convert_to_tensor(step)
        return keras.ops.where(keras.ops.less(step, self.boundary), self.cosine(step),
                               keras.ops.cast(self.constant, "float32"))

    def get_config(self) -> dict[str, Any]:
        return {"cosine": keras.optimizers.schedules.serialize(self.cosine), "boundary": self.boundary,
                "constant": self.constant}


class WeightAverage:
    """Running mean of a model's weights (float64), saved to ``path`` after every update."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.count = 0
        self.mean: list[np.ndarray] | None = None

    @classmethod
    def load(cls, path: Path, expected: int) -> WeightAverage:
        """The average saved at ``path``, which must hold ``expected`` epochs (0: a new average, no file needed)."""
        avg = cls(path)
        if expected == 0:
            return avg
        if not avg.path.is_file():
            raise ConfigError(f"{avg.path} is missing, but the run is {expected} epoch(s) into its SWA phase; "
                              "start a new run (or restore the file)")
        try:
            with np.load(avg.path) as z:
                avg.count = int(z["count"])
                avg.mean = [z[f"w{i}"] for i in range(len(z.files) - 1)]
        except (OSError, ValueError, KeyError) as exc:  # not an average this code wrote
            raise ConfigError(f"cannot read the weight average {avg.path} ({exc.__class__.__name__}); start a new "
                              "run (or restore the file)") from None
        if avg.count != expected:
            raise ConfigError(f"{avg.path} averages {avg.count} epoch(s), the run's history says {expected}; "
                              "start a new run")
        return avg

    def update(self, weights: list[np.ndarray]) -> None:
        """Add one epoch's weights and save the new mean (atomically: a kill leaves the old file or the new)."""
        self.count += 1
        if self.mean is None:
            self.mean = [w.astype(np.float64) for w in weights]
        else:
            self.mean = [m + (w - m) / self.count for m, w in zip(self.mean, weights)]
        save_npz(self.path, count=np.array(self.count), **{f"w{i}": m for i, m in enumerate(self.mean)})

    def apply_to(self, model) -> None:  # type: ignore[no-untyped-def]
        """Set ``model``'s weights to the mean, in each weight's own dtype."""
        if self.mean is None:
            raise ConfigError(f"{self.path}: no epoch averaged yet")
        model.set_weights([m.astype(w.dtype) for m, w in zip(self.mean, model.get_weights())])


def recompute_batchnorm(model, batches: Iterable) -> int:  # type: ignore[no-untyped-def]
    """Replace every BatchNorm layer's moving statistics by their cumulative mean over ``batches`` (image batches)
    seen in training mode; no weight other than those statistics changes. Returns the number of batches."""
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in bns]
    n = 0
    try:
        for n, xb in enumerate(batches, start=1):
            for layer in bns:  # moving = m * moving + (1 - m) * batch: with m = (n-1)/n, the mean of n batches
                layer.momentum = (n - 1.0) / n
            model(xb, training=True)
    finally:
        for layer, m in zip(bns, momenta):
            layer.momentum = m
    if n == 0:
        raise ConfigError("no training batches to recompute the BatchNorm statistics with")
    return n
