"""The shipped default bundle (edge/models/default): present, small, loadable, and as accurate as documented.

Accuracy checks run on a fixed subset of FER2013 val and on GENKI-4K's held-out
split (skipped when ../shared/data is absent); thresholds sit a few points under
the figures in edge/models/default/VALIDATION.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge.bundle import load_bundle
from edge.pipeline import default_bundle_path

# Same rule as tests/conftest.py (a sub-folder's conftest shadows the root one for `from conftest import`).
DATA = Path(os.environ.get("EMOTION_EDGE_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "fer2013").is_dir(), reason=f"dataset folder {DATA} is absent")

# Measured (VALIDATION.md, session 18's bundle): FER2013 val 70.10 % / valence 82.18 % on all 3,435 faces, 69.5 % /
# 83.25 % on this 400-face subset; GENKI held-out 95.30 % as the device publishes it (94.50 % by the top valence
# alone, ignoring the abstain threshold). Thresholds sit 4.5-5.5 points under, so a broken bundle, preprocessing or
# crop framing fails while int8 / runtime rounding differences between machines do not.
MIN_FER_CLASS = 64.0
MIN_FER_VALENCE = 78.0
MIN_GENKI = 90.0


def test_default_bundle_is_shipped_small_and_detector_free():
    root = default_bundle_path()
    b = load_bundle(root, require_detector=False)
    assert not (root / "detector.tflite").exists()  # resolved by sha256 from an installed package
    assert b.manifest.detector is not None and b.manifest.detector.bytes is None
    total = sum(p.stat().st_size for p in root.iterdir() if p.name in ("classifier.tflite", "bundle.json"))
    assert total <= 1_000_000
    training = b.manifest.provenance["training"]
    assert training["seed"] is not None and training["epochs_run"] >= 1
    assert training["exported"]["rule"] in ("best", "last", "swa")  # how the shipped weights were chosen
    assert 1 <= training["exported"]["epoch"] <= training["epochs_run"]
    if training["exported"]["rule"] == "swa":  # a weight average: of which epochs, and how it scored in training
        first, last = training["exported"]["averaged"]
        assert 1 <= first <= last == training["epochs_run"] and training["swa"]["epochs"] == [first, last]
    assert "fer2013" in json.dumps(training["data"])


@needs_data
def test_default_bundle_on_fer_val_subset():
    from convert.heldout import fer_scores

    s = fer_scores(default_bundle_path(), DATA / "fer2013" / "val", limit=400, seed=0)
    assert s["n"] == 400
    assert s["class_accuracy"] >= MIN_FER_CLASS
    assert s["valence_accuracy"] >= MIN_FER_VALENCE


@needs_data
def test_default_bundle_on_genki_heldout_full_device_path():
    if not (DATA / "genki4k" / "labels.csv").is_file():
        pytest.skip(f"GENKI-4K not found in {DATA / 'genki4k'}")
    from convert.heldout import genki_scores

    s = genki_scores(default_bundle_path(), DATA / "genki4k")
    assert s["n"] > 500
    assert s["smile_accuracy"] >= MIN_GENKI
    errors = s["false_positives"] + s["false_negatives"] + s["missed"]
    assert errors == round(s["n"] * (1 - s["smile_accuracy"] / 100))
    assert s["decided_by"] == "label" and s["smile_accuracy_argmax"] >= MIN_GENKI
    assert s["false_positives_argmax"] + s["false_negatives_argmax"] + s["missed"] == round(
        s["n"] * (1 - s["smile_accuracy_argmax"] / 100))
    # An uncertain photo is right when not smiling and a missed smile when smiling, in the label figure only.
    assert s["uncertain_smiles"] <= s["false_negatives"] and s["uncertain"] > 0
