"""Label presets: class names in model output order and each class's valence.

One table (``PRESETS``); a custom label file is JSON, either
``{"classes": [...], "valence": {class: positive|neutral|negative}}`` or a list of
class names whose valence comes from the project's default map (after Jonsson &
Soderberg: happy positive; neutral, surprise neutral; the rest negative).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from edge.bundle import VALENCES
from edge.errors import ConfigError

# Default class -> valence for names a custom file leaves out.
DEFAULT_VALENCE: dict[str, str] = {
    "happy": "positive", "happiness": "positive", "smile": "positive", "positive": "positive",
    "neutral": "neutral", "surprise": "neutral", "no_smile": "neutral",
    "angry": "negative", "anger": "negative", "disgust": "negative", "fear": "negative",
    "sad": "negative", "sadness": "negative", "contempt": "negative", "negative": "negative",
}


@dataclass(frozen=True)
class LabelSet:
    """Class names in output order, their valence, and where they came from."""

    name: str
    classes: tuple[str, ...]
    valence: dict[str, str]

    def __len__(self) -> int:
        return len(self.classes)


def _preset(name: str, classes: list[str], valence: dict[str, str] | None = None) -> LabelSet:
    return LabelSet(name, tuple(classes), {c: (valence or DEFAULT_VALENCE)[c] for c in classes})


PRESETS: dict[str, LabelSet] = {
    # The Kaggle FER2013 CSV order (0..6).
    "fer7": _preset("fer7", ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]),
    # AffectNet's 8-class order (0..7).
    "affectnet8": _preset(
        "affectnet8", ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt"]
    ),
    "valence3": _preset("valence3", ["positive", "neutral", "negative"]),
    "smile2": _preset("smile2", ["no_smile", "smile"]),
}


def load_labels(spec: str) -> LabelSet:
    """A preset name or a JSON label file -> ``LabelSet``; ``ConfigError`` with a fix otherwise."""
    if spec in PRESETS:
        return PRESETS[spec]
    p = Path(spec).expanduser()
    if not p.suffix and not p.exists():
        close = difflib.get_close_matches(spec, list(PRESETS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown label preset {spec!r}; {hint}choose one of {sorted(PRESETS)} or give a .json file")
    if not p.is_file():
        raise ConfigError(f"label file not found: {p}")
    try:
        raw = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc})") from None
    if isinstance(raw, list):
        raw = {"classes": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("classes"), list):
        raise ConfigError(f'{p}: expected {{"classes": [...], "valence": {{...}}}} or a list of class names')
    classes = [str(c) for c in raw["classes"]]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"{p}: need at least 2 unique class names, got {classes}")
    given = raw.get("valence") or {}
    valence: dict[str, str] = {}
    for c in classes:
        v = given.get(c, DEFAULT_VALENCE.get(c.lower()))
        if v is None:
            raise ConfigError(f"{p}: no valence for class {c!r}; add it to \"valence\" as one of {list(VALENCES)}")
        if v not in VALENCES:
            raise ConfigError(f"{p}: valence of {c!r} is {v!r}; must be one of {list(VALENCES)}")
        valence[c] = v
    return LabelSet(p.stem, tuple(classes), valence)


def check_output_size(labels: LabelSet, n_outputs: int, model: str) -> None:
    """``ConfigError`` when the label set and the model's output size disagree, naming presets that fit."""
    if len(labels) == n_outputs:
        return
    fits = [n for n, s in PRESETS.items() if len(s) == n_outputs]
    hint = f"; presets with {n_outputs} classes: {', '.join(fits)}" if fits else ""
    raise ConfigError(
        f"label set {labels.name!r} has {len(labels)} classes but {model} has {n_outputs} outputs{hint}"
        " (or pass --labels FILE.json)"
    )
