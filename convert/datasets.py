"""Training data as uint8 face-crop arrays, made by the one preprocessing path.

* FER2013-style class folders (``DIR/<class>/*.jpg``, already-cropped faces) go
  through ``edge.preprocess.prepare_cropped``.
* GENKI-4K photos (``DIR/files/*.jpg`` + ``DIR/labels.csv``) go through the
  device path: BlazeFace (``edge.detector``) -> ``edge.preprocess.crop_face``,
  so the classifier trains on exactly the crops the camera will produce.

Decoding and detection are cached as ``.npz`` (keyed by the folder, its file
list and the preprocessing spec) under ``cache_dir()`` so reruns start at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.preprocess import PreprocessSpec, crop_face, prepare_cropped

log = logging.getLogger(__name__)

# FER2013's own label order (0..6); bundles list classes in this order.
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# After Jonsson & Soderberg (Lund 2018); see ../shared/data/README.md.
FER_VALENCE: dict[str, str] = {
    "angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative",
    "happy": "positive", "surprise": "neutral", "neutral": "neutral",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Cache format version: bump when what is stored changes.
_CACHE_VERSION = 1
# How GENKI photos find their face before the crop: as the daemon does on video, or as `analyze` does on photos.
GENKI_DETECTORS = ("video", "photo")


@dataclass
class FaceSet:
    """uint8 crops ``(N, S, S[, C])`` with integer labels ``(N,)`` and source file names."""

    x: np.ndarray
    y: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class GenkiSet:
    """GENKI crops from the device path; ``found`` is False where the detector saw no face."""

    x: np.ndarray
    smile: np.ndarray
    found: np.ndarray
    files: list[str]

    def subset(self, idx: np.ndarray) -> GenkiSet:
        return GenkiSet(self.x[idx], self.smile[idx], self.found[idx], [self.files[i] for i in idx])


def cache_dir() -> Path:
    """``$EMOTION_EDGE_CACHE`` or ``$XDG_CACHE_HOME/emotion-edge`` (default ``~/.cache/emotion-edge``)."""
    env = os.environ.get("EMOTION_EDGE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emotion-edge"


def _key(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _load_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:  # a torn write from an interrupted run: rebuild
        log.warning("ignoring unreadable cache %s (%s)", path, exc)
        return None


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically: a kill leaves the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read(path: Path, gray: bool) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise ConfigError(f"cannot read image {path}: not an image or unreadable; remove it from the data folder")
    return img


def list_class_folders(root: Path, classes: tuple[str, ...] = FER_CLASSES) -> list[tuple[Path, int]]:
    """``(file, label)`` for every image under ``root/<class>/``, sorted; unknown folders are an error."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data folder {root} does not exist; point --data at a folder with train/ and val/")
    present = sorted(d.name for d in root.iterdir() if d.is_dir())
    unknown = [d for d in present if d not in classes]
    if unknown:
        raise ConfigError(f"{root}: class folders {unknown} are not in {list(classes)}; rename or remove them")
    items = []
    for label, c in enumerate(classes):
        d = root / c
        if d.is_dir():
            items += [(p, label) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise ConfigError(f"{root}: no images found in class folders {list(classes)}")
    return items


def load_class_folders(
    root: str | Path, spec: PreprocessSpec, classes: tuple[str, ...] = FER_CLASSES, use_cache: bool = True
) -> FaceSet:
    """Load ``root/<class>/*.jpg`` (pre-cropped faces) as uint8 crops for ``spec``."""
    items = list_class_folders(Path(root), classes)
    names = [f"{p.parent.name}/{p.name}" for p, _ in items]
    key = _key(_CACHE_VERSION, "folders", str(Path(root).resolve()), names, spec.model_dump(), list(classes))
    cpath = cache_dir() / f"folders-{key}.npz"
    cached = _load_cache(cpath) if use_cache else None
    if cached is not None:
        return FaceSet(cached["x"], cached["y"], names)
    gray = spec.color == "gray"

    def one(item: tuple[Path, int]) -> np.ndarray:
        return prepare_cropped(_read(item[0], gray), spec)

    # cv2 releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        x = np.stack(list(pool.map(one, items, chunksize=256)))
    y = np.array([lab for _, lab in items], np.int32)
    if use_cache:
        save_npz(cpath, x=x, y=y)
    log.info("loaded %d images from %s", len(y), root)
    return FaceSet(x, y, names)


def read_genki_labels(root: Path) -> list[tuple[str, int]]:
    """``(file, smile)`` rows of ``root/labels.csv`` (columns file, smile, ...)."""
    path = Path(root) / "labels.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found; --genki expects a GENKI-4K folder with labels.csv and files/")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0] or "smile" not in rows[0]:
        raise ConfigError(f"{path}: expected columns file,smile")
    return [(r["file"], int(r["smile"])) for r in rows]


def genki_split(files: list[str], test_fraction: float = 0.3) -> np.ndarray:
    """Boolean mask: True for the fixed held-out part of GENKI (by a hash of the file name).

    Independent of the order and of which files exist, so training never sees a
    test file, whatever subset of GENKI-4K is present.
    """
    out = np.zeros(len(files), bool)
    for i, f in enumerate(files):
        h = int.from_bytes(hashlib.sha256(Path(f).name.encode()).digest()[:4], "big")
        out[i] = (h / 2**32) < test_fraction
    return out


def load_genki(
    root: str | Path,
    spec: PreprocessSpec,
    detector_path: Path | None = None,
    score_threshold: float = 0.5,
    use_cache: bool = True,
    detector: str = "video",
) -> GenkiSet:
    """GENKI-4K photos through the device crop path (BlazeFace -> ``crop_face``).

    The best-scoring face of each photo is kept; photos with no face get a
    zero crop and ``found=False`` (a miss counts as an error in evaluation).
    ``detector="video"`` finds faces as the daemon does (``score_threshold``, no
    zoom on a miss); ``"photo"`` as ``analyze`` and the held-out GENKI figure do
    (``still_image_options``: score 0.6, zoom on a miss; ``score_threshold`` unused).
    BlazeFace blends overlapping boxes above its threshold, so the two frame a
    face a little differently.
    """
    from edge.assets import find_blazeface
    from edge.detector import DetectorOptions, FaceDetector, still_image_options

    root = Path(root)
    rows = read_genki_labels(root)
    files = [f for f, _ in rows]
    smile = np.array([s for _, s in rows], np.int32)
    det_path = Path(detector_path) if detector_path else find_blazeface()
    if detector not in GENKI_DETECTORS:
        raise ConfigError(f"GENKI detector setting {detector!r}: choose one of {', '.join(GENKI_DETECTORS)}")
    opts = (still_image_options(det_path) if detector == "photo"
            else DetectorOptions(model_path=det_path, score_threshold=score_threshold, min_face_px=0.0))
    # The video setting keeps its original key, so caches made before the photo setting existed stay valid.
    how: tuple = (score_threshold,) if detector == "video" else (
        "photo", {k: v for k, v in asdict(opts).items() if k != "model_path"})  # the model goes in by its sha256
    key = _key(_CACHE_VERSION, "genki", str(root.resolve()), files, spec.model_dump(), *how,
               hashlib.sha256(det_path.read_bytes()).hexdigest())
    cpath = cache_dir() / f"genki-{key}.npz"
    cached = _load_cache(cpath) if use_cache else None
    if cached is not None:
        return GenkiSet(cached["x"], smile, cached["found"].astype(bool), files)
    det = FaceDetector(opts)
    shape = (spec.input_size, spec.input_size) + ((spec.channels,) if spec.channels > 1 else ())
    x = np.zeros((len(files),) + shape, np.uint8)
    found = np.zeros(len(files), bool)
    for i, f in enumerate(files):
        img = _read(root / "files" / f, gray=False)
        faces = det.detect(img)
        if faces:
            best = faces[0]
            x[i] = crop_face(img, best.box, spec, best.eyes)
            found[i] = True
    if use_cache:
        save_npz(cpath, x=x, found=found)
    log.info("GENKI: %d photos, %d with a face", len(files), int(found.sum()))
    return GenkiSet(x, smile, found, files)
