"""USB / V4L2 cameras: ``/dev/video0``, ``v4l2:/dev/video2`` or a bare index ``0``."""

from __future__ import annotations

import sys

import cv2

from ..errors import SourceError
from .capture import CaptureSource


def parse_device(spec: str) -> str | int:
    """``"0"`` -> 0; ``"v4l2:/dev/video2"`` -> ``"/dev/video2"``; a path stays a path."""
    s = spec.strip()
    if s.lower().startswith("v4l2:"):
        s = s[5:]
    return int(s) if s.isdigit() else s


def open_v4l2(
    spec: str,
    *,
    config_key: str = "camera.source",
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    fourcc: str | None = None,
    reconnect: bool = False,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
) -> CaptureSource:
    """A USB camera. ``fourcc="MJPG"`` asks for compressed frames, which many
    cameras need for more than a few fps at 640x480 over USB 2."""
    device = parse_device(spec)
    if fourcc is not None and len(fourcc) != 4:
        raise SourceError(f"{config_key}: fourcc must be 4 characters such as MJPG or YUYV, not {fourcc!r}")
    backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY

    def opener() -> cv2.VideoCapture:
        cap = cv2.VideoCapture(device, backend)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"{config_key}: cannot open camera {device!r}: no such device, or it is in use or not "
                "permitted; list cameras with `v4l2-ctl --list-devices` and check the user is in the "
                "`video` group"
            )
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        # One-frame driver buffer where supported: the newest frame, not a backlog.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    name = device if isinstance(device, str) else f"camera {device}"
    return CaptureSource(str(name), opener, reconnect=reconnect, backoff_initial=backoff_initial,
                         backoff_max=backoff_max)
