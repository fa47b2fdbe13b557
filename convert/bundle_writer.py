"""Write a bundle directory (design: classifier.tflite + bundle.json [+ detector.tflite])."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edge.assets import BLAZEFACE_SHORT_SHA256, find_blazeface
from edge.bundle import BundleManifest, Calibration, DetectorEntry, FileEntry, sha256_file
from edge.preprocess import PreprocessSpec

log = logging.getLogger(__name__)


def write_bundle(
    out: str | Path,
    classifier_tflite: bytes,
    *,
    bundle_id: str,
    preprocess: PreprocessSpec,
    classes: list[str],
    valence: dict[str, str],
    output: str = "probabilities",
    calibration: Calibration | None = None,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    include_detector: bool = True,
) -> Path:
    """Write a bundle atomically (into a temp dir, then rename) and return its path.

    With ``include_detector`` the BlazeFace file is copied in from the installed
    package it comes from, after its sha256 is checked; without, the manifest
    still pins it and the device resolves it by hash.
    """
    out = Path(out)
    # The temp dir sits next to ``out`` so the final rename stays on one filesystem.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        # mkdtemp makes the folder 0700; a bundle must be readable by the service user.
        os.chmod(tmp, 0o755)
        (tmp / "classifier.tflite").write_bytes(classifier_tflite)
        det_bytes = None
        if include_detector:
            src = find_blazeface(BLAZEFACE_SHORT_SHA256)
            shutil.copyfile(src, tmp / "detector.tflite")
            det_bytes = (tmp / "detector.tflite").stat().st_size
        manifest = BundleManifest(
            id=bundle_id,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            classifier=FileEntry(
                file="classifier.tflite",
                sha256=sha256_file(tmp / "classifier.tflite"),
                bytes=len(classifier_tflite),
            ),
            detector=DetectorEntry(file="detector.tflite", sha256=BLAZEFACE_SHORT_SHA256, bytes=det_bytes),
            preprocess=preprocess,
            classes=list(classes),
            valence=dict(valence),  # type: ignore[arg-type]
            output=output,  # type: ignore[arg-type]
            calibration=calibration or Calibration(),
            provenance=provenance or {},
            metrics=metrics or {},
        )
        (tmp / "bundle.json").write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote bundle %s (%d bytes classifier)", out, len(classifier_tflite))
    return out
