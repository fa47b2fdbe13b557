"""`emotion-edge bench`: report structure, a TensorFlow-free run, the fer peer.

No timed thresholds here: speed figures are printed by the command, not asserted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import ROOT

PEER_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
QUICK = ["--frames", "3", "--warmup", "1", "--rss-frames", "3", "--threads", "1"]
needs_photo = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None,
    reason="scikit-image (the [bench]/[test] extra) carries the face photo bench pastes into frames",
)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


@needs_photo
def test_json_report_has_every_configuration_with_positive_figures(tiny_bundle: Path) -> None:
    proc = run_cli(
        "bench", "--json", "--bundle", str(tiny_bundle), "--face-counts", "1,2", "--no-peer", "--pace-ms", "1", *QUICK
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)

    assert report["schema"] == "emotion-edge.bench/1"
    assert report["bundle"]["id"] == "tiny-test"
    assert report["frame"]["width"] == 640 and report["frame"]["height"] == 480
    assert report["pace_ms"] == 1.0 and report["pinned"] is False
    assert [(r["faces"], r["threads"]) for r in report["runs"]] == [(1, 1), (2, 1)]
    for run in report["runs"]:
        # The synthetic frames hold exactly the faces pasted into them, and the detector finds them all.
        assert run["faces_found_mean"] == run["faces"]
        assert run["ms_per_frame"]["n"] == 3
        for key in ("median", "p90", "mean", "min", "max"):
            assert _positive(run["ms_per_frame"][key]), run["ms_per_frame"]
        assert run["ms_per_frame"]["p90"] >= run["ms_per_frame"]["median"]
        assert _positive(run["cpu_ms_per_frame"]["median"])
        assert set(run["stages"]) == set(report["stages"])
        for stage in ("resize", "detect", "decode", "track", "crop", "classify"):
            assert _positive(run["stages"][stage]["median"]), (stage, run["stages"][stage])

    daemon = report["memory"]["daemon_path"]
    assert "error" not in daemon, daemon
    assert _positive(daemon["peak_rss_mb"]) and daemon["peak_rss_mb"] >= daemon["rss_after_imports_mb"]
    assert daemon["frames"] == 3 and daemon["faces_found_mean"] == 2
    assert daemon["heavy_modules_loaded"] == []
    assert _positive(report["memory"]["bench_process_peak_rss_mb"])

    assert report["peer"] == {"skipped": "--no-peer given"}
    assert report["peer_ratios"] == []
    assert report["checks"]["ms_per_frame_1face_1thread"]["value"] == report["runs"][0]["ms_per_frame"]["median"]
    assert "daemon_peak_rss_mb" in report["checks"]


@needs_photo
def test_full_run_needs_no_tensorflow(tiny_bundle: Path) -> None:
    """The whole command (table output, daemon-path child, peer step) with TF/Keras/MediaPipe unimportable."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        BLOCKED = ("tensorflow", "keras", "tf_keras", "mediapipe")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked for this test: " + name)
                return None

        sys.meta_path.insert(0, Block())
        from edge.cli import main

        rc = main(["bench", "--bundle", {str(tiny_bundle)!r}, "--peer-frames", "2", *{QUICK!r}])
        loaded = sorted(m for m in ("tensorflow", "keras", "mediapipe") if m in sys.modules)
        try:
            import tensorflow  # noqa: F401  the block must really be in force
            blocked = False
        except ImportError:
            blocked = True
        print("RESULT", rc, loaded, blocked)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 0 [] True" in proc.stdout, proc.stdout + proc.stderr
    assert "ms/frame" in proc.stdout and "daemon-path peak RSS:" in proc.stdout
    assert "peer" in proc.stdout


@needs_photo
@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="no .bench-venv (scripts/setup_bench_env.sh makes it)")
def test_fer_peer_runs_on_the_same_frames(tiny_bundle: Path) -> None:
    proc = run_cli("bench", "--json", "--bundle", str(tiny_bundle), "--peer-python", str(PEER_PYTHON),
                   "--peer-frames", "2", *QUICK)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    peer = report["peer"]
    assert "skipped" not in peer, peer
    assert peer["name"] == "fer" and peer["version"]
    assert [(r["faces"], r["threads"]) for r in peer["runs"]] == [(1, 1), (5, 1)]
    for run in peer["runs"]:
        assert _positive(run["ms_per_frame"]["median"])
        assert run["faces_found_mean"] > 0  # fer's Haar cascade sees the pasted faces too
    assert [(r["faces"], r["threads"]) for r in report["peer_ratios"]] == [(1, 1), (5, 1)]
    assert all(_positive(r["ours_over_peer"]) and _positive(r["ours_over_peer_cpu"]) for r in report["peer_ratios"])
    assert report["checks"]["peer_ratio_max"]["value"] == max(
        v for r in report["peer_ratios"] for v in (r["ours_over_peer"], r["ours_over_peer_cpu"])
    )


def test_bad_faces_dir_is_one_clear_line(tiny_bundle: Path, tmp_path: Path) -> None:
    proc = run_cli("bench", "--bundle", str(tiny_bundle), "--faces", str(tmp_path / "nope"), "--no-peer", *QUICK)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "not a directory" in errors[0], proc.stderr


def test_folder_without_faces_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "wall.png"), np.full((200, 200, 3), 128, np.uint8))
    proc = run_cli("bench", "--bundle", str(tiny_bundle), "--faces", str(tmp_path), "--no-peer", *QUICK)
    assert proc.returncode == 2
    assert "no face found in 1 photo(s)" in proc.stderr, proc.stderr
