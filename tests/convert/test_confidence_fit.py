"""Temperature + abstain fitted on held-out faces, figures cross-fitted (synthetic model outputs)."""

from __future__ import annotations

import numpy as np

from convert.confidence_fit import fit_confidence
from convert.evaluate import EvalData
from convert.labels import load_labels


def _data(labels: list[str]) -> EvalData:
    n = len(labels)
    return EvalData(np.zeros((n, 8, 8), np.uint8), np.arange(n), labels, [str(i) for i in range(n)], "synthetic", True)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _valence_model(true_t: float, n: int = 3000, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """valence3 outputs whose labels are drawn from softmax(z); the model reports softmax(z * true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.2, (n, 3))
    classes = ["positive", "neutral", "negative"]
    y = [classes[rng.choice(3, p=p)] for p in _softmax(z)]
    return _softmax(z * true_t), y


def test_overconfident_model_gets_a_temperature_that_lowers_held_out_ece() -> None:
    probs, y = _valence_model(2.0)
    cal, d = fit_confidence(probs, "probabilities", _data(y), load_labels("valence3"), abstain_rate=0.1)
    assert d is not None and d["temperature_kept"] and 1.6 < cal.temperature < 2.4
    assert cal.ece_after < cal.ece_before and d["valence_nll_after"] < d["valence_nll_before"]
    assert 85.0 < d["abstain"]["coverage"] < 95.0 and d["abstain"]["accuracy_answered"] > d["abstain"]["accuracy_all"]


def test_calibrated_model_keeps_temperature_near_one() -> None:
    probs, y = _valence_model(1.0, seed=1)
    cal, d = fit_confidence(probs, "probabilities", _data(y), load_labels("valence3"), abstain_rate=0.0)
    assert 0.85 < cal.temperature < 1.15
    assert cal.abstain_threshold == 0.0 and d is not None and d["abstain"]["coverage"] == 100.0


def test_smile_only_labels_leave_the_defaults() -> None:
    """GENKI-style smile/no_smile labels say nothing about negative valence: nothing is fitted."""
    probs = _softmax(np.random.default_rng(2).normal(size=(60, 7)))
    cal, d = fit_confidence(probs, "probabilities", _data(["smile", "no_smile"] * 30), load_labels("fer7"), 0.1)
    assert d is None and cal.temperature == 1.0 and cal.abstain_threshold == 0.0
