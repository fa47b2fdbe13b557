"""Temperature scaling, ECE and abstain threshold on synthetic, deliberately mis-calibrated logits."""

from __future__ import annotations

import numpy as np

from calibration.confidence import ece, fit_abstain, fit_temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _overconfident(n: int = 4000, k: int = 3, true_t: float = 2.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports z * true_t (overconfident by true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, k))
    y = np.array([rng.choice(k, p=p) for p in _softmax(z)])
    return z * true_t, y


def test_fit_temperature_recovers_the_overconfidence_factor() -> None:
    logits, y = _overconfident()
    t = fit_temperature(logits, y)
    assert 2.2 < t < 2.8


def test_temperature_lowers_ece() -> None:
    logits, y = _overconfident(seed=1)
    t = fit_temperature(logits, y)
    assert ece(_softmax(logits / t), y) < 0.5 * ece(_softmax(logits), y)


def test_grouped_temperature_uses_group_likelihood() -> None:
    logits, y = _overconfident(k=4, seed=2)
    group = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.float32)
    t = fit_temperature(logits, (y >= 2).astype(int), group)
    assert t > 1.2


def test_abstain_drops_the_requested_share_and_raises_accuracy() -> None:
    logits, y = _overconfident(seed=3)
    p = _softmax(logits / 2.5)
    choice = fit_abstain(p, y, abstain_rate=0.2)
    assert 79.0 <= choice.coverage <= 81.0
    assert choice.accuracy_answered > choice.accuracy_all
    assert fit_abstain(p, y, abstain_rate=0.0).threshold == 0.0
