"""Score a bundle on labelled data with the device's own classes (``edge.classifier``), TensorFlow-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.bundle import load_bundle
from edge.classifier import Classifier

from .evaluate import EvalData, correct_per_sample, load_eval_data, score, truth_for
from .labels import LabelSet


def evaluate_bundle(bundle: str | Path, data: list[str], *, cropped: str = "auto", limit: int | None = None,
                    threads: int = 1, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Metrics dict: scores (accuracies, recall, confusion), abstain coverage, what was evaluated."""
    m, labels, ev, probs, top = _classify(bundle, data, cropped, limit, threads, progress)
    s = score(probs, ev, labels, m.calibration.abstain_threshold)
    return {
        "bundle": m.id,
        "data": ev.source,
        "classes": list(m.classes),
        "scores": s.as_dict(),
        "abstain": {"threshold": m.calibration.abstain_threshold,
                    "coverage": round(100.0 * float(np.mean(top >= m.calibration.abstain_threshold)), 2)
                    if len(top) else 0.0},
    }


def bundle_correctness(bundle: str | Path, data: list[str], *, cropped: str = "auto", limit: int | None = None,
                       threads: int = 1, progress: Callable[[int, int], None] | None = None
                       ) -> tuple[list[str], tuple[str, ...], dict[str, np.ndarray]]:
    """Sample ids, the bundle's classes, and right / wrong per sample for each figure (``correct_per_sample``)."""
    m, labels, ev, probs, _ = _classify(bundle, data, cropped, limit, threads, progress)
    return ev.ids, tuple(m.classes), correct_per_sample(probs, ev, labels, m.calibration.abstain_threshold)


def _classify(bundle: str | Path, data: list[str], cropped: str, limit: int | None, threads: int,
              progress: Callable[[int, int], None] | None) -> tuple[Any, LabelSet, EvalData, np.ndarray, np.ndarray]:
    """Load the bundle and the data through its crop path; class probabilities and top valence probability."""
    b = load_bundle(bundle)
    m = b.manifest
    labels = LabelSet(m.id, tuple(m.classes), dict(m.valence))
    parts = [load_eval_data(d, m.preprocess, cropped=cropped, limit=limit, labelset=labels, progress=progress) for d in data]
    ev = parts[0] if len(parts) == 1 else _concat(parts)
    truth_for(ev.labels, labels)  # unknown class names -> ConfigError before any work
    with Classifier(b, num_threads=threads) as clf:
        probs = clf.probabilities(ev.crops) if len(ev.crops) else np.zeros((0, len(labels)), np.float32)
        top = clf.valence_probabilities(probs).max(1) if len(probs) else np.zeros(0)
    return m, labels, ev, probs, top


def _concat(parts: list[EvalData]) -> EvalData:
    offs = np.cumsum([0] + [p.n for p in parts[:-1]])
    return EvalData(
        np.concatenate([p.crops for p in parts]),
        np.concatenate([p.face_index + o for p, o in zip(parts, offs)]),
        [lab for p in parts for lab in p.labels], [i for p in parts for i in p.ids],
        ", ".join(p.source for p in parts), all(p.cropped for p in parts),
    )
