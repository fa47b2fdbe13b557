"""Sources on disk: a video file, one image, or a folder of images."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from .base import BaseSource, as_bgr

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"})


def _natural_key(path: Path) -> list[object]:
    # "img2" before "img10", as people number their files.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def open_path(spec: str, *, config_key: str = "camera.source", realtime: bool = False) -> BaseSource:
    """A folder of images, one image, or a video file, judged by what the path is.

    ``realtime``: pace a video file at its own frame rate (as a camera would deliver it).
    """
    path = Path(spec[len("file://"):] if spec.lower().startswith("file://") else spec).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, config_key=config_key)
    if not path.exists():
        raise SourceError(
            f"{config_key}: {path} does not exist (expected a video file, an image or a folder of images)"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path, config_key=config_key)
    return VideoFileSource(path, config_key=config_key, realtime=realtime)


class ImageFolderSource(BaseSource):
    """Images of a folder in natural name order (or one image file), one frame each.

    Files with an image suffix that cannot be decoded (corrupt, empty) are skipped
    with a warning and counted in ``stats().read_errors``; other files are ignored.
    """

    def __init__(self, path: Path, *, config_key: str = "camera.source") -> None:
        super().__init__(str(path))
        if path.is_dir():
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                           key=_natural_key)
            if not files:
                raise SourceError(
                    f"{config_key}: folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
        else:
            files = [path]
        self.files = files
        self._next = 0
        self.current: Path | None = None  # file of the frame last returned

    def _grab(self) -> tuple[np.ndarray, float | None] | None:
        while self._next < len(self.files):
            f = self.files[self._next]
            self._next += 1
            # imdecode(fromfile) rather than imread: reads non-ASCII paths on every OS.
            try:
                data = np.fromfile(f, np.uint8)
                img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            except (OSError, cv2.error) as exc:
                log.debug("cannot read %s: %s", f, exc)
                img = None
            if img is None:
                self._read_errors += 1
                log.warning("skipping %s: not a readable image (%d skipped so far)", f, self._read_errors)
                continue
            self.current = f
            return as_bgr(img), None
        return None

    def _release(self) -> None:
        self.files = []


class VideoFileSource(BaseSource):
    """Frames of a video file decoded by OpenCV's FFmpeg backend; ``None`` at the end."""

    def __init__(self, path: Path, *, config_key: str = "camera.source", realtime: bool = False) -> None:
        super().__init__(str(path))
        self.live = realtime
        self._cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(
                f"{config_key}: cannot open {path} as a video (not a format OpenCV/FFmpeg can decode, "
                "or a damaged file); use a video file, an image or a folder of images"
            )
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.file_fps = fps if fps and 0 < fps < 1000 else None
        frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = frames if frames > 0 else None
        self._t0: float | None = None

    def _grab(self) -> tuple[np.ndarray, float | None] | None:
        ok, img = self._cap.read()
        if not ok or img is None:
            return None
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if self.live and self.file_fps:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now - pts
            delay = self._t0 + pts - now
            if delay > 0 and self._stop.wait(delay):
                return None
        return as_bgr(img), pts

    def _release(self) -> None:
        self._cap.release()
