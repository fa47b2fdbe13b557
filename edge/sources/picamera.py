"""Raspberry Pi cameras through picamera2 (libcamera): ``picamera2:0`` or ``picam:``.

``picamera2`` is imported when such a source opens, never before: it exists only
on Raspberry Pi OS (``sudo apt install python3-picamera2``; a venv needs
``--system-site-packages`` to see it). The main stream is configured as
``RGB888``, which libcamera lays out as B, G, R bytes: already the BGR order of
the rest of the pipeline, so frames are used without a channel swap.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import BaseSource
from .capture import Backoff
from .registry import import_optional

log = logging.getLogger(__name__)
INSTALL = "on Raspberry Pi OS: `sudo apt install python3-picamera2` (and create the venv with --system-site-packages)"


def parse_camera(spec: str) -> int:
    """``picam:`` / ``picamera2`` -> 0, ``picamera2:1`` -> 1."""
    _, _, num = spec.partition(":")
    num = num.strip() or "0"
    if not num.isdigit():
        raise SourceError(f"camera number in {spec!r} must be an integer, e.g. picamera2:0")
    return int(num)


def _is_busy(exc: BaseException) -> bool:
    # picamera2 raises RuntimeError("Failed to acquire camera: Device or resource busy"),
    # or "camera.acquire() returned unexpected code: -16" (EBUSY) chained under
    # "Camera __init__ sequence did not complete."
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).lower()
        if "busy" in text or "code: -16" in text or "failed to acquire camera" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def open_picamera2(
    spec: str,
    *,
    config_key: str = "camera.source",
    width: int = 640,
    height: int = 480,
    fps: float | None = None,
    busy_retries: int = 5,
    backoff_initial: float = 0.5,
    backoff_max: float = 8.0,
) -> "Picamera2Source":
    """Open a Pi camera; retries while another process still holds it."""
    return Picamera2Source(
        parse_camera(spec), config_key=config_key, size=(width, height), fps=fps,
        busy_retries=busy_retries, backoff=Backoff(backoff_initial, backoff_max),
    )


class Picamera2Source(BaseSource):
    """Frames from ``Picamera2.capture_array("main")``."""

    live = True

    def __init__(
        self,
        camera: int = 0,
        *,
        config_key: str = "camera.source",
        size: tuple[int, int] = (640, 480),
        fps: float | None = None,
        busy_retries: int = 5,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(f"picamera2:{camera}")
        module = import_optional("picamera2", config_key, INSTALL)
        backoff = backoff or Backoff(0.5, 8.0)
        self._cam = self._acquire(module, camera, busy_retries, backoff, config_key)
        try:
            controls: dict[str, Any] = {"FrameRate": float(fps)} if fps else {}
            config = self._cam.create_video_configuration(main={"size": tuple(size), "format": "RGB888"},
                                                          controls=controls)
            self._cam.configure(config)
            self._cam.start()
        except Exception as exc:
            self._cam.close()
            raise SourceError(f"{config_key}: picamera2:{camera} cannot stream {size[0]}x{size[1]}: {exc}") from None

    def _acquire(self, module: Any, camera: int, retries: int, backoff: Backoff, config_key: str) -> Any:
        for attempt in range(retries + 1):
            try:
                return module.Picamera2(camera)
            except (IndexError, RuntimeError, OSError) as exc:
                if isinstance(exc, IndexError):
                    raise SourceError(
                        f"{config_key}: no Pi camera number {camera} (is it connected and enabled?)"
                    ) from None
                if not _is_busy(exc) or attempt == retries:
                    hint = (" another process holds the camera (stop it, or `sudo fuser -v /dev/media*`)"
                            if _is_busy(exc) else "")
                    raise SourceError(f"{config_key}: cannot open picamera2:{camera}: {exc}.{hint}") from None
                delay = backoff.next()
                log.warning("picamera2:%d busy; retry %d/%d in %.1f s", camera, attempt + 1, retries, delay)
                if self._stop.wait(delay):
                    break
        raise SourceError(f"{config_key}: opening picamera2:{camera} was interrupted")

    def _grab(self) -> tuple[np.ndarray, float | None] | None:
        try:
            img = self._cam.capture_array("main")
        except Exception as exc:  # the camera went away: fatal for this source
            self._read_errors += 1
            raise SourceError(f"{self.name}: capture failed: {exc}") from None
        if img.ndim == 3 and img.shape[2] == 4:  # XRGB8888 layouts: drop the padding byte
            img = img[:, :, :3]
        return np.ascontiguousarray(img), None

    def _release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()
