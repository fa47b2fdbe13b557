"""Shared fixtures: dataset location, a tiny int8 bundle, free ports, Mosquitto, stream servers."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon.brokers import MOSQUITTO, Broker
from servers import Server, http_server_for, rtsp_server_for
from support import DATA, ROOT, have_tensorflow, needs_data  # noqa: F401


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle with a random-weight int8 classifier (built with TensorFlow in a subprocess-free call)."""
    if not have_tensorflow():
        pytest.skip("TensorFlow ([convert] extra) is needed to build the tiny test bundle")
    from tiny_model import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def genki_dir() -> Path:
    d = DATA / "genki4k"
    if not (d / "labels.csv").is_file():
        pytest.skip(f"GENKI-4K not found in {d}")
    return d


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port (stop()/start()/restart() keep the port)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Broker]:
    """Like ``broker``, with persistence: sessions and queued QoS1 messages survive a restart."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    b = Broker(tmp_path, persistence=True)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def rtsp_server(free_port: int) -> Iterator[tuple[Server, str]]:
    """An unstarted GStreamer RTSP server (TCP only) on a free port, and its URL."""
    server, url = rtsp_server_for(free_port)
    yield server, url
    server.kill()


@pytest.fixture
def http_server(free_port: int) -> Iterator[tuple[Server, str]]:
    """An unstarted FFmpeg HTTP MJPEG server on a free port, and its URL."""
    server, url = http_server_for(free_port)
    yield server, url
    server.kill()
