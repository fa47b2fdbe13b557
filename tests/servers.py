"""Stream servers for tests (shared by tests/edge and tests/reliability): restartable server processes.

RTSP: GStreamer's RTSP server (tests/edge/rtsp_server.py, TCP-only, run by the system Python with PyGObject).
HTTP: FFmpeg's own HTTP server (``-listen 1``) sending multipart MJPEG.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import time
from pathlib import Path

import pytest

RTSP_SERVER = Path(__file__).resolve().parent / "edge" / "rtsp_server.py"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "python3"


def _gst_rtsp_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_gst = pytest.mark.skipif(
    not _gst_rtsp_available(),
    reason="GStreamer RTSP server not installed (apt: python3-gi gir1.2-gst-rtsp-server-1.0 "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good)",
)
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _spawn(argv: list[str], attempts: int = 3) -> subprocess.Popen[str]:
    """Start ``argv``; retry a spawn that fails with EFAULT.

    CI once saw ``execve`` fail with ``[Errno 14] Bad address`` for ``/usr/bin/python3`` while the source under
    test had FFmpeg threads running (CPython spawns with vfork, which shares the parent's memory until exec).
    That is the test harness failing to start its server, not the code under test; any other error is raised.
    """
    for _ in range(attempts - 1):
        try:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError as exc:
            if exc.errno != errno.EFAULT:
                raise
            time.sleep(0.1)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


class Server:
    """A server process that can be killed and started again on the same port."""

    def __init__(self, argv: list[str], ready: str | None) -> None:
        self.argv, self.ready = argv, ready
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        self.proc = _spawn(self.argv)
        if self.ready is not None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().strip()
            if line != self.ready:
                self.kill()
                pytest.fail(f"server {self.argv[:3]} did not start: {line!r}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def rtsp_server_for(port: int, mount: str = "cam") -> tuple[Server, str]:
    """An (unstarted) RTSP test-pattern server on ``port`` and its URL."""
    return Server([SYSTEM_PYTHON, str(RTSP_SERVER), str(port), mount], ready="ready"), f"rtsp://127.0.0.1:{port}/{mount}"


def http_server_for(port: int) -> tuple[Server, str]:
    """An (unstarted) FFmpeg HTTP multipart-MJPEG server on ``port`` and its URL."""
    url = f"http://127.0.0.1:{port}/cam.mjpg"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
            "-i", "testsrc=size=320x240:rate=15", "-f", "mpjpeg", "-q:v", "5", "-listen", "1", url]
    return Server(argv, ready=None), url
