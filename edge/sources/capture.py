"""A ``cv2.VideoCapture`` that reconnects: shared by network streams and USB cameras.

One-shot (``reconnect=False``): a capture that cannot be opened raises
``SourceError``; a capture that stops delivering ends the source (``None``).
Daemon mode (``reconnect=True``): both are retried forever with exponential
backoff (``backoff_initial`` doubling up to ``backoff_max`` seconds), and the
source counts its reconnects. ``interrupt()``/``close()`` end the wait at once.
"""

from __future__ import annotations

import logging
from typing import Callable

import cv2
import numpy as np

from ..errors import SourceError
from .base import BaseSource, as_bgr

log = logging.getLogger(__name__)


class Backoff:
    """Exponential delays: initial, 2x, 4x... capped at ``maximum``; ``reset()`` after success."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        if initial <= 0 or maximum < initial:
            raise SourceError(f"backoff needs 0 < backoff_initial <= backoff_max (got {initial}, {maximum})")
        self.initial, self.maximum = initial, maximum
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2.0**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class CaptureSource(BaseSource):
    """Frames from a ``cv2.VideoCapture`` made by ``opener`` (which raises ``SourceError``)."""

    live = True

    def __init__(
        self,
        name: str,
        opener: Callable[[], cv2.VideoCapture],
        *,
        reconnect: bool = False,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        super().__init__(name)
        self._opener = opener
        self.reconnect = reconnect
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._cap: cv2.VideoCapture | None = None
        self._ever_opened = False
        self._ended = False  # one-shot stream that ended: never reopened
        self.connected = False
        try:
            self._connect()
        except SourceError as exc:
            if not reconnect:
                raise
            # Daemon mode: start anyway; read() keeps trying.
            log.warning("%s; retrying in the background", exc)

    def _connect(self) -> None:
        self._cap = self._opener()
        self.connected = True
        if self._ever_opened:
            self._reconnects += 1
            log.info("%s: reconnected (%d reconnects so far)", self.name, self._reconnects)
        self._ever_opened = True

    def _wait(self, reason: str) -> bool:
        """Back off before the next attempt; False when interrupted."""
        delay = self._backoff.next()
        # Warn on the first failures and then rarely: a camera that is off all night
        # would otherwise fill the journal.
        level = logging.WARNING if self._backoff.attempt <= 3 or self._backoff.attempt % 20 == 0 else logging.DEBUG
        log.log(level, "%s: %s; retry %d in %.1f s", self.name, reason, self._backoff.attempt, delay)
        return not self._stop.wait(delay)

    def _grab(self) -> tuple[np.ndarray, float | None] | None:
        while not self._stop.is_set() and not self._ended:
            if self._cap is None:
                try:
                    self._connect()
                except SourceError as exc:
                    if not self.reconnect:
                        raise
                    if not self._wait(str(exc)):
                        return None
                    continue
            ok, img = self._cap.read()
            if ok and img is not None and img.size:
                self._backoff.reset()
                return as_bgr(img), None
            self._read_errors += 1
            self._drop_capture()
            if not self.reconnect:
                log.info("%s: stream ended", self.name)
                self._ended = True
                return None
            if not self._wait("no frame (stream lost or read timeout)"):
                return None
        return None

    def _drop_capture(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.connected = False

    def _release(self) -> None:
        self._drop_capture()

