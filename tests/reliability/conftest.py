"""Reliability suite: faults injected into real processes on 127.0.0.1 (see docs/reliability.md).

Tests marked ``slow`` here (the one-hour soak) run only when selected: ``-m slow`` or
``EMOTION_EDGE_SLOW=1``.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = "slow" in (config.getoption("-m") or "") or os.environ.get("EMOTION_EDGE_SLOW") == "1"
    if selected:
        return
    skip = pytest.mark.skip(reason="slow (hour-long): select with -m slow or EMOTION_EDGE_SLOW=1")
    for item in items:
        if "slow" in item.keywords and "reliability" in str(item.fspath):
            item.add_marker(skip)
