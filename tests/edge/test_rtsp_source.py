"""Network streams against real servers on 127.0.0.1: reconnect after the server dies.

RTSP: GStreamer's RTSP server (tests/edge/rtsp_server.py, TCP-only, run by the
system Python with PyGObject). HTTP: FFmpeg's own HTTP server (``-listen 1``)
sending multipart MJPEG. Both are killed and restarted mid-read; the source
must reconnect by itself.
"""

from __future__ import annotations

import socket
import sys
import time

import pytest

from servers import Server, needs_ffmpeg, needs_gst  # fixtures rtsp_server/http_server: tests/conftest.py

from edge.errors import SourceError
from edge.sources import LatestFrameReader, open_source

FAST = dict(open_timeout=4.0, read_timeout=3.0, backoff_initial=0.2, backoff_max=1.0)
WAIT = 20.0  # seconds a test waits for frames before failing (a bound, not a timing assertion)


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



def test_a_server_spawn_that_fails_with_efault_is_retried_and_other_errors_are_not(monkeypatch) -> None:
    """The harness retries the vfork/execve EFAULT that CI saw once; any other spawn error still fails the test."""
    import errno
    import subprocess

    import servers

    real = subprocess.Popen
    calls = []

    def flaky(argv, **kw):
        calls.append(argv)
        if len(calls) == 1:
            raise OSError(errno.EFAULT, "Bad address", argv[0])
        return real(argv, **kw)

    monkeypatch.setattr(servers.subprocess, "Popen", flaky)
    proc = servers._spawn([sys.executable, "-c", "print('up')"])
    assert proc.communicate(timeout=30)[0].strip() == "up" and len(calls) == 2

    def missing(argv, **kw):
        raise FileNotFoundError(errno.ENOENT, "No such file", argv[0])

    monkeypatch.setattr(servers.subprocess, "Popen", missing)
    with pytest.raises(FileNotFoundError):
        servers._spawn(["/nonexistent"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
