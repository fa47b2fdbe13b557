"""Positive vs not (the GENKI / smile figure) counts what the device publishes: a face under the bundle's
abstain threshold is ``uncertain``, which is not positive (convert.heldout, convert.evaluate)."""

from __future__ import annotations

import numpy as np
import pytest

from convert.evaluate import EvalData, correct_per_sample, published_positive, score
from convert.heldout import is_positive, outcome
from convert.labels import LabelSet
from edge.classifier import make_prediction, published_label_index

ABSTAIN = 0.574
# positive is the top valence but under the threshold: the device says "uncertain"
SPLIT = np.array([0.45, 0.30, 0.25])
SURE = np.array([0.80, 0.15, 0.05])  # clearly positive
NOT = np.array([0.10, 0.60, 0.30])  # clearly neutral


def test_label_rule_follows_the_published_label_and_argmax_ignores_the_threshold():
    split = make_prediction(SPLIT, ABSTAIN)
    assert split.label == "uncertain"
    assert not is_positive(split, "label") and is_positive(split, "argmax")
    sure = make_prediction(SURE, ABSTAIN)
    assert sure.label == "positive" and is_positive(sure) and is_positive(sure, "argmax")


def test_one_rule_for_the_published_label_in_batches_and_per_face():
    batch = np.stack([SPLIT, SURE, NOT])
    assert published_label_index(batch, ABSTAIN).tolist() == [-1, 0, 1]
    assert published_label_index(batch, 0.0).tolist() == [0, 0, 1]
    labels = [make_prediction(v, ABSTAIN).label for v in batch]
    assert labels == ["uncertain", "positive", "neutral"]


def test_outcomes_by_rule():
    split = make_prediction(SPLIT, ABSTAIN)
    assert outcome(0, split) == "right"  # not smiling, not published as positive
    assert outcome(1, split) == "false_negative"  # a smile the device does not report
    assert outcome(0, split, "argmax") == "false_positive"
    assert outcome(1, split, "argmax") == "right"
    assert outcome(1, None) == "missed" and outcome(0, None, "argmax") == "missed"
    assert outcome(1, make_prediction(NOT, ABSTAIN)) == "false_negative"


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="label, argmax"):
        is_positive(make_prediction(SURE, ABSTAIN), "top")


LABELS = LabelSet("v3", ("happy", "neutral", "sad"), {"happy": "positive", "neutral": "neutral", "sad": "negative"})


def _data(labels: list[str], found: list[int]) -> EvalData:
    return EvalData(np.zeros((len(found), 4, 4), np.uint8), np.array(found), labels,
                    [str(i) for i in range(len(labels))], "test", True)


def test_published_positive_applies_the_threshold_and_a_missed_face_is_not_positive():
    probs = np.stack([SPLIT, SURE, NOT]).astype(np.float32)
    data = _data(["no_smile", "smile", "no_smile", "smile"], [0, 1, 2])  # the 4th photo: no face found
    assert published_positive(probs, data, LABELS, 0.0).tolist() == [True, True, False, False]
    assert published_positive(probs, data, LABELS, ABSTAIN).tolist() == [False, True, False, False]
    right = correct_per_sample(probs, data, LABELS, ABSTAIN)["smile"]
    assert right.tolist() == [True, True, True, False]
    assert score(probs, data, LABELS, ABSTAIN).smile_accuracy == 75.0
    assert score(probs, data, LABELS).smile_accuracy == 50.0  # no threshold: the split face reads as positive


def test_threshold_leaves_the_class_and_valence_figures_alone():
    probs = np.stack([SPLIT, SURE, NOT]).astype(np.float32)
    data = _data(["happy", "happy", "neutral"], [0, 1, 2])
    with_t, without = score(probs, data, LABELS, ABSTAIN), score(probs, data, LABELS)
    assert with_t.class_accuracy == without.class_accuracy == 100.0
    assert with_t.valence_accuracy == without.valence_accuracy == 100.0


def test_heldout_figure_counts_the_labels_emotion_edge_analyze_prints(few_genki):
    """The reported GENKI figure is what a user sees: ``emotion-edge analyze`` on the same photos gives, per
    photo, the label ``genki_predictions`` counts (first face; no face, no line)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from convert.datasets import read_genki_labels
    from convert.heldout import genki_predictions
    from edge.pipeline import default_bundle_path

    files = [f for f, _ in read_genki_labels(few_genki)]
    ours = genki_predictions(default_bundle_path(), few_genki, split="all")
    paths = [str(few_genki / "files" / f) for f in files]
    proc = subprocess.run([sys.executable, "-m", "edge", "analyze", "--json", *paths],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    first: dict[str, str] = {}
    for rec in map(json.loads, proc.stdout.splitlines()):
        first.setdefault(Path(rec["file"]).name, rec["label"])
    assert [first.get(f) for f in files] == [p.label if p else None for _, p in ours]
    assert any(p is not None and p.label == "uncertain" for _, p in ours)  # the threshold matters on these photos
