"""Fit the bundle's temperature and abstain threshold on held-out faces (the deployed int8 model's outputs).

The eval faces are split in two, deterministically: one half fits, the other
half measures (ECE before/after, coverage and accuracy with abstain), so the
report's figures are not measured on the data they were fitted on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.confidence import ece, fit_abstain, fit_temperature, reliability
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
    fit, test = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    t = fit_temperature(logits[fit], val[fit], vm)
    pv_before = to_probabilities(logits[test], "logits") @ vm
    pv_after = to_probabilities(logits[test], "logits", t) @ vm
    choice_fit = fit_abstain(to_probabilities(logits[fit], "logits", t) @ vm, val[fit], abstain_rate)
    # Measure the fitted threshold on the other half.
    conf = pv_after.max(1)
    keep = conf >= choice_fit.threshold
    hit = pv_after.argmax(1) == val[test]
    details: dict[str, Any] = {
        "fit_faces": int(len(fit)),
        "test_faces": int(len(test)),
        "temperature": t,
        "target": "valence",
        "valence_ece_before": ece(pv_before, val[test]),
        "valence_ece_after": ece(pv_after, val[test]),
        "abstain": {
            "rate_requested": abstain_rate,
            "threshold": choice_fit.threshold,
            "coverage": round(100.0 * float(keep.mean()), 2),
            "accuracy_answered": round(100.0 * float(hit[keep].mean()), 2) if keep.any() else 0.0,
            "accuracy_all": round(100.0 * float(hit.mean()), 2),
        },
        "reliability_before": [x.tolist() for x in reliability(pv_before, val[test])],
        "reliability_after": [x.tolist() for x in reliability(pv_after, val[test])],
    }
    has_c = cls[test] >= 0
    if has_c.any():
        details["class_ece_before"] = ece(to_probabilities(logits[test][has_c], "logits"), cls[test][has_c])
        details["class_ece_after"] = ece(to_probabilities(logits[test][has_c], "logits", t), cls[test][has_c])
    cal = Calibration(temperature=t, abstain_threshold=choice_fit.threshold,
                      ece_before=details["valence_ece_before"], ece_after=details["valence_ece_after"])
    return cal, details
