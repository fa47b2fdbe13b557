"""`emotion-edge analyze`: output formats and the bad-input contract (one stderr line, non-zero exit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from support import DATA, ROOT, needs_data


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def assert_clean_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], proc.stderr


def test_missing_path_is_one_clear_line(tiny_bundle: Path) -> None:
    proc = run_cli("analyze", "/no/such/photo.jpg", "--bundle", str(tiny_bundle))
    assert_clean_error(proc, "no such file or folder: /no/such/photo.jpg")


def test_zero_byte_file(tiny_bundle: Path, tmp_path: Path) -> None:
    f = tmp_path / "empty.jpg"
    f.write_bytes(b"")
    proc = run_cli("analyze", str(f), "--bundle", str(tiny_bundle))
    assert_clean_error(proc, "file is empty (0 bytes)")


def test_unreadable_image(tiny_bundle: Path, tmp_path: Path) -> None:
    f = tmp_path / "junk.png"
    f.write_bytes(b"\x89PNG not really an image" * 10)
    proc = run_cli("analyze", str(f), "--bundle", str(tiny_bundle))
    assert_clean_error(proc, "not a readable image")


def test_tampered_bundle_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    blob = bytearray((bad / "classifier.tflite").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (bad / "classifier.tflite").write_bytes(bytes(blob))
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
    proc = run_cli("analyze", str(img), "--bundle", str(bad))
    assert_clean_error(proc, "does not match bundle.json")


def test_unknown_bundle_schema_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "future"
    shutil.copytree(tiny_bundle, bad)
    m = json.loads((bad / "bundle.json").read_text())
    m["schema_version"] = 99
    (bad / "bundle.json").write_text(json.dumps(m))
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
    proc = run_cli("analyze", str(img), "--bundle", str(bad))
    assert_clean_error(proc, "unknown bundle schema_version 99")


def test_blank_image_has_no_face(tiny_bundle: Path, tmp_path: Path) -> None:
    img = tmp_path / "blank.png"
    cv2.imwrite(str(img), np.full((240, 320, 3), 128, np.uint8))
    proc = run_cli("analyze", str(img), "--bundle", str(tiny_bundle), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@needs_data
def test_json_lines_for_photos(tiny_bundle: Path) -> None:
    files = sorted((DATA / "genki4k" / "files").glob("*.jpg"))[:5]
    proc = run_cli("analyze", *map(str, files), "--bundle", str(tiny_bundle), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(l) for l in proc.stdout.splitlines()]
    assert {r["file"] for r in rows} == {str(f) for f in files}  # one face each
    for r in rows:
        assert r["label"] in {"positive", "neutral", "negative", "uncertain"}
        assert set(r["scores"]) == {"positive", "neutral", "negative"}
        assert abs(sum(r["scores"].values()) - 1.0) < 0.01
        x, y, w, h = r["box"]
        assert 0 <= x <= 1 and 0 <= y <= 1 and 0.1 < w <= 1 and 0.1 < h <= 1


@needs_data
def test_video_faces_get_track_ids(tiny_bundle: Path, tmp_path: Path) -> None:
    """A clip made at run time from one photo: the face keeps one track id throughout."""
    photo = cv2.imread(str(sorted((DATA / "genki4k" / "files").glob("*.jpg"))[0]))
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(12):
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = 40 + 4 * i
        frame[20 : 20 + photo.shape[0], x : x + photo.shape[1]] = photo[:, : 320 - x]
        w.write(frame)
    w.release()
    proc = run_cli("analyze", str(video), "--bundle", str(tiny_bundle), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(l) for l in proc.stdout.splitlines()]
    assert len(rows) == 12
    assert {r["track"] for r in rows} == {1}
    assert [r["frame"] for r in rows] == list(range(12))


def test_python_api_reports_problems_without_raising(tiny_bundle: Path, tmp_path: Path) -> None:
    from edge.analyze import InputProblem, analyze

    bad = tmp_path / "a.jpg"
    bad.write_bytes(b"")
    blank = tmp_path / "b.png"
    cv2.imwrite(str(blank), np.zeros((50, 50, 3), np.uint8))
    problems: list[InputProblem] = []
    assert list(analyze([tmp_path], bundle=tiny_bundle, problems=problems)) == []
    assert [p.file for p in problems] == [str(bad)]
