"""The frame-source contract: ``Frame``, ``FrameSource``, ``SourceStats``.

A source yields BGR frames. ``read()`` blocks until the next frame and returns
``None`` at the end of a finite source (a file, a folder, a one-shot stream
that ended) or after ``interrupt()``/``close()``. ``close()`` is idempotent and
every source is a context manager.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One BGR image ``(H, W, 3) uint8``.

    ``time``: wall-clock capture time (``time.time()``), what events carry.
    ``index``: 0, 1, 2... in the order this source delivered frames.
    ``pts``: position in the media in seconds, for files (``None`` for live sources).
    """

    image: np.ndarray
    time: float
    index: int
    pts: float | None = None


@dataclass(frozen=True)
class SourceStats:
    """Counters for the daemon's ``stats`` topic; ``as_dict()`` is JSON-ready."""

    frames_read: int = 0
    frames_dropped: int = 0
    read_errors: int = 0
    reconnects: int = 0
    last_frame_time: float | None = None
    camera_fps: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["camera_fps"] is not None:
            d["camera_fps"] = round(d["camera_fps"], 2)
        return d


@runtime_checkable
class FrameSource(Protocol):
    """What the daemon and ``analyze`` read frames from."""

    name: str
    live: bool  # frames arrive in real time (camera, stream) rather than as fast as they are read

    def read(self) -> Frame | None: ...

    def interrupt(self) -> None:
        """Make a blocked or retrying ``read()`` return ``None`` soon (thread-safe)."""

    def close(self) -> None: ...

    def stats(self) -> SourceStats: ...

    def __enter__(self) -> "FrameSource": ...

    def __exit__(self, *exc: object) -> None: ...


class FpsMeter:
    """Frames per second over the last ``window`` frame times."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, t: float) -> None:
        self._times.append(t)

    @property
    def fps(self) -> float | None:
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else None


class BaseSource:
    """Shared plumbing: frame numbering, counters, idempotent close, context manager.

    Subclasses implement ``_grab() -> (image, pts) | None`` and ``_release()``.
    """

    live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        # Held while reading and while releasing: releasing a capture another
        # thread is reading from crashes some backends.
        self._io = threading.Lock()
        self._index = 0
        self._fps = FpsMeter()
        self._read_errors = 0
        self._reconnects = 0
        self._last_time: float | None = None

    def read(self) -> Frame | None:
        """The next frame, or ``None`` at the end (or once interrupted/closed)."""
        with self._io:
            if self._stop.is_set() or self._closed:
                return None
            got = self._grab()
        if got is None:
            return None
        image, pts = got
        now = time.time()
        frame = Frame(image, now, self._index, pts)
        self._index += 1
        self._last_time = now
        self._fps.tick(time.monotonic())
        return frame

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._io:
            self._release()

    def stats(self) -> SourceStats:
        return SourceStats(
            frames_read=self._index,
            read_errors=self._read_errors,
            reconnects=self._reconnects,
            last_frame_time=self._last_time,
            camera_fps=self._fps.fps,
        )

    def _grab(self) -> tuple[np.ndarray, float | None] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _release(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> "BaseSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Gray -> BGR, BGRA -> BGR; BGR passes through untouched."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
