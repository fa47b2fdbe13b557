"""Representative (calibration) sets for int8 quantisation.

``build_calibration_set`` samples a source class-balanced, sends every sample
through the device crop path (``calibration.crops``) and returns uint8 crops.
``save_calibration_set`` writes ``calib.npz`` (crops, labels, ids, the spec and
the manifest as JSON), ``calib.json`` (the manifest, with the npz sha256) and
``calib.png`` (a preview grid). ``load_calibration_set`` reads the npz back.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edge.bundle import sha256_file
from edge.errors import ConfigError, SourceError
from edge.preprocess import PreprocessSpec

from .crops import device_detector, sample_crops
from .sources import CroppedMode, balanced_subset, open_samples

log = logging.getLogger(__name__)

MIN_SAMPLES = 20  # fewer than this: error (int8 ranges would be guesses)
WARN_SAMPLES = 100  # fewer than this: warning


@dataclass
class CalibrationSet:
    """uint8 crops ``(N, S, S[, C])`` made for ``spec``, their labels ('' = none) and ids."""

    crops: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    spec: PreprocessSpec
    manifest: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.crops)

    def content_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.crops).tobytes()).hexdigest()


def build_calibration_set(
    sources: list[str | Path],
    spec: PreprocessSpec,
    n: int = 500,
    *,
    cropped: CroppedMode = "auto",
    seed: int = 0,
    usage: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationSet:
    """Sample ``n`` faces class-balanced from ``sources`` through the device crop path.

    Photos where the detector finds no face are skipped and counted; the sampler
    draws replacements from the same class until the class runs out.
    """
    infos = [open_samples(s, cropped=cropped, usage=usage) for s in sources]
    pool = [s for info in infos for s in info.samples]
    # The whole pool in round-robin class order: taking the first n faces found is
    # class-balanced, and a photo without a face is replaced by the next of its class.
    order = balanced_subset(pool, len(pool), seed=seed)
    detector = device_detector() if any(not s.cropped for s in order) else None
    crops, labels, ids = [], [], []
    per_class: dict[str, int] = {}
    missed = 0
    seen = 0
    try:
        for s in order:
            if len(crops) >= n:
                break
            key = s.label or ""
            seen += 1
            got = sample_crops(s, spec, detector, max_faces=1)
            if not got:
                missed += 1
                continue
            crops.append(got[0])
            labels.append(key)
            ids.append(s.id)
            per_class[key] = per_class.get(key, 0) + 1
            if progress:
                progress(len(crops), n)
    finally:
        if detector is not None:
            detector.close()
    if not crops:
        raise SourceError(
            f"no faces found in {', '.join(map(str, sources))} ({seen} images tried, {missed} without a face)"
        )
    if len(crops) < MIN_SAMPLES:
        raise SourceError(
            f"only {len(crops)} faces found in {', '.join(map(str, sources))}; int8 calibration needs at least "
            f"{MIN_SAMPLES} (about 500 recommended): add images"
        )
    if len(crops) < WARN_SAMPLES:
        log.warning("only %d calibration faces; about 500 are recommended", len(crops))
    arr = np.stack(crops)
    cs = CalibrationSet(arr, np.array(labels), np.array(ids), spec)
    cs.manifest = {
        "kind": "emotion-edge calibration set",
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sources": [{"path": str(i.path), "kind": i.kind, "samples": len(i.samples)} for i in infos],
        "spec": spec.model_dump(mode="json"),
        "count": len(arr),
        "counts_per_class": dict(sorted(per_class.items())),
        "images_tried": seen,
        "missed_faces": missed,
        "seed": seed,
        "content_sha256": cs.content_sha256(),
    }
    return cs


def save_calibration_set(cs: CalibrationSet, out: str | Path) -> dict[str, Path]:
    """Write ``out`` (.npz), its ``.json`` manifest and ``.png`` preview; return the paths."""
    out = Path(out)
    if out.suffix != ".npz":
        out = out.with_suffix(".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, crops=cs.crops, labels=cs.labels, ids=cs.ids,
        spec=json.dumps(cs.spec.model_dump(mode="json")), manifest=json.dumps(cs.manifest),
    )
    manifest = dict(cs.manifest, npz=out.name, npz_sha256=sha256_file(out))
    mpath = out.with_suffix(".json")
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    ppath = out.with_suffix(".png")
    cv2.imwrite(str(ppath), preview_grid(cs))
    log.info("wrote %s (%d faces, %d bytes), %s, %s", out, len(cs), out.stat().st_size, mpath.name, ppath.name)
    return {"npz": out, "manifest": mpath, "preview": ppath}


def load_calibration_set(path: str | Path) -> CalibrationSet:
    """Read a ``calib.npz`` written by ``save_calibration_set``; ``ConfigError`` if it is not one."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"calibration set not found: {p}; build one with `emotion-edge calibrate`")
    try:
        with np.load(p, allow_pickle=False) as z:
            crops, labels, ids = z["crops"], z["labels"], z["ids"]
            spec = PreprocessSpec.model_validate_json(str(z["spec"]))
            manifest = json.loads(str(z["manifest"]))
    except Exception as exc:  # zipfile/KeyError/ValueError: all mean "not our file"
        raise ConfigError(f"{p}: not a calibration set made by `emotion-edge calibrate` ({exc})") from None
    if crops.dtype != np.uint8 or len(crops) == 0:
        raise ConfigError(f"{p}: calibration set is empty or not uint8 crops")
    return CalibrationSet(crops, labels, ids, spec, manifest)


def preview_grid(cs: CalibrationSet, cols: int = 16, max_rows: int = 8, cell: int = 64) -> np.ndarray:
    """A BGR contact sheet of the first crops, one row per class where labelled."""
    rows: list[np.ndarray] = []
    keys = sorted(set(cs.labels.tolist()))
    for k in keys[:max_rows] if len(keys) > 1 else [None] * max_rows:
        idx = np.nonzero(cs.labels == k)[0] if k is not None else np.arange(len(rows) * cols, (len(rows) + 1) * cols)
        idx = idx[idx < len(cs)][:cols]
        if idx.size == 0:
            break
        tiles = [_tile(cs.crops[i], cell) for i in idx]
        tiles += [np.zeros((cell, cell, 3), np.uint8)] * (cols - len(tiles))
        row = np.concatenate(tiles, axis=1)
        if k:
            cv2.putText(row, k, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    return np.concatenate(rows, axis=0)


def _tile(crop: np.ndarray, cell: int) -> np.ndarray:
    img = crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 3 and crop.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # crops are RGB in rgb specs
    return cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
