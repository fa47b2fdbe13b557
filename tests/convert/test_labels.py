"""Label presets and custom label files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convert.labels import PRESETS, check_output_size, load_labels
from edge.errors import ConfigError


def test_fer7_is_the_kaggle_order_with_the_project_valence_map() -> None:
    s = load_labels("fer7")
    assert s.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert s.valence["happy"] == "positive" and s.valence["surprise"] == "neutral" and s.valence["fear"] == "negative"
    assert len(load_labels("affectnet8")) == 8 and load_labels("affectnet8").valence["contempt"] == "negative"
    assert set(PRESETS) == {"fer7", "affectnet8", "valence3", "smile2"}


def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'fer7'"):
        load_labels("fer8")


def test_custom_file_with_and_without_valence(tmp_path: Path) -> None:
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"classes": ["joy", "meh"], "valence": {"joy": "positive", "meh": "neutral"}}))
    assert load_labels(str(p)).valence == {"joy": "positive", "meh": "neutral"}
    p.write_text(json.dumps(["happy", "sad"]))
    assert load_labels(str(p)).valence == {"happy": "positive", "sad": "negative"}
    p.write_text(json.dumps({"classes": ["joy", "meh"]}))
    with pytest.raises(ConfigError, match="no valence for class 'joy'"):
        load_labels(str(p))


def test_output_size_mismatch_names_presets_that_fit() -> None:
    with pytest.raises(ConfigError, match="has 2 classes but m.h5 has 7 outputs; presets with 7 classes: fer7"):
        check_output_size(load_labels("smile2"), 7, "m.h5")
    check_output_size(load_labels("fer7"), 7, "m.h5")
