"""Figures of a bundle on data training did not use, measured the way the device runs.

* FER2013 class folders (pre-cropped faces): ``prepare_cropped`` -> int8 classifier;
  7-class accuracy and 3-class valence accuracy (classes summed per valence).
* GENKI-4K's fixed held-out split (``convert.datasets.genki_split``): the full device
  path, ``Pipeline.detect_and_classify`` (BlazeFace -> ``crop_face`` -> classifier) with
  the photo options of ``emotion-edge analyze``;
  positive (valence label) vs not against the smile label; a missed face is an error.
* Classifier latency on one thread (median of single-face invocations).

Needs no TensorFlow: only the device runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import VALENCES, load_bundle
from edge.classifier import Classifier
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


def genki_outcomes(bundle_path: str | Path, genki: str | Path, test_fraction: float = 0.3,
                   split: str = "test") -> list[str]:
    """Per-photo outcome on GENKI through the full device path, in ``labels.csv`` order of the split.

    Each photo is ``"right"``, ``"false_positive"`` (not smiling, read as positive), ``"false_negative"``
    (smiling, read as neutral or negative) or ``"missed"`` (no face found).
    """
    from edge.pipeline import Pipeline, PipelineOptions

    genki = Path(genki)
    rows = read_genki_labels(genki)
    held = genki_split([f for f, _ in rows], test_fraction)
    pick = held if split == "test" else ~held if split == "train" else np.ones(len(rows), bool)
    rows = [r for r, k in zip(rows, pick) if k]
    # The options `emotion-edge analyze` uses on photos (score 0.6, zoom on a miss).
    pipe = Pipeline.from_bundle(bundle_path, PipelineOptions(score_threshold=0.6, zoom_on_miss=True))
    out = []
    try:
        for f, smile in rows:
            faces = pipe.detect_and_classify(_read(genki / "files" / f, gray=False))
            if not faces:
                out.append("missed")
                continue
            pred = faces[0][1]
            positive = max(pred.valence, key=pred.valence.get) == "positive"
            out.append("right" if positive == bool(smile) else "false_positive" if positive else "false_negative")
    finally:
        pipe.close()
    return out


def genki_scores(bundle_path: str | Path, genki: str | Path, test_fraction: float = 0.3,
                 split: str = "test") -> dict[str, Any]:
    """Positive-vs-not accuracy (%) on GENKI photos through the full device path; misses are errors.

    Also counts the errors by kind: ``false_positives`` (not smiling, read as positive) and
    ``false_negatives`` (smiling, read as neutral or negative); ``missed`` faces are the rest.
    """
    out = genki_outcomes(bundle_path, genki, test_fraction, split)
    return {"n": len(out), "missed": out.count("missed"),
            "smile_accuracy": round(100.0 * out.count("right") / max(1, len(out)), 2),
            "false_positives": out.count("false_positive"), "false_negatives": out.count("false_negative"),
            "split": split, "test_fraction": test_fraction}


def classifier_latency_ms(bundle_path: str | Path, runs: int = 300, threads: int = 1) -> float:
    """Median wall time (ms) of one classifier invocation on one face, ``threads`` threads."""
    b = load_bundle(bundle_path, require_detector=False)
    spec = b.manifest.preprocess
    crop = np.random.default_rng(0).integers(0, 255, (1, spec.input_size, spec.input_size), np.uint8)
    from .evaluate import median_ms

    with Classifier(b, num_threads=threads) as clf:
        return round(median_ms(lambda: clf.probabilities(crop), warmup=30, runs=runs), 3)

