#!/usr/bin/env python3
"""Check the systemd units offline: `systemd-analyze verify` clean, exposure score <= 3.0.

    python scripts/check_units.py            # prints the score; exit 1 on any problem

The unit is verified as an instance (emotion-edge@check.service) under a scratch
root holding the system's own units and a stand-in ExecStart binary, so the
check needs neither the install nor a running systemd.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "emotion-edge@.service"
INSTANCE = "emotion-edge@check.service"
MAX_EXPOSURE = 3.0
_SYSTEM_UNITS = [Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")]


def _scratch_root(tmp: Path, unit: Path) -> Path:
    root = tmp / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copyfile(unit, root / "etc/systemd/system" / "emotion-edge@.service")
    sysunits = next((p for p in _SYSTEM_UNITS if p.is_dir()), None)
    if sysunits is not None:  # targets the unit refers to (network-online.target, sysinit.target...)
        shutil.copytree(sysunits, root / "usr/lib/systemd/system", symlinks=True)
    exec_start = re.search(r"^ExecStart=(\S+)", unit.read_text(), re.MULTILINE)
    if exec_start:
        exe = root / exec_start.group(1).lstrip("/")
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return root


def verify(unit: Path = UNIT) -> str:
    """Output of `systemd-analyze verify` (empty = clean); raises CalledProcessError if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _scratch_root(Path(tmp), unit)
        proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "--man=no", INSTANCE],
                              capture_output=True, text=True, check=False)
        out = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return out


def exposure(unit: Path = UNIT) -> tuple[float, str]:
    """Overall exposure score of `systemd-analyze security --offline=yes` and the full report."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _scratch_root(Path(tmp), unit)
        proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--no-pager", INSTANCE],
                              capture_output=True, text=True, check=True)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    if not m:
        raise RuntimeError(f"no exposure score in systemd-analyze output:\n{proc.stdout[-1000:]}")
    return float(m.group(1)), proc.stdout


def main() -> int:
    if shutil.which("systemd-analyze") is None:
        print("systemd-analyze not found (apt-get install systemd)", file=sys.stderr)
        return 2
    problems = 0
    try:
        out = verify()
    except subprocess.CalledProcessError as exc:
        out, problems = (exc.stdout + exc.stderr).strip() or f"exit {exc.returncode}", problems + 1
    print(f"systemd-analyze verify {UNIT.name}: {'clean' if not out else out}")
    problems += bool(out)
    score, _ = exposure()
    print(f"systemd-analyze security --offline=yes {UNIT.name}: exposure {score:.1f} (limit {MAX_EXPOSURE})")
    problems += score > MAX_EXPOSURE
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
