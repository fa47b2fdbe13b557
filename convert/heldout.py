"""Figures of a bundle on data training did not use, measured the way the device runs.

* FER2013 class folders (pre-cropped faces): ``prepare_cropped`` -> int8 classifier;
  7-class accuracy and 3-class valence accuracy (classes summed per valence).
* GENKI-4K's fixed held-out split (``convert.datasets.genki_split``): the full device
  path, ``Pipeline.detect_and_classify`` (BlazeFace -> ``crop_face`` -> classifier) with
  the photo options of ``emotion-edge analyze``;
  positive vs not against the smile label, "positive" being the label the device
  publishes (``Prediction.label``: the top valence, and at or above the bundle's abstain
  threshold; ``uncertain`` is not positive); a missed face is an error.
* Classifier latency on one thread (median of single-face invocations).

Needs no TensorFlow: only the device runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import VALENCES, load_bundle
from edge.classifier import UNCERTAIN, Classifier, Prediction
from edge.preprocess import prepare_cropped

from .datasets import FER_CLASSES, FER_VALENCE, _read, genki_split, list_class_folders, read_genki_labels
from .evaluate import confusion


def fer_scores(bundle_path: str | Path, folder: str | Path, limit: int | None = None,
               seed: int = 0) -> dict[str, Any]:
    """7-class and valence accuracy (%) of a bundle on FER2013 class folders ``folder/<class>/*.jpg``.

    A bundle with the 7 FER classes gets both figures; any other bundle (e.g. a
    ``valence3`` head) gets valence accuracy only, ``class_accuracy`` is None.
    ``limit`` takes a seeded random subset (same subset for the same seed).
    """
    b = load_bundle(bundle_path, require_detector=False)
    classes = tuple(b.manifest.classes)
    items = list_class_folders(Path(folder), FER_CLASSES)
    if limit and limit < len(items):
        idx = np.sort(np.random.default_rng(seed).permutation(len(items))[:limit])
        items = [items[i] for i in idx]
    spec = b.manifest.preprocess
    crops = np.stack([prepare_cropped(_read(p, spec.color == "gray"), spec) for p, _ in items])
    y = np.array([lab for _, lab in items])
    with Classifier(b) as clf:
        probs = clf.probabilities(crops)
        val = clf.valence_probabilities(probs)
    truth_val = np.array([VALENCES.index(FER_VALENCE[FER_CLASSES[k]]) for k in y])
    seven = classes == FER_CLASSES
    return {
        "n": len(y),
        "class_accuracy": round(100.0 * float(np.mean(probs.argmax(1) == y)), 2) if seven else None,
        "valence_accuracy": round(100.0 * float(np.mean(val.argmax(1) == truth_val)), 2),
        # Rows: truth, columns: prediction (counts), in FER_CLASSES / VALENCES order.
        "confusion": confusion(y, probs.argmax(1), len(FER_CLASSES), missed=False) if seven else None,
        "valence_confusion": confusion(truth_val, val.argmax(1), len(VALENCES), missed=False),
    }


GENKI_DECISIONS = ("label", "argmax")


def genki_predictions(bundle_path: str | Path, genki: str | Path, test_fraction: float = 0.3,
                      split: str = "test") -> list[tuple[int, Prediction | None]]:
    """``(smile, prediction)`` per photo of a GENKI split, in ``labels.csv`` order; ``None`` where no face was found.

    ``split`` is ``"test"`` (the fixed held-out part), ``"train"`` or ``"all"``. The photos go through the
    full device path with the options `emotion-edge analyze` uses on photos (score 0.6, zoom on a miss).
    """
    from edge.pipeline import Pipeline, PipelineOptions

    genki = Path(genki)
    rows = read_genki_labels(genki)
    held = genki_split([f for f, _ in rows], test_fraction)
    pick = held if split == "test" else ~held if split == "train" else np.ones(len(rows), bool)
    rows = [r for r, k in zip(rows, pick) if k]
    pipe = Pipeline.from_bundle(bundle_path, PipelineOptions(score_threshold=0.6, zoom_on_miss=True))
    out: list[tuple[int, Prediction | None]] = []
    try:
        for f, smile in rows:
            faces = pipe.detect_and_classify(_read(genki / "files" / f, gray=False))
            out.append((smile, faces[0][1] if faces else None))
    finally:
        pipe.close()
    return out


def is_positive(pred: Prediction, decide: str = "label") -> bool:
    """Whether a prediction counts as "positive" in the positive-vs-not figure.

    ``"label"`` (the reported figure): what the device publishes, ``pred.label == "positive"``, so a face under
    the abstain threshold (``uncertain``) is not positive. ``"argmax"``: the top valence probability, ignoring
    the abstain threshold (the figure reported until session 20; docs/training.md).
    """
    _check_decide(decide)
    if decide == "label":
        return pred.label == "positive"
    return max(pred.valence, key=pred.valence.get) == "positive"


def _check_decide(decide: str) -> None:
    if decide not in GENKI_DECISIONS:
        raise ValueError(f"decide={decide!r}: choose one of {', '.join(GENKI_DECISIONS)}")


def outcome(smile: int, pred: Prediction | None, decide: str = "label") -> str:
    """``"right"``, ``"false_positive"`` (not smiling, read as positive), ``"false_negative"`` (smiling, read
    as anything else) or ``"missed"`` (no face found) for one photo."""
    if pred is None:
        return "missed"
    positive = is_positive(pred, decide)
    return "right" if positive == bool(smile) else "false_positive" if positive else "false_negative"


def genki_outcomes(bundle_path: str | Path, genki: str | Path, test_fraction: float = 0.3,
                   split: str = "test", decide: str = "label") -> list[str]:
    """Per-photo ``outcome`` on GENKI through the full device path, in ``labels.csv`` order of the split."""
    _check_decide(decide)  # before the slow part
    return [outcome(s, p, decide) for s, p in genki_predictions(bundle_path, genki, test_fraction, split)]


def genki_scores(bundle_path: str | Path, genki: str | Path, test_fraction: float = 0.3,
                 split: str = "test") -> dict[str, Any]:
    """Positive-vs-not accuracy (%) on GENKI photos through the full device path; misses are errors.

    ``smile_accuracy`` counts what the device publishes (``decide="label"``); ``smile_accuracy_argmax`` the top
    valence without the abstain threshold, for comparison with figures reported before session 21. Also counts
    the errors by kind: ``false_positives`` (not smiling, read as positive) and ``false_negatives`` (smiling,
    read as anything else); ``missed`` faces are the rest; ``uncertain`` photos were labelled so (under the
    abstain threshold), of which ``uncertain_smiles`` were smiling.
    """
    preds = genki_predictions(bundle_path, genki, test_fraction, split)
    out = [outcome(s, p) for s, p in preds]
    argmax = [outcome(s, p, "argmax") for s, p in preds]
    uncertain = [s for s, p in preds if p is not None and p.label == UNCERTAIN]
    n = max(1, len(out))
    return {"n": len(out), "missed": out.count("missed"),
            "smile_accuracy": round(100.0 * out.count("right") / n, 2),
            "false_positives": out.count("false_positive"), "false_negatives": out.count("false_negative"),
            "decided_by": "label", "uncertain": len(uncertain), "uncertain_smiles": sum(uncertain),
            "smile_accuracy_argmax": round(100.0 * argmax.count("right") / n, 2),
            "false_positives_argmax": argmax.count("false_positive"),
            "false_negatives_argmax": argmax.count("false_negative"),
            "split": split, "test_fraction": test_fraction}


def classifier_latency_ms(bundle_path: str | Path, runs: int = 300, threads: int = 1) -> float:
    """Median wall time (ms) of one classifier invocation on one face, ``threads`` threads."""
    b = load_bundle(bundle_path, require_detector=False)
    spec = b.manifest.preprocess
    crop = np.random.default_rng(0).integers(0, 255, (1, spec.input_size, spec.input_size), np.uint8)
    from .evaluate import median_ms

    with Classifier(b, num_threads=threads) as clf:
        return round(median_ms(lambda: clf.probabilities(crop), warmup=30, runs=runs), 3)

