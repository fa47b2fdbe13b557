"""Constants and helpers of the deploy tests (import as `from deploy_support import ...`)."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
# Wheels downloaded for kits are kept across test runs (gitignored).
KIT_CACHE = Path(os.environ.get("EMOTION_EDGE_TEST_KIT_CACHE", ROOT / ".cache"))


def load_script(name: str) -> ModuleType:
    """Import ``scripts/NAME.py`` (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_python() -> str:
    """The real interpreter behind this test run: the "Pi" builds its venv with it (same version as the kit)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))
