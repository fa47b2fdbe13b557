"""Camera supervision: read a frame source in a thread, keep the newest frame, reopen on failure.

The daemon must never die because a camera does. ``CameraSupervisor`` opens the
source through a factory and reads each opened source with a
``LatestFrameReader`` (one-slot holder: a newer frame replaces an unread one and
the drop is counted); a watchdog reopens the source with exponential backoff
when it fails to open, raises, ends (live sources) or delivers no frame for
``watchdog_s`` seconds. Status changes go to a callback (the daemon publishes them).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .sources.base import Frame
from .sources.latest import Grabbed, LatestFrameReader

log = logging.getLogger(__name__)


class SourceLike(Protocol):
    """``edge.sources.FrameSource`` as far as the supervisor needs it (``live`` and ``interrupt`` optional)."""

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CameraOptions:
    watchdog_s: float = 10.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    # None = decided by the source's ``live`` flag: a file or folder (live=False) ends the run at its end
    # and has every frame processed; a camera or stream (live=True) is reopened and only its newest frame counts.
    stop_at_end: bool | None = None
    every_frame: bool | None = None


StatusCallback = Callable[[str, "str | None"], None]


class CameraSupervisor:
    """Newest-frame reader with a watchdog. ``get()`` from one consumer thread."""

    def __init__(self, factory: Callable[[], SourceLike], options: CameraOptions | None = None,
                 on_status: StatusCallback | None = None) -> None:
        self.options = options or CameraOptions()
        self._factory = factory
        self._on_status = on_status or (lambda status, error: None)
        self._cond = threading.Condition()  # guards _reader and the counters of readers already closed
        self._reader: LatestFrameReader | None = None  # one per opened source
        self._frames_before = self._dropped_before = 0
        self._stop = threading.Event()
        self._ended = threading.Event()
        self.reconnects = 0
        self.status = "starting"
        self.error: str | None = None
        self._monitor = threading.Thread(target=self._monitor_loop, name="camera-watchdog", daemon=True)

    # ------------------------------------------------------------ consumer side

    def start(self) -> None:
        self._monitor.start()

    @property
    def ended(self) -> bool:
        """A finite source reached its end (or the supervisor was closed)."""
        return self._ended.is_set()

    @property
    def frames(self) -> int:
        """Frames read from the camera (every source opened so far)."""
        with self._cond:
            return self._frames_before + (self._reader.frames_read if self._reader else 0)

    @property
    def dropped(self) -> int:
        """Frames replaced before the consumer took them."""
        with self._cond:
            return self._dropped_before + (self._reader.frames_dropped if self._reader else 0)

    def get(self, timeout: float = 0.5) -> Grabbed | None:
        """The newest unread frame, or None after ``timeout`` s without one."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0 and not self._ended.is_set():
            with self._cond:
                reader = self._reader
                if reader is None or reader.ended:  # between sources: wait for the next one (or the end)
                    self._cond.wait(remaining)
                    continue
            with contextlib.suppress(Exception):  # a read error: the watchdog reports it and reopens
                if (g := reader.grab(remaining)) is not None:
                    return g
        return None

    def close(self, timeout: float = 1.0) -> None:
        """Stop the threads and close the source, waiting at most about ``timeout`` s (safe to call twice)."""
        self._stop.set()
        self._retire(timeout)
        if self._monitor.is_alive() and threading.current_thread() is not self._monitor:
            self._monitor.join(timeout=timeout)

    # ------------------------------------------------------------ internals

    def _set_status(self, status: str, error: str | None = None) -> None:
        if status != self.status or error != self.error:
            self.status, self.error = status, error
            try:
                self._on_status(status, error)
            except Exception:  # the callback publishes; it must not stop the watchdog
                log.exception("camera status callback failed")

    def _retire(self, timeout: float = 2.0) -> None:
        """Stop the current reader and close its source; a stuck driver is abandoned after ``timeout`` s."""
        with self._cond:
            reader, self._reader = self._reader, None
            if reader is not None:
                self._frames_before += reader.frames_read
                self._dropped_before += reader.frames_dropped
            self._cond.notify_all()
        if reader is None:
            return
        with contextlib.suppress(Exception):  # interrupt first: a blocked read() returns and close() gets the capture
            reader.stop(timeout=0)

        def close() -> None:
            with contextlib.suppress(Exception):  # closing a broken camera may itself fail
                reader.source.close()

        # A driver stuck in read() can block close() too: never let it take the watchdog with it.
        t = threading.Thread(target=close, name="camera-close", daemon=True)
        t.start()
        t.join(timeout=timeout)
        if t.is_alive():
            log.warning("camera: closing the source is stuck; abandoning it")

    def _monitor_loop(self) -> None:
        o = self.options
        delay = o.reconnect_min_s
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
                log.warning("camera: reopening in %.1f s (%s)", delay, self.error or "no frames")
                if self._stop.wait(delay):
                    break
                delay = min(o.reconnect_max_s, delay * 2)
            first = False
            try:
                src = self._factory()
            except Exception as exc:  # SourceError or a driver's own exception: retry, never die
                self._set_status("reconnecting", f"cannot open: {exc}")
                continue
            live = bool(getattr(src, "live", True))
            stop_at_end = (not live) if o.stop_at_end is None else o.stop_at_end
            every_frame = (not live) if o.every_frame is None else o.every_frame
            # Any read error ends this reader: reopening the source is the watchdog's job.
            reader = LatestFrameReader(src, keep_all=every_frame, fatal=(Exception,),  # type: ignore[arg-type]
                                       name=f"camera-reader-{self.reconnects + 1}").start()
            with self._cond:
                self._reader = reader
                self._cond.notify_all()
            stalled = self._watch(reader)
            if reader.frames_read:
                delay = o.reconnect_min_s  # it worked for a while: start the backoff over
            self._retire()
            if self._stop.is_set():
                break
            if stalled:
                self._set_status("reconnecting", f"no frame for {o.watchdog_s:g} s")
            elif reader.error is not None:
                self._set_status("reconnecting", str(reader.error))
            elif stop_at_end:
                self._set_status("ended")
                break
            else:
                self._set_status("reconnecting", "the stream ended")
        self._ended.set()
        with self._cond:
            self._cond.notify_all()

    def _watch(self, reader: LatestFrameReader) -> bool:
        """Wait while the reader is healthy (its last frame taken once it ends); True if no frame for watchdog_s."""
        while not self._stop.wait(min(0.2, self.options.watchdog_s / 4)):
            if reader.frames_read and self.status != "ok":
                self._set_status("ok")
            if reader.ended:
                return False
            if time.monotonic() - reader.last_activity > self.options.watchdog_s:
                log.warning("camera: no frame for %.1f s", self.options.watchdog_s)
                return True
        return False
