"""emotion-edge-ctl on a prefix install: atomic activate, previous/rollback, pruning, pidfile service."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def install(tmp_path):
    base = tmp_path / "opt/emotion-edge"
    (base / "bin").mkdir(parents=True)
    shutil.copyfile(ROOT / "systemd/emotion-edge-ctl", base / "bin/emotion-edge-ctl")
    (base / "bin/emotion-edge-ctl").chmod(0o755)
    (base / "install.env").write_text("MODE=process\n")
    for i, name in enumerate(["r1", "r2", "r3", "r4", "r5"]):
        rel = base / "releases" / name
        (rel / "venv/bin").mkdir(parents=True)
        (rel / ".installed").touch()
        os.utime(rel, (1_000_000 + i, 1_000_000 + i))  # r5 is the newest
    return tmp_path


def ctl(install: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(install / "opt/emotion-edge/bin/emotion-edge-ctl"), *args], capture_output=True,
                          text=True, check=check, timeout=60)


def test_activate_keeps_previous_and_rollback_swaps(install):
    ctl(install, "activate", "r1")
    ctl(install, "activate", "r2")
    assert ctl(install, "current").stdout.strip() == "r2"
    assert ctl(install, "previous").stdout.strip() == "r1"
    ctl(install, "rollback")
    assert (ctl(install, "current").stdout.strip(), ctl(install, "previous").stdout.strip()) == ("r1", "r2")
    ctl(install, "set-previous", "r3")
    assert ctl(install, "previous").stdout.strip() == "r3"
    ctl(install, "set-previous")
    assert ctl(install, "previous").stdout.strip() == ""
    assert os.readlink(install / "opt/emotion-edge/current") == "releases/r1"  # relative: the prefix can move


def test_activate_refuses_an_unfinished_release(install):
    (install / "opt/emotion-edge/releases/r3/.installed").unlink()
    proc = ctl(install, "activate", "r3", check=False)
    assert proc.returncode != 0 and "not installed" in proc.stderr
    assert ctl(install, "current").stdout.strip() == ""


def test_prune_keeps_the_newest_and_never_current_or_previous(install):
    ctl(install, "activate", "r1")
    ctl(install, "activate", "r2")
    ctl(install, "prune", "2")
    left = sorted(p.name for p in (install / "opt/emotion-edge/releases").iterdir())
    assert left == ["r1", "r2", "r4", "r5"]


def test_process_mode_starts_stops_and_reports(install, tmp_path):
    # A stand-in daemon: the ctl only needs something named `emotion-edge run` that keeps running.
    ctl(install, "activate", "r5")
    exe = install / "opt/emotion-edge/releases/r5/venv/bin/emotion-edge"
    exe.write_text("#!/bin/sh\necho \"camera=$EMOTION_EDGE_CAMERA home=$EMOTION_EDGE_HOME creds=${CREDENTIALS_DIRECTORY:-none}\"\n"
                   "trap 'echo stopping; exit 0' TERM\nwhile :; do sleep 0.1; done\n")
    exe.chmod(0o755)
    (install / "etc/emotion-edge").mkdir(parents=True)
    (install / "etc/emotion-edge/cam.yaml").write_text("camera: {id: cam, source: x}\n")
    cred = install / "etc/emotion-edge/credentials/cam"
    cred.mkdir(parents=True)
    (cred / "mqtt_password").write_text("")  # empty: no password, so no CREDENTIALS_DIRECTORY
    assert ctl(install, "is-active", "cam", check=False).returncode != 0
    ctl(install, "start", "cam")
    try:
        assert ctl(install, "is-active", "cam", check=False).returncode == 0
        assert "running (pid" in ctl(install, "status", "cam").stdout
        assert ctl(install, "cameras").stdout.split() == ["cam"]
    finally:
        ctl(install, "stop", "cam")
    assert ctl(install, "is-active", "cam", check=False).returncode != 0
    log = (install / "var/log/emotion-edge/cam.log").read_text()
    assert "starting release r5" in log
    assert f"camera=cam home={install}/opt/emotion-edge creds=none" in log
    assert "stopping" in log  # SIGTERM, not SIGKILL
