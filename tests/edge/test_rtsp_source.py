"""Network streams against real servers on 127.0.0.1: reconnect after the server dies.

RTSP: GStreamer's RTSP server (tests/edge/rtsp_server.py, TCP-only, run by the
system Python with PyGObject). HTTP: FFmpeg's own HTTP server (``-listen 1``)
sending multipart MJPEG. Both are killed and restarted mid-read; the source
must reconnect by itself.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.errors import SourceError
from edge.sources import LatestFrameReader, open_source

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "python3"
FAST = dict(open_timeout=4.0, read_timeout=3.0, backoff_initial=0.2, backoff_max=1.0)
WAIT = 20.0  # seconds a test waits for frames before failing (a bound, not a timing assertion)


def _gst_rtsp_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_gst = pytest.mark.skipif(
    not _gst_rtsp_available(),
    reason="GStreamer RTSP server not installed (apt: python3-gi gir1.2-gst-rtsp-server-1.0 "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good)",
)
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


class Server:
    """A server process that can be killed and started again on the same port."""

    def __init__(self, argv: list[str], ready: str | None) -> None:
        self.argv, self.ready = argv, ready
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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


@pytest.fixture
def rtsp_server(free_port: int):
    server = Server([SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), str(free_port), "cam"], ready="ready")
    yield server, f"rtsp://127.0.0.1:{free_port}/cam"
    server.kill()


@pytest.fixture
def http_server(free_port: int):
    url = f"http://127.0.0.1:{free_port}/cam.mjpg"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
            "-i", "testsrc=size=320x240:rate=15", "-f", "mpjpeg", "-q:v", "5", "-listen", "1", url]
    server = Server(argv, ready=None)
    yield server, url
    server.kill()


def _frames(reader: LatestFrameReader, n: int = 3, until=lambda: True) -> list:
    """``n`` frames read once ``until()`` holds (fails after WAIT seconds)."""
    got = []
    deadline = time.monotonic() + WAIT
    while len(got) < n:
        frame = reader.read(timeout=max(0.1, deadline - time.monotonic()))
        if frame is None:
            pytest.fail(f"no frame within {WAIT:.0f} s; stats: {reader.stats()}")
        if until():
            got.append(frame)
    return got


def _reconnect_cycle(server: Server, url: str) -> None:
    # Daemon mode starts while the camera is still down: no error, it keeps trying.
    source = open_source(url, reconnect=True, **FAST)
    with LatestFrameReader(source) as reader:
        server.start()
        first = _frames(reader)
        assert first[0].image.shape == (240, 320, 3)
        assert reader.stats().reconnects == 0

        server.kill()
        server.start()
        # Frames still buffered from the old connection may come first; then the
        # source must notice the loss, reconnect by itself and deliver again.
        later = _frames(reader, until=lambda: reader.stats().reconnects >= 1)
        assert later[-1].index > first[-1].index
        stats = reader.stats()
        assert stats.reconnects >= 1
        assert stats.read_errors >= 1  # the lost connection was counted, not hidden
        assert stats.camera_fps is not None and stats.last_frame_time is not None


@needs_gst
def test_rtsp_reconnects_by_itself_after_the_server_restarts(rtsp_server) -> None:
    _reconnect_cycle(*rtsp_server)


@needs_ffmpeg
def test_http_mjpeg_reconnects_by_itself_after_the_server_restarts(http_server) -> None:
    _reconnect_cycle(*http_server)


@needs_gst
def test_rtsp_goes_over_tcp_and_a_one_shot_stream_ends_with_none(rtsp_server) -> None:
    server, url = rtsp_server
    server.start()
    with open_source(url, **FAST) as source:
        assert source.read() is not None
        # The test server only offers TCP and refuses UDP: the success above proves
        # the source asks for TCP. (Checked second: a refused client briefly makes
        # gst-rtsp-server answer 503 to the next one.)
        with pytest.raises(SourceError):
            open_source(url, transport="udp", **FAST)
        assert source.read() is not None
        server.kill()
        deadline = time.monotonic() + WAIT
        while source.read() is not None:  # buffered frames drain, then the end
            assert time.monotonic() < deadline, "stream did not end after its server died"
        server.start()
        assert source.read() is None  # one-shot: an ended stream stays ended
        assert source.stats().reconnects == 0


def test_a_port_that_never_answers_gives_a_clear_source_error() -> None:
    # A socket that accepts connections (kernel backlog) but never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(SourceError, match=r"cannot open stream rtsp://127\.0\.0\.1:\d+/x: no answer within 2 s"):
            open_source(f"rtsp://127.0.0.1:{port}/x", open_timeout=2.0, read_timeout=2.0)


def test_a_refused_connection_gives_a_source_error_naming_the_key_and_hiding_the_password(free_port) -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port}/stream1"
    with pytest.raises(SourceError) as err:
        open_source(url, config_key="cameras.door.source", open_timeout=2.0)
    text = str(err.value)
    assert "cameras.door.source" in text and "hunter2" not in text and "admin:***@" in text


def test_daemon_mode_stops_retrying_when_interrupted(free_port) -> None:
    source = open_source(f"rtsp://127.0.0.1:{free_port}/x", reconnect=True, open_timeout=1.0,
                         backoff_initial=5.0, backoff_max=5.0)
    reader = LatestFrameReader(source).start()
    reader.close()  # interrupts the backoff wait: the thread ends well before 5 s
    assert not reader._thread.is_alive()
    assert reader.read(timeout=0.1) is None
    assert source.stats().frames_read == 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
