"""Shared test constants (import as `from support import ...`; several conftest.py files exist)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMOTION_EDGE_DATA", ROOT.parent / "shared" / "data"))

needs_data = pytest.mark.skipif(not (DATA / "fer2013").is_dir(), reason=f"dataset folder {DATA} is absent")


def have_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None
