"""The int8 expression classifier: bundle in, valence predictions out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bundle import VALENCES, Bundle
from .preprocess import PreprocessSpec, normalize
from .runtime import TFLiteModel

UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Prediction:
    """Calibrated result for one face.

    ``label`` is positive|neutral|negative, or ``uncertain`` when the top valence
    probability is under the bundle's abstain threshold; ``score`` is that top
    probability; ``valence`` and ``classes`` are full distributions.
    """

    label: str
    score: float
    valence: dict[str, float]
    classes: dict[str, float] = field(default_factory=dict)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """Runs a bundle's classifier on uint8 face crops made by ``edge.preprocess``."""

    def __init__(self, bundle: Bundle, num_threads: int = 1) -> None:
        m = bundle.manifest
        self.bundle_id = m.id
        self.spec: PreprocessSpec = m.preprocess
        self.classes = list(m.classes)
        self._model = TFLiteModel(bundle.classifier_path, num_threads=num_threads)
        n_out = self._model.outputs[0].shape[-1]
        if n_out != len(self.classes):
            from .errors import BundleError

            raise BundleError(
                f"{bundle.root}: classifier has {n_out} outputs but bundle.json lists {len(self.classes)} classes"
            )
        self._is_logits = m.output == "logits"
        self.temperature = m.calibration.temperature
        self.abstain = m.calibration.abstain_threshold
        # class -> valence as a (K, 3) 0/1 matrix, so valence = probs @ M.
        self._valence_matrix = np.zeros((len(self.classes), len(VALENCES)), np.float32)
        for i, c in enumerate(self.classes):
            self._valence_matrix[i, VALENCES.index(m.valence[c])] = 1.0

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Temperature-scaled class probabilities ``(N, K)`` for uint8 crops ``(N, S, S[, C])``."""
        x = normalize(crops, self.spec)
        out = np.concatenate([self._model.run(x[i : i + 1])[0] for i in range(len(x))]) if len(x) else (
            np.zeros((0, len(self.classes)), np.float32)
        )
        logits = out if self._is_logits else np.log(np.clip(out, 1e-6, 1.0))
        return softmax(logits / self.temperature)

    def valence_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` -> valence probabilities ``(N, 3)`` (positive, neutral, negative)."""
        return probs @ self._valence_matrix

    def predict(self, crops: np.ndarray) -> list[Prediction]:
        """One ``Prediction`` per crop."""
        probs = self.probabilities(crops)
        return [self.to_prediction(p) for p in probs]

    def to_prediction(self, class_probs: np.ndarray) -> Prediction:
        val = self.valence_probabilities(class_probs[None])[0]
        return make_prediction(val, self.abstain, dict(zip(self.classes, class_probs.tolist())))

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def published_label_index(valence: np.ndarray, abstain: float) -> np.ndarray:
    """Index into ``VALENCES`` of the label the device publishes for valence probabilities ``(..., 3)``: the top
    one, or -1 (``uncertain``) where its probability is under ``abstain``. The one place that rule lives."""
    return np.where(valence.max(-1) >= abstain, valence.argmax(-1), -1)


def make_prediction(valence: np.ndarray, abstain: float, classes: dict[str, float] | None = None) -> Prediction:
    """Valence probabilities (positive, neutral, negative) -> ``Prediction`` with abstain."""
    score = float(np.max(valence))
    published = int(published_label_index(valence, abstain))
    label = VALENCES[published] if published >= 0 else UNCERTAIN
    return Prediction(
        label=label,
        score=round(score, 4),
        valence={v: round(float(p), 4) for v, p in zip(VALENCES, valence)},
        classes={k: round(float(p), 4) for k, p in (classes or {}).items()},
    )
