"""Confidence calibration: temperature scaling, expected calibration error, abstain threshold.

Fitted on held-out faces with the int8 model's own outputs (what the device runs):
the temperature divides the class logits before softmax (``edge.classifier``), the
abstain threshold is a floor on the top valence probability below which the
device reports ``uncertain``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.2), np.log(20.0), 161))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float, group: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of ``targets`` under softmax(logits / T).

    With ``group`` (K, G) 0/1, the likelihood is of the grouped (e.g. valence) probabilities.
    """
    p = _softmax(logits / temperature)
    if group is not None:
        p = p @ group
    return float(-np.mean(np.log(np.clip(p[np.arange(len(targets)), targets], 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, group: np.ndarray | None = None) -> float:
    """The temperature minimising NLL (grid search in log space, then a local refinement)."""
    if len(targets) == 0:
        return 1.0
    losses = [nll(logits, targets, t, group) for t in TEMPERATURE_GRID]
    best = float(TEMPERATURE_GRID[int(np.argmin(losses))])
    fine = best * np.exp(np.linspace(-0.03, 0.03, 13))
    losses = [nll(logits, targets, t, group) for t in fine]
    return round(float(fine[int(np.argmin(losses))]), 4)


def ece(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error (%) of top-1 confidence, equal-width bins."""
    if len(targets) == 0:
        return 0.0
    conf = probs.max(1)
    hit = probs.argmax(1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(hit[m].mean() - conf[m].mean())
    return round(100.0 * float(total), 3)


def reliability(probs: np.ndarray, targets: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (mean confidence, accuracy, count) for a reliability diagram."""
    conf = probs.max(1)
    hit = probs.argmax(1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    c, a, n = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        c.append(conf[m].mean() if m.any() else np.nan)
        a.append(hit[m].mean() if m.any() else np.nan)
        n.append(int(m.sum()))
    return np.array(c), np.array(a), np.array(n)


@dataclass(frozen=True)
class AbstainChoice:
    """Threshold on the top valence probability, with what it does on held-out data."""

    threshold: float
    coverage: float  # % of faces answered
    accuracy_answered: float  # % correct among answered
    accuracy_all: float


def fit_abstain(valence_probs: np.ndarray, targets: np.ndarray, abstain_rate: float = 0.1) -> AbstainChoice:
    """Abstain on the least confident ``abstain_rate`` of held-out faces (0 = never abstain)."""
    conf = valence_probs.max(1)
    hit = valence_probs.argmax(1) == targets
    if len(conf) == 0:
        return AbstainChoice(0.0, 100.0, 0.0, 0.0)
    thr = float(np.quantile(conf, abstain_rate)) if abstain_rate > 0 else 0.0
    keep = conf >= thr
    return AbstainChoice(
        threshold=round(thr, 4),
        coverage=round(100.0 * float(keep.mean()), 2),
        accuracy_answered=round(100.0 * float(hit[keep].mean()) if keep.any() else 0.0, 2),
        accuracy_all=round(100.0 * float(hit.mean()), 2),
    )
