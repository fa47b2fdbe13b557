"""The fault log the reliability tests emit: one JSON record per fault tried.

``scripts/fault_report.py`` turns it into the table in docs/reliability.md. The file is
``build/reliability/faults.json`` unless ``$EMOTION_EDGE_FAULT_JSON`` names another; each test
replaces its own records (keyed by fault name), so a partial run updates only what it ran.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from support import ROOT


def fault_log_path() -> Path:
    return Path(os.environ.get("EMOTION_EDGE_FAULT_JSON", ROOT / "build" / "reliability" / "faults.json"))


def record(fault: str, *, survived: bool, recovery_s: float | None = None, lost: int | None = None,
           detail: str = "", group: str = "") -> None:
    """Add or replace the record for ``fault`` (call before asserting, so a failure is recorded too)."""
    path = fault_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"faults": {}}
    data["faults"][fault] = {
        "group": group,
        "survived": bool(survived),
        "recovery_s": None if recovery_s is None else round(float(recovery_s), 2),
        "lost": lost,
        "detail": detail,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
