"""Camera supervision: read a frame source in a thread, keep the newest frame, reopen on failure.

The daemon must never die because a camera does. ``CameraSupervisor`` opens the
source through a factory, reads it in a reader thread (one-slot holder: a newer
frame replaces an unread one and the drop is counted), and a watchdog reopens
the source with exponential backoff when it fails to open, raises, ends (live
sources) or delivers no frame for ``watchdog_s`` seconds. Status changes go to a
callback (the daemon publishes them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class FrameLike(Protocol):
    image: Any
    time: float
    index: int


class SourceLike(Protocol):
    """``edge.sources.FrameSource`` as far as the supervisor needs it (``live`` and ``interrupt`` optional)."""

    def read(self) -> FrameLike | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Grabbed:
    """A frame and the wall-clock time the reader got it."""

    frame: FrameLike
    grabbed_at: float


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
        self._cond = threading.Condition()
        self._slot: Grabbed | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._source: SourceLike | None = None
        self._generation = 0
        self._reader_state: dict[int, str] = {}
        self._last_activity = time.monotonic()
        self.frames = 0  # frames read from the camera
        self.dropped = 0  # frames replaced before the consumer took them
        self.reconnects = 0
        self.status = "starting"
        self.error: str | None = None
        self._every_frame = bool(self.options.every_frame)
        self._monitor = threading.Thread(target=self._monitor_loop, name="camera-watchdog", daemon=True)

    # ------------------------------------------------------------ consumer side

    def start(self) -> None:
        self._monitor.start()

    @property
    def ended(self) -> bool:
        """A finite source reached its end (or the supervisor was closed)."""
        return self._ended.is_set()

    def get(self, timeout: float = 0.5) -> Grabbed | None:
        """The newest unread frame, or None after ``timeout`` s without one."""
        with self._cond:
            if self._slot is None:
                self._cond.wait(timeout)
            g, self._slot = self._slot, None
            if g is not None:
                self._last_activity = time.monotonic()
                self._cond.notify_all()  # an every_frame reader waits for the slot to empty
            return g

    def close(self, timeout: float = 1.0) -> None:
        """Stop the threads and close the source, waiting at most about ``timeout`` s (safe to call twice)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._close_source(timeout)
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

    def _close_source(self, timeout: float = 2.0) -> None:
        src, self._source = self._source, None
        if src is None:
            return
        interrupt = getattr(src, "interrupt", None)
        if interrupt is not None:
            try:
                interrupt()  # makes a blocked read() return, so close() can take the capture
            except Exception as exc:
                log.debug("interrupting the source failed: %s", exc)

        def close() -> None:
            try:
                src.close()
            except Exception as exc:  # closing a broken camera may itself fail
                log.debug("closing the source failed: %s", exc)

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
            self._source = src
            live = bool(getattr(src, "live", True))
            stop_at_end = (not live) if o.stop_at_end is None else o.stop_at_end
            self._every_frame = (not live) if o.every_frame is None else o.every_frame
            frames_before = self.frames
            self._generation += 1
            gen = self._generation
            self._reader_state[gen] = "running"
            self._last_activity = time.monotonic()
            reader = threading.Thread(target=self._read_loop, args=(src, gen), name=f"camera-reader-{gen}", daemon=True)
            reader.start()
            stalled = self._watch(gen)
            if self.frames > frames_before:
                delay = o.reconnect_min_s  # it worked for a while: start the backoff over
            self._close_source()
            reader.join(timeout=1.0)
            if reader.is_alive():
                log.warning("camera: reader thread stuck in read(); abandoning it")
            state = self._reader_state.pop(gen, "")
            if self._stop.is_set():
                break
            if stalled:
                self._set_status("reconnecting", f"no frame for {o.watchdog_s:g} s")
            elif state == "eof" and stop_at_end:
                self._set_status("ended")
                self._ended.set()
                with self._cond:
                    self._cond.notify_all()
                return
            elif state == "eof":
                self._set_status("reconnecting", "the stream ended")
            else:
                self._set_status("reconnecting", state[len("error: "):] if state.startswith("error") else "the reader stopped")
        self._ended.set()

    def _watch(self, gen: int) -> bool:
        """Wait while the reader is healthy; True if the watchdog fired (no frame for watchdog_s)."""
        while not self._stop.is_set():
            if self._reader_state.get(gen) != "running":
                return False
            if time.monotonic() - self._last_activity > self.options.watchdog_s:
                log.warning("camera: no frame for %.1f s", self.options.watchdog_s)
                return True
            self._stop.wait(min(0.2, self.options.watchdog_s / 4))
        return False

    def _read_loop(self, src: SourceLike, gen: int) -> None:
        try:
            while not self._stop.is_set() and gen == self._generation and self._source is src:
                frame = src.read()
                if frame is None:
                    self._reader_state[gen] = "eof"
                    return
                now = time.time()
                with self._cond:
                    if self._every_frame:
                        while self._slot is not None and not self._stop.is_set():
                            self._cond.wait(0.2)
                    elif self._slot is not None:
                        self.dropped += 1
                    self._slot = Grabbed(frame, now)
                    self.frames += 1
                    self._last_activity = time.monotonic()
                    self._cond.notify_all()
                if self.status != "ok":
                    self._set_status("ok")
            self._reader_state[gen] = "stopped"
        except Exception as exc:  # a driver error ends this reader; the watchdog reopens
            if gen in self._reader_state:
                self._reader_state[gen] = f"error: {exc}"
