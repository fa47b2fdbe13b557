"""Offline analysis of images, folders and videos: the ``analyze`` command's API.

>>> from edge.analyze import analyze
>>> for face in analyze(["photo.jpg"]):
...     print(face.file, face.label, face.scores)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from .errors import EmotionEdgeError, SourceError
from .pipeline import Pipeline, PipelineOptions

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".h264", ".ts"}


@dataclass(frozen=True)
class FaceRecord:
    """One face found in one image or video frame."""

    file: str
    frame: int
    box: tuple[float, float, float, float]  # normalised x, y, w, h
    label: str
    score: float
    scores: dict[str, float]
    detection_score: float
    track: int | None = None
    time: float | None = None  # seconds into a video

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class InputProblem:
    """An input that could not be analysed (reported, not fatal for the others)."""

    file: str
    reason: str


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files to analyse: folders are expanded (sorted, images and videos only).

    Raises ``SourceError`` for a path that does not exist.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise SourceError(f"no such file or folder: {p}")
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS))
        else:
            out.append(p)
    return out


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR; ``SourceError`` says why it cannot be read."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes)")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"{path}: not a readable image (corrupt, or a format OpenCV cannot decode)")
    return img


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def analyze(
    paths: Iterable[str | Path],
    bundle: str | Path | None = None,
    options: PipelineOptions | None = None,
    every: int = 1,
    problems: list[InputProblem] | None = None,
    pipeline: Pipeline | None = None,
) -> Iterator[FaceRecord]:
    """Yield a ``FaceRecord`` per face in each image, or per face per analysed video frame.

    Images are classified independently (raw label); videos go through the tracker,
    so their labels are smoothed and carry a ``track`` id. Unreadable inputs are
    appended to ``problems`` (if given) and skipped; without ``problems`` they raise.
    """
    files = expand_paths(paths)
    own = pipeline is None
    pipe = pipeline or Pipeline.from_bundle(bundle, options)
    try:
        for f in files:
            try:
                if _is_video(f):
                    yield from _video(pipe, f, every)
                else:
                    yield from _image(pipe, f)
            except SourceError as exc:
                if problems is None:
                    raise
                problems.append(InputProblem(str(f), str(exc)))
    finally:
        if own:
            pipe.close()


def _image(pipe: Pipeline, f: Path) -> Iterator[FaceRecord]:
    img = read_image(f)
    h, w = img.shape[:2]
    for det, pred in pipe.detect_and_classify(img):
        yield FaceRecord(
            file=str(f), frame=0, box=det.normalized_box(w, h), label=pred.label, score=pred.score,
            scores=pred.valence, detection_score=round(det.score, 4),
        )


def _video(pipe: Pipeline, f: Path, every: int) -> Iterator[FaceRecord]:
    cap = cv2.VideoCapture(str(f))
    if not cap.isOpened():
        raise SourceError(f"{f}: cannot open video (corrupt, or a codec OpenCV's FFmpeg cannot decode)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    pipe.tracker.__init__(pipe.tracker.options)  # fresh ids per file
    index = -1
    got_any = False
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            got_any = True
            index += 1
            if index % max(1, every):
                continue
            t = index / fps
            res = pipe.process(frame, t)
            for face in res.faces:
                yield FaceRecord(
                    file=str(f), frame=index, box=face.box, label=face.label, score=face.score,
                    scores=face.scores, detection_score=face.detection_score, track=face.track_id,
                    time=round(t, 3),
                )
    finally:
        cap.release()
        pipe.flush(0.0)
    if not got_any:
        raise SourceError(f"{f}: video has no decodable frames")


def iter_dicts(records: Iterable[FaceRecord]) -> Iterator[dict]:
    for r in records:
        yield r.to_dict()


__all__ = ["FaceRecord", "InputProblem", "analyze", "expand_paths", "read_image", "EmotionEdgeError"]
