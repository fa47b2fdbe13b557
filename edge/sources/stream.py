"""Network cameras: RTSP, HTTP(S) MJPEG or any URL OpenCV's FFmpeg backend plays.

RTSP goes over TCP by default (``transport="tcp"``): UDP loses packets on busy
Wi-Fi and smears frames. Opening and reading have their own timeouts
(``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC``), so a camera
that does not answer gives a clear ``SourceError`` (one-shot) or a retry with
backoff (``reconnect=True``, what the daemon uses) instead of a hang.
"""

from __future__ import annotations

import os
import re
import threading

import cv2

from ..errors import SourceError
from .capture import CaptureSource

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# OpenCV reads the FFmpeg options from the environment when a capture opens:
# one lock keeps two sources opening at once from seeing each other's options.
_ENV_LOCK = threading.Lock()
_CREDENTIALS = re.compile(r"(://[^:/@]+:)[^@/]*@")


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and messages)."""
    return _CREDENTIALS.sub(r"\1***@", url)


def ffmpeg_options(url: str, transport: str, existing: str | None) -> str:
    """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for this URL: ``key;value|key;value``.

    Options the user already set in the environment win.
    """
    opts: dict[str, str] = {}
    if url.lower().startswith(("rtsp://", "rtsps://")):
        opts["rtsp_transport"] = transport
    for item in (existing or "").split("|"):
        if ";" in item:
            k, v = item.split(";", 1)
            opts[k.strip()] = v.strip()
    return "|".join(f"{k};{v}" for k, v in opts.items())


def open_ffmpeg_capture(url: str, open_timeout: float, read_timeout: float, transport: str) -> cv2.VideoCapture:
    """An opened FFmpeg capture of ``url``, or ``SourceError`` saying why not."""
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000),
    ]
    with _ENV_LOCK:
        before = os.environ.get(FFMPEG_OPTIONS_ENV)
        os.environ[FFMPEG_OPTIONS_ENV] = ffmpeg_options(url, transport, before)
        try:
            cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        finally:
            if before is None:
                os.environ.pop(FFMPEG_OPTIONS_ENV, None)
            else:
                os.environ[FFMPEG_OPTIONS_ENV] = before
    if not cap.isOpened():
        cap.release()
        raise SourceError(
            f"cannot open stream {redact(url)}: no answer within {open_timeout:g} s, connection refused, "
            "wrong path or credentials, or a codec FFmpeg cannot decode; check the URL in VLC or "
            f"`ffprobe -rtsp_transport {transport} URL`"
        )
    return cap


def open_stream(
    spec: str,
    *,
    config_key: str = "camera.source",
    reconnect: bool = False,
    open_timeout: float = 10.0,
    read_timeout: float = 10.0,
    transport: str = "tcp",
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
) -> CaptureSource:
    """A network stream. ``reconnect=True`` keeps retrying (daemon); otherwise
    a stream that cannot be opened raises ``SourceError`` and one that ends ends."""
    if transport not in ("tcp", "udp"):
        raise SourceError(f"{config_key}: transport must be 'tcp' or 'udp', not {transport!r}")
    if open_timeout <= 0 or read_timeout <= 0:
        raise SourceError(f"{config_key}: open_timeout and read_timeout must be positive seconds")

    def opener() -> cv2.VideoCapture:
        try:
            return open_ffmpeg_capture(spec, open_timeout, read_timeout, transport)
        except SourceError as exc:
            raise SourceError(f"{config_key}: {exc}") from None

    return CaptureSource(
        redact(spec), opener, reconnect=reconnect, backoff_initial=backoff_initial, backoff_max=backoff_max
    )
