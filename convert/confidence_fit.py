"""Fit the bundle's temperature and abstain threshold on held-out faces (the deployed int8 model's outputs).

The temperature minimises valence NLL on all held-out faces; the figures in the
report are *cross-fitted* (2 folds: each half is scored with the temperature and
threshold fitted on the other half), so they are not measured on the data they
were fitted on. When cross-fitting shows the temperature does not lower held-out
NLL and valence ECE, the bundle keeps T = 1 and says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.confidence import ece, fit_abstain, fit_temperature, nll, reliability
from edge.bundle import Calibration

from .evaluate import EvalData, to_probabilities, truth_for, valence_matrix
from .labels import LabelSet


def fit_confidence(raw: np.ndarray, output: str, data: EvalData, labels: LabelSet, abstain_rate: float,
                   seed: int = 0) -> tuple[Calibration, dict[str, Any] | None]:
    """``(Calibration for bundle.json, details for the report)``; defaults when there are no valence labels."""
    truth = truth_for(data.labels, labels)
    val = truth.val[data.face_index]
    cls = truth.cls[data.face_index]
    ok = val >= 0
    if ok.sum() < 20:
        return Calibration(), None
    logits = raw if output == "logits" else np.log(np.clip(raw, 1e-6, 1.0))
    logits, val, cls = logits[ok], val[ok], cls[ok]
    vm = valence_matrix(labels)
    perm = np.random.default_rng(seed).permutation(len(val))
    folds = (perm[: len(perm) // 2], perm[len(perm) // 2 :])

    # Cross-fitted: every face scored with T and threshold fitted on the other fold.
    t_cross = np.ones(len(val))
    thr_cross = np.zeros(len(val))
    for fit, test in (folds, folds[::-1]):
        t = fit_temperature(logits[fit], val[fit], vm)
        t_cross[test] = t
        thr_cross[test] = fit_abstain(to_probabilities(logits[fit], "logits", t) @ vm, val[fit], abstain_rate).threshold
    pv_before = to_probabilities(logits, "logits") @ vm
    pv_after = to_probabilities(logits / t_cross[:, None], "logits") @ vm
    nll_before = _nll(pv_before, val)
    nll_after = _nll(pv_after, val)

    t_all = fit_temperature(logits, val, vm)
    # The device thresholds and reports valence probabilities: keep T only if it makes them
    # better held out on both counts (NLL and ECE can disagree when classes are summed).
    kept = nll_after < nll_before and ece(pv_after, val) <= ece(pv_before, val)
    temperature = t_all if kept else 1.0
    pv_final = to_probabilities(logits, "logits", temperature) @ vm
    threshold = fit_abstain(pv_final, val, abstain_rate).threshold
    pv_report = pv_after if kept else pv_before
    conf = pv_report.max(1)
    keep = conf >= thr_cross
    hit = pv_report.argmax(1) == val
    details: dict[str, Any] = {
        "faces": int(len(val)),
        "temperature": temperature,
        "temperature_fitted": t_all,
        "temperature_kept": bool(kept),
        "target": "valence",
        "cross_fitted": True,
        "valence_nll_before": round(nll_before, 4),
        "valence_nll_after": round(nll_after, 4),
        "valence_ece_before": ece(pv_before, val),
        "valence_ece_after": ece(pv_report, val),
        "valence_ece_cross_fitted": ece(pv_after, val),
        "abstain": {
            "rate_requested": abstain_rate,
            "threshold": threshold,
            "coverage": round(100.0 * float(keep.mean()), 2),
            "accuracy_answered": round(100.0 * float(hit[keep].mean()), 2) if keep.any() else 0.0,
            "accuracy_all": round(100.0 * float(hit.mean()), 2),
        },
        "reliability_before": [x.tolist() for x in reliability(pv_before, val)],
        "reliability_after": [x.tolist() for x in reliability(pv_report, val)],
    }
    has_c = cls >= 0
    if has_c.any():
        t_rep = t_cross[has_c, None] if kept else 1.0
        details["class_ece_before"] = ece(to_probabilities(logits[has_c], "logits"), cls[has_c])
        details["class_ece_after"] = ece(to_probabilities(logits[has_c] / t_rep, "logits"), cls[has_c])
    cal = Calibration(temperature=temperature, abstain_threshold=threshold,
                      ece_before=details["valence_ece_before"], ece_after=details["valence_ece_after"])
    return cal, details


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))


__all__ = ["fit_confidence", "nll"]
