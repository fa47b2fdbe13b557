"""Shared fixtures: dataset location, a tiny int8 bundle, free ports."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import DATA, ROOT, have_tensorflow, needs_data  # noqa: E402,F401


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
