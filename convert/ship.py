"""Trained ``.keras`` model -> full-int8 bundle with its training record and held-out figures.

The minimal path used to build the shipped default bundle: TFLiteConverter
full-integer quantisation (int8 in/out) with representative data taken from the
*training* crops (the same ``edge.preprocess`` path as the device), LiteRT load
test, then ``convert.bundle_writer.write_bundle`` without the detector (the
device resolves BlazeFace by sha256). The general tool is ``emotion-edge convert``
(pruning, calibration, report); this module only records what ``train`` knows
(seed, data, epochs) in ``bundle.json`` provenance.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import parse_manifest
from edge.preprocess import PreprocessSpec, normalize

log = logging.getLogger(__name__)


def representative_crops(record: dict[str, Any], n_fer: int = 400, n_genki: int = 100, seed: int = 0) -> np.ndarray:
    """Class-balanced uint8 training crops (FER train + GENKI train split) for int8 calibration."""
    from .datasets import genki_split, load_class_folders, load_genki

    spec = PreprocessSpec.model_validate(record["preprocess"])
    data = Path(record["data"]["train"])
    train = load_class_folders(data / "train" if (data / "train").is_dir() else data, spec)
    rng = np.random.default_rng(seed)
    per = max(1, n_fer // 7)
    idx = np.concatenate([rng.permutation(np.nonzero(train.y == c)[0])[:per] for c in range(7)])
    parts = [train.x[idx]]
    if record["data"].get("genki") and n_genki:
        g = load_genki(record["data"]["genki"], spec, detector=record["data"].get("genki_detector") or "video")
        ok = np.nonzero(~genki_split(g.files, record["data"]["genki_test_fraction"]) & g.found)[0]
        parts.append(g.x[rng.permutation(ok)[:n_genki]])
    return np.concatenate(parts)


def quantize_int8(model_path: str | Path, crops: np.ndarray, spec: PreprocessSpec) -> bytes:
    """Full-integer (int8 in/out) TFLite of a Keras model, calibrated on ``crops``."""
    import keras

    from .quantize import to_tflite

    model = keras.saving.load_model(model_path, compile=False)
    return to_tflite(model, "int8", representative=normalize(crops, spec))


def ship(model_path: str | Path, out: str | Path, bundle_id: str, record: dict[str, Any] | None = None) -> Path:
    """Quantise ``model_path`` (made by ``train``) and write a detector-less bundle at ``out``."""
    from .bundle_writer import write_bundle

    model_path = Path(model_path)
    record = record or json.loads(model_path.with_suffix(".json").read_text())
    spec = PreprocessSpec.model_validate(record["preprocess"])
    tflite = quantize_int8(model_path, representative_crops(record), spec)
    return write_bundle(
        out, tflite, bundle_id=bundle_id, preprocess=spec, classes=record["classes"], valence=record["valence"],
        output="probabilities", provenance={"training": training_provenance(record), "quantization": {
            "method": "TFLiteConverter full int8, int8 input/output",
            "representative": "500 training crops (FER2013 train, class-balanced + GENKI train split)"}},
        include_detector=False,
    )


def preprocess_mismatch(record: dict[str, Any], bundle_spec: PreprocessSpec) -> list[str]:
    """How a bundle's preprocessing differs from its training run's, as ``"field: trained X, bundle Y"``.

    The device prepares every face with the bundle's spec; a model trained on crops made another way (margin,
    shift, eye-line alignment, enhancement, scaling) sees other faces than it learnt from. Empty when they agree
    or the record has no spec.
    """
    if record.get("preprocess") is None:
        return []
    trained = PreprocessSpec.model_validate(record["preprocess"])
    return [f"{k}: trained {a!r}, bundle {b!r}" for k, a, b in trained.differences(bundle_spec)]


def training_record(model_path: str | Path) -> dict[str, Any] | None:
    """The record ``emotion-edge train`` wrote next to ``model_path`` (``MODEL.json``), or None when there is none
    (a model from elsewhere) or the file is not one."""
    path = Path(model_path).with_suffix(".json")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "recipe" in record and "preprocess" in record else None


def training_provenance(record: dict[str, Any]) -> dict[str, Any]:
    """What ``bundle.json`` keeps of a training record: enough to rebuild the model."""
    keep = ("recipe", "preprocess", "seed", "data", "precision", "params", "best", "exported", "host", "distill")
    out = {k: record.get(k) for k in keep}
    if "swa" in record:  # the weight-averaging phase: its epochs, learning rate and val scores
        out["swa"] = record["swa"]
    if "params_training" in record:  # peer heads: the training model was larger than the shipped one
        out["params_training"] = record["params_training"]
    out["epochs_run"] = len(record.get("history", []))
    base = base_record(record)
    if base is not None:  # a fine-tuned (pruned) copy of an earlier run: keep that run too
        out["init_from"] = {**record["init_from"], "run": training_provenance(base)}
    return out


def base_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """The training record of the run a fine-tune started from (its ``state.json``), if known."""
    init = record.get("init_from")
    if not init:
        return None
    state = Path(init["model"]).parent / "state.json"
    return json.loads(state.read_text()) if state.is_file() else None


def update_manifest(bundle: str | Path, provenance: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> None:
    """Merge provenance / metrics into a bundle's ``bundle.json`` (validated; the classifier hash is untouched)."""
    path = Path(bundle) / "bundle.json"
    raw = json.loads(path.read_text())
    raw.setdefault("provenance", {}).update(provenance or {})
    raw.setdefault("metrics", {}).update(metrics or {})
    parse_manifest(json.dumps(raw), origin=str(path))
    path.write_text(json.dumps(raw, indent=2) + "\n")
