"""``LatestFrameReader``: a capture thread that always hands over the newest frame.

The thread reads the source as fast as it delivers and overwrites a one-slot
holder; a frame that was replaced before anyone took it is counted as dropped.
The consumer (the pipeline) never works through a backlog of stale frames, so
a slow frame costs skipped frames, not growing latency.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ..errors import SourceError
from .base import Frame, FrameSource, SourceStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grabbed:
    """A frame and the wall-clock time the capture thread got it."""

    frame: Frame
    grabbed_at: float


class LatestFrameReader:
    """Read ``source`` on a thread; ``read()`` returns the newest unseen frame.

    ``keep_all=True`` makes the thread wait for the consumer instead of
    overwriting (read-ahead of one frame without drops), for files.
    Errors other than ``fatal`` ones from ``source.read()`` are counted and
    retried ``max_consecutive_errors`` times; a ``fatal`` one (``SourceError``)
    ends the thread and is raised by the next ``read()`` (and kept in ``error``).
    ``last_activity``: monotonic time a frame was last stored or taken.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        keep_all: bool = False,
        max_consecutive_errors: int = 50,
        error_pause: float = 0.1,
        fatal: tuple[type[BaseException], ...] = (SourceError,),
        name: str = "frame-reader",
    ) -> None:
        self.source = source
        self.label = getattr(source, "name", None) or name
        self.keep_all = keep_all
        self._max_errors = max_consecutive_errors
        self._error_pause = error_pause
        self._fatal = fatal
        self._cond = threading.Condition()
        self._slot: Grabbed | None = None
        self._ended = False
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self.frames_read = 0
        self.last_activity = time.monotonic()
        self.frames_dropped = 0
        self.read_errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> "LatestFrameReader":
        """Start the capture thread (``__enter__`` does this)."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def _run(self) -> None:
        consecutive = 0
        try:
            while not self._stopping.is_set():
                try:
                    frame = self.source.read()
                except self._fatal as exc:
                    self.read_errors += 1
                    self._finish(exc)
                    return
                except Exception as exc:  # a per-frame fault: count it, keep going
                    self.read_errors += 1
                    consecutive += 1
                    if consecutive == 1 or consecutive % 10 == 0:
                        log.warning("%s: read failed (%d in a row): %s", self.label, consecutive, exc)
                    if consecutive >= self._max_errors:
                        self._finish(SourceError(f"{self.label}: {consecutive} reads failed in a row: {exc}"))
                        return
                    self._stopping.wait(self._error_pause)
                    continue
                consecutive = 0
                if frame is None:
                    break
                self.frames_read += 1
                grabbed = Grabbed(frame, time.time())
                with self._cond:
                    if self.keep_all:
                        while self._slot is not None and not self._stopping.is_set():
                            self._cond.wait(0.1)
                    if self._slot is not None:
                        self.frames_dropped += 1
                    self._slot = grabbed
                    self.last_activity = time.monotonic()
                    self._cond.notify_all()
        finally:
            self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        with self._cond:
            if error is not None and self.error is None:
                self.error = error
            self._ended = True
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not returned before; waits up to ``timeout`` seconds
        (``None``: until one comes). ``None`` on timeout or once the source ended
        (check ``ended``); re-raises the error that stopped the thread."""
        grabbed = self.grab(timeout)
        return None if grabbed is None else grabbed.frame

    def grab(self, timeout: float | None = None) -> Grabbed | None:
        """``read()``, with the time the thread got the frame."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is None:
                if self._ended:
                    if self.error is not None:
                        raise self.error
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            grabbed, self._slot = self._slot, None
            self.last_activity = time.monotonic()
            self._cond.notify_all()
            return grabbed

    @property
    def ended(self) -> bool:
        """True once the source has no more frames and the last one was taken."""
        with self._cond:
            return self._ended and self._slot is None

    def stats(self) -> SourceStats:
        """The source's counters plus this reader's drops and errors."""
        s = self.source.stats()
        return SourceStats(
            frames_read=s.frames_read,
            frames_dropped=s.frames_dropped + self.frames_dropped,
            read_errors=s.read_errors + self.read_errors,
            reconnects=s.reconnects,
            last_frame_time=s.last_frame_time,
            camera_fps=s.camera_fps,
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and join it (``timeout=0``: do not wait); the source stays open (``close()`` closes it)."""
        self._stopping.set()
        interrupt = getattr(self.source, "interrupt", None)  # optional for sources outside edge.sources
        if interrupt is not None:
            interrupt()
        with self._cond:
            self._cond.notify_all()
        if self._started and timeout != 0:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: capture thread still blocked after %.1f s", self.label, timeout or 0.0)

    def close(self) -> None:
        """``stop()``, then close the source; safe to call twice."""
        self.stop()
        self.source.close()

    def __enter__(self) -> "LatestFrameReader":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
