"""Where face images come from: one ``Sample`` list for every kind of source.

Kinds recognised by ``open_samples``:

- class-folder tree ``ROOT/<class>/*.jpg`` (FER2013 layout): labelled by folder;
- GENKI-style ``labels.csv`` (``file,smile,...``) with the photos next to it or in ``files/``:
  labels ``smile`` / ``no_smile``;
- the original Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``): 48x48 crops labelled in fer7 order;
- a folder of photos without class folders, single images, or videos (frames sampled): unlabelled.

A sample is either a pre-cropped face (``cropped``: goes through ``prepare_cropped``)
or a photo / video frame (goes through the detector and ``crop_face``, as on the device).
Images are read lazily, so listing a 30,000-image tree costs a directory walk only.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np

from edge.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
FER7_CSV_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CroppedMode = Literal["auto", "yes", "no"]


@dataclass(frozen=True)
class Sample:
    """One image: an id (path, path#frame or csv#row), its label (or None) and how to read it."""

    id: str
    label: str | None
    cropped: bool
    load: Callable[[], np.ndarray]  # -> BGR or gray uint8


@dataclass(frozen=True)
class SourceInfo:
    """What ``open_samples`` found: the source kind and its samples."""

    kind: str
    path: Path
    samples: list[Sample]

    @property
    def labelled(self) -> bool:
        return any(s.label is not None for s in self.samples)

    def class_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            if s.label is not None:
                out[s.label] = out.get(s.label, 0) + 1
        return dict(sorted(out.items()))


def read_image(path: Path) -> np.ndarray:
    """Read an image as BGR (or gray for 1-channel files); ``SourceError`` if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SourceError(f"cannot read image {path}")
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def _image_loader(path: Path) -> Callable[[], np.ndarray]:
    return lambda: read_image(path)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _looks_cropped(paths: list[Path], mode: CroppedMode) -> bool:
    """Small square images are face crops (FER2013 is 48x48); decided on a few files."""
    if mode != "auto":
        return mode == "yes"
    for p in paths[:: max(1, len(paths) // 5)][:5]:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            continue
        h, w = img.shape[:2]
        if h != w or h > 128:
            return False
    return True


def open_samples(source: str | Path, cropped: CroppedMode = "auto", video_stride: int = 15,
                 usage: str | None = None) -> SourceInfo:
    """List the samples of ``source`` (see the module docstring); ``SourceError`` if none."""
    p = Path(source).expanduser()
    if not p.exists():
        raise SourceError(f"source not found: {p}")
    if p.is_file():
        name = p.name.lower()
        if p.suffix.lower() == ".csv":
            head = p.open(newline="").readline().lower()
            if "pixels" in head:
                info = _kaggle_csv(p, usage)
            else:
                info = _labels_csv(p, cropped)
        elif p.suffix.lower() in VIDEO_EXTS:
            info = SourceInfo("video", p, _video_samples(p, video_stride))
        elif p.suffix.lower() in IMAGE_EXTS:
            info = SourceInfo("photos", p, [Sample(str(p), None, _looks_cropped([p], cropped), _image_loader(p))])
        else:
            raise SourceError(f"{p}: unknown source type {name!r}; give a class-folder tree, labels.csv, "
                              "fer2013.csv, a video or a folder of photos")
    elif (p / "labels.csv").is_file():
        info = _labels_csv(p / "labels.csv", cropped)
    else:
        info = _folder(p, cropped, video_stride)
    if not info.samples:
        raise SourceError(f"{p}: no images found (looked for {info.kind}); check the path")
    log.info("source %s: %s, %d samples, classes %s", p, info.kind, len(info.samples), info.class_counts())
    return info


def _folder(root: Path, cropped: CroppedMode, video_stride: int) -> SourceInfo:
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_dirs = [d for d in subdirs if _images_in(d)]
    if class_dirs:
        samples: list[Sample] = []
        all_paths = [q for d in class_dirs for q in _images_in(d)[:2]]
        is_crop = _looks_cropped(all_paths, cropped)
        for d in class_dirs:
            samples += [Sample(str(q), d.name, is_crop, _image_loader(q)) for q in _images_in(d)]
        return SourceInfo("class folders", root, samples)
    images = _images_in(root)
    videos = sorted(q for q in root.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_EXTS)
    is_crop = _looks_cropped(images, cropped) if images else False
    samples = [Sample(str(q), None, is_crop, _image_loader(q)) for q in images]
    for v in videos:
        samples += _video_samples(v, video_stride)
    return SourceInfo("unlabelled photos/videos", root, samples)


def _labels_csv(csv_path: Path, cropped: CroppedMode) -> SourceInfo:
    """GENKI-style: a ``file`` column and a label column (``smile`` 1/0, or ``label``/``class``)."""
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return SourceInfo("labels.csv", csv_path, [])
    cols = {c.lower(): c for c in rows[0]}
    file_col = cols.get("file") or cols.get("path") or cols.get("filename")
    if file_col is None:
        raise SourceError(f"{csv_path}: needs a 'file' column (found {list(rows[0])})")
    base = csv_path.parent / "files" if (csv_path.parent / "files").is_dir() else csv_path.parent

    def label_of(row: dict[str, str]) -> str | None:
        if "smile" in cols:
            return "smile" if row[cols["smile"]].strip() in ("1", "1.0", "true", "yes") else "no_smile"
        for key in ("label", "class", "emotion"):
            if key in cols:
                return row[cols[key]].strip() or None
        return None

    paths = [base / r[file_col] for r in rows]
    missing = [q for q in paths if not q.is_file()]
    if len(missing) == len(paths):
        raise SourceError(f"{csv_path}: none of the listed files exist under {base}")
    if missing:
        log.warning("%s: %d listed files are missing, skipped", csv_path, len(missing))
    is_crop = _looks_cropped([q for q in paths if q.is_file()], cropped)
    samples = [Sample(str(q), label_of(r), is_crop, _image_loader(q)) for q, r in zip(paths, rows) if q.is_file()]
    return SourceInfo("labels.csv", csv_path, samples)


def _kaggle_csv(csv_path: Path, usage: str | None) -> SourceInfo:
    """The original Kaggle ``fer2013.csv``: ``emotion`` 0..6, ``pixels`` (2304 numbers), ``Usage``."""
    samples = []
    with csv_path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if usage and row.get("Usage", "") != usage:
                continue
            try:
                label = FER7_CSV_ORDER[int(row["emotion"])]
                px = np.array(row["pixels"].split(), np.uint8)
                side = int(round(np.sqrt(px.size)))
                img = px.reshape(side, side)
            except (KeyError, ValueError, IndexError) as exc:
                raise SourceError(f"{csv_path}: row {i + 2} is not emotion,pixels,Usage ({exc})") from None
            samples.append(Sample(f"{csv_path.name}#{i}", label, True, (lambda im=img: im)))
    return SourceInfo("fer2013.csv", csv_path, samples)


def _video_samples(path: Path, stride: int) -> list[Sample]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if n <= 0:
        return []
    return [Sample(f"{path}#{i}", None, False, _frame_loader(path, i)) for i in range(0, n, max(1, stride))]


def _frame_loader(path: Path, index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        cap = cv2.VideoCapture(str(path))
        try:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
        finally:
            cap.release()
        if not ok:
            raise SourceError(f"cannot read frame {index} of {path}")
        return frame
    return load


def balanced_subset(samples: list[Sample], n: int, seed: int = 0) -> list[Sample]:
    """Up to ``n`` samples, as even across labels as the data allows (round-robin over shuffled classes).

    Unlabelled samples count as one class. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    by: dict[str | None, list[Sample]] = {}
    for s in samples:
        by.setdefault(s.label, []).append(s)
    pools = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by.items(), key=lambda kv: str(kv[0]))}
    out: list[Sample] = []
    while len(out) < n and any(pools.values()):
        for k in list(pools):
            if pools[k] and len(out) < n:
                out.append(pools[k].pop())
    return out
