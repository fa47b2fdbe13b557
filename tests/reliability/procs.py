"""Daemon processes for the reliability tests: the real CLI, or the scripted pipeline (tests/daemon/run_scripted.py).

Output goes to a log file (a pipe nobody reads would fill up and block a long run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from support import ROOT

TESTS = ROOT / "tests"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_EDGE_MQTT")}
    return {**env, "PYTHONPATH": f"{ROOT}:{TESTS}", "PYTHONUNBUFFERED": "1", **(extra or {})}


class DaemonProc:
    """A daemon subprocess with its combined output in ``log``."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=_env(env), cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stopped_counts(self) -> tuple[int, int] | None:
        """(frames, events) from the daemon's last log line, once it has stopped cleanly."""
        m = re.findall(r"daemon: stopped \((\d+) frames, (\d+) events\)", self.text())
        return (int(m[-1][0]), int(m[-1][1])) if m else None


def scripted_daemon(port: int, log: Path, overrides: dict | None = None, mode: str = "cycle") -> DaemonProc:
    """The real daemon, MQTT and tracking with a scripted detector/classifier on an endless 30 fps source."""
    argv = [sys.executable, str(TESTS / "daemon" / "run_scripted.py"), str(port), mode, json.dumps(overrides or {})]
    return DaemonProc(argv, log)


def cli_daemon(config: Path, log: Path, env: dict[str, str] | None = None, *extra: str) -> DaemonProc:
    """``python -m edge run --config FILE``: the whole real thing."""
    return DaemonProc([sys.executable, "-m", "edge", "run", "--config", str(config), *extra], log, env)


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
