"""Broken installs: bundle missing, truncated or tampered; config unreadable; temp/state directory full or read-only.

Each runs the real CLI (``python -m edge run``): a clear one-line error and a non-zero exit at start (the
exit codes the systemd unit's ``RestartPreventExitStatus`` names: 2 config, 3 bundle), or, where the
daemon can go on, a normal run.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from daemon.brokers import Broker
from reliability.faults import record
from support import ROOT


def _run(config: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)], capture_output=True,
                          text=True, env=full_env, cwd=cwd or ROOT, timeout=timeout, check=False)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A folder of three frames (a finite source: the daemon stops at its end)."""
    import cv2

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"{i}.png"), np.full((120, 160, 3), 60 + 40 * i, np.uint8))
    return d


def _config(tmp_path: Path, bundle: Path | str, source: Path, url: str = "mqtt://127.0.0.1:1") -> Path:
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(yaml.safe_dump({"camera": {"id": "cam1", "source": str(source)},
                                   "mqtt": {"url": url, "connect_wait_s": 0.5},
                                   "model": {"bundle": str(bundle)}}))
    return cfg


def _damaged_bundle(tiny: Path, dest: Path, damage: str) -> Path:
    b = dest / "bundle"
    shutil.copytree(tiny, b)
    if damage == "missing":
        shutil.rmtree(b)
    elif damage == "manifest truncated":
        text = (b / "bundle.json").read_bytes()
        (b / "bundle.json").write_bytes(text[: len(text) // 2])
    elif damage == "classifier truncated":
        data = (b / "classifier.tflite").read_bytes()
        (b / "classifier.tflite").write_bytes(data[: len(data) // 3])
    elif damage == "classifier tampered":
        data = bytearray((b / "classifier.tflite").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (b / "classifier.tflite").write_bytes(bytes(data))
    elif damage == "detector tampered":
        data = bytearray((b / "detector.tflite").read_bytes())
        data[-100] ^= 0x01
        (b / "detector.tflite").write_bytes(bytes(data))
    elif damage == "classifier missing":
        (b / "classifier.tflite").unlink()
    return b


BUNDLE_CASES = {
    "missing": r"bundle not found",
    "manifest truncated": r"bundle\.json: not valid JSON",
    "classifier truncated": r"classifier file .* does not match bundle\.json .*corrupt or was modified",
    "classifier tampered": r"classifier file .* does not match bundle\.json .*corrupt or was modified",
    "classifier missing": r"classifier file missing",
}


def _msg(line: str, tmp_path: Path) -> str:
    """The error message as the table shows it: temp paths shortened, long ones cut."""
    text = line.removeprefix("emotion-edge run: error: ").replace(str(tmp_path), "DIR")
    return text if len(text) <= 120 else text[:117] + "..."


def _one_clear_line(p: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in p.stderr, p.stderr
    assert lines and lines[-1].startswith("emotion-edge run: error: "), p.stderr
    return lines[-1]


@pytest.mark.parametrize("damage", list(BUNDLE_CASES))
def test_damaged_bundle_is_refused_at_start(damage: str, tiny_bundle: Path, tmp_path: Path, clip: Path) -> None:
    import re

    bundle = _damaged_bundle(tiny_bundle, tmp_path, damage)
    p = _run(_config(tmp_path, bundle, clip))
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    clear = p.returncode == 3 and "Traceback" not in p.stderr and re.search(BUNDLE_CASES[damage], line) is not None
    record(f"bundle {damage}", group="Install", survived=clear,
           detail=f"exit {p.returncode}: `{_msg(line, tmp_path)}`")
    _one_clear_line(p)
    assert p.returncode == 3
    assert re.search(BUNDLE_CASES[damage], line), line


def test_tampered_detector_is_never_used(tiny_bundle: Path, tmp_path: Path, clip: Path) -> None:
    # The detector is resolved by sha256 (bundle dir, $EMOTION_EDGE_DETECTOR, installed package): a
    # modified copy in the bundle is skipped with a warning and the verified package copy runs.
    bundle = _damaged_bundle(tiny_bundle, tmp_path, "detector tampered")
    p = _run(_config(tmp_path, bundle, clip))
    warned = "does not match the bundle's sha256" in p.stderr and str(bundle / "detector.tflite") in p.stderr
    record("bundle detector tampered", group="Install", survived=p.returncode == 0 and warned,
           detail="the modified file is skipped with a warning; the verified copy from the installed package runs")
    assert p.returncode == 0, p.stderr[-2000:]
    assert warned, p.stderr[-2000:]


CONFIG_CASES = {
    "is a directory": ("dir", r"cannot read config .*: Is a directory"),
    "missing": ("missing", r"cannot read config .*: No such file"),
    "not UTF-8": ("binary", r"cam.yaml:2: not UTF-8 text"),
    "not YAML": ("garbage", r"not valid YAML"),
    "empty": ("empty", r"config"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_unreadable_config_is_refused_at_start(case: str, tmp_path: Path) -> None:
    import re

    kind, pattern = CONFIG_CASES[case]
    cfg = tmp_path / "cam.yaml"
    if kind == "dir":
        cfg.mkdir()
    elif kind == "binary":
        cfg.write_bytes(b"camera:\n  id: \xff\xfe\x00porch\n")
    elif kind == "garbage":
        cfg.write_text("camera: [id: porch\n  source: {{\n")
    elif kind == "empty":
        cfg.write_text("")
    p = _run(cfg)
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    clear = p.returncode == 2 and "Traceback" not in p.stderr and re.search(pattern, line) is not None
    record(f"config {case}", group="Install", survived=clear,
           detail=f"exit {p.returncode}: `{_msg(line, tmp_path)}`")
    _one_clear_line(p)
    assert p.returncode == 2
    assert re.search(pattern, line), line


@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "64k", ro: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): needs root in a privileged container")
    try:
        yield where
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)


def test_full_temp_dir_with_an_archive_bundle_is_a_clear_error(tiny_bundle: Path, tmp_path: Path, clip: Path) -> None:
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tiny_bundle, arcname="tiny")
    with _tmpfs(tmp_path / "tmp", size="64k") as tmp:
        p = _run(_config(tmp_path, archive, clip), env={"TMPDIR": str(tmp)})
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    clear = p.returncode == 3 and "Traceback" not in p.stderr and "TMPDIR" in line
    record("Temp directory full (archive bundle to unpack)", group="Install", survived=clear,
           detail=f"exit {p.returncode}: `{_msg(line, tmp_path)}`")
    _one_clear_line(p)
    assert p.returncode == 3 and "TMPDIR" in line, line


def test_read_only_temp_dir_falls_back(tiny_bundle: Path, tmp_path: Path, clip: Path) -> None:
    # Python's tempfile skips a $TMPDIR it cannot write to (then /tmp, /var/tmp, the cwd): the run goes on.
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tiny_bundle, arcname="tiny")
    with _tmpfs(tmp_path / "tmp", ro=True) as tmp:
        p = _run(_config(tmp_path, archive, clip), env={"TMPDIR": str(tmp)})
    record("Temp directory read-only (archive bundle to unpack)", group="Install", survived=p.returncode == 0,
           detail="unpacked in the next usable temp directory (/tmp); the run goes on")
    assert p.returncode == 0, p.stderr[-2000:]


def test_full_and_read_only_state_dirs_do_not_stop_a_run(broker: Broker, tiny_bundle: Path, tmp_path: Path,
                                                          clip: Path) -> None:
    # The daemon keeps nothing on disk (the event queue is in memory, logs go to stderr/journald): with
    # its working directory read-only and $TMPDIR full it must run as usual.
    from daemon.brokers import Recorder

    rec = Recorder(broker.port, ["emotion_edge/cam1/#"])
    with _tmpfs(tmp_path / "full", size="8k") as full:
        with contextlib.suppress(OSError):
            (full / "filler").write_bytes(b"\0" * 65536)  # fill it up
        with _tmpfs(tmp_path / "ro", ro=True) as ro:
            p = _run(_config(tmp_path, tiny_bundle, clip, broker.url), env={"TMPDIR": str(full), "HOME": str(ro)},
                     cwd=ro)
    got = rec.wait_for(lambda: rec.payloads("/availability")[-1:] == [b"offline"], 15)
    online = b"online" in rec.payloads("/availability")
    rec.close()
    ok = p.returncode == 0 and online and got
    record("State and temp directories full / read-only at run time", group="Install", survived=ok,
           detail="the daemon writes nothing to disk: runs as usual" if ok else f"exit {p.returncode}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert online and got
