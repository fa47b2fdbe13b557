"""`emotion-edge run` end to end: a video file, the real pipeline (tiny bundle), a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon.brokers import Broker, Recorder

from edge.demo import face_boxes, load_photos, packaged_photos, synthesise_clip

ROOT = Path(__file__).resolve().parents[2]


def _have_sources() -> bool:
    try:
        from edge.sources import open_source  # noqa: F401
    except ImportError:
        return False
    return True


needs_sources = pytest.mark.skipif(not _have_sources(), reason="edge.sources (frame sources) is not in this checkout yet")


@pytest.fixture(scope="module")
def clip_file(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    if not packaged_photos():
        pytest.skip("neither matplotlib nor scikit-image (which ship the demo photos) is installed")
    from edge.pipeline import Pipeline

    photos, paths = load_photos(None)
    with Pipeline.from_bundle(tiny_bundle) as p:
        clip = synthesise_clip(photos, face_boxes(p.detector, photos, paths), fps=10)
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (640, 480))
    for f in clip.frames:
        w.write(f)
    w.release()
    return out


@needs_sources
def test_run_on_a_video_file_publishes_events_and_exits_at_its_end(broker: Broker, tiny_bundle: Path,
                                                                   clip_file: Path, tmp_path: Path) -> None:
    rec = Recorder(broker.port, ["emotion_edge/filecam/#"])
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(f"camera:\n  id: filecam\n  source: {clip_file}\nmodel:\n  bundle: {tiny_bundle}\n"
                   "mqtt:\n  url: mqtt://127.0.0.1:${BROKER_PORT}\n")
    env = {**os.environ, "BROKER_PORT": str(broker.port)}
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert rec.wait_for(lambda: rec.payloads("/availability")[-1:] == [b"offline"])
    evs = [json.loads(p) for p in rec.payloads("/events")]
    types = [e["type"] for e in evs]
    assert types[0] == "new" and types[-1] == "end" and types.count("new") == types.count("end")
    assert all(e["model"] == "tiny-test" and e["camera"] == "filecam" for e in evs)
    rec.close()


@needs_sources
def test_run_flags_without_a_config_file(broker: Broker, tiny_bundle: Path, clip_file: Path) -> None:
    rec = Recorder(broker.port, ["emotion_edge/+/events"])
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "--source", str(clip_file), "--bundle", str(tiny_bundle),
                           "--mqtt", broker.url, "--camera-id", "flags"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert rec.wait_for(lambda: rec.payloads("/events"))
    assert all(t.startswith("emotion_edge/flags/") for t, _, _ in rec.messages)
    rec.close()


def test_run_without_source_or_config_is_one_clear_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "give --config FILE, or at least --source" in proc.stderr


@needs_sources
@pytest.mark.parametrize(("args", "needle"), [
    (["--source", "/no/such/clip.mp4"], "camera.source: no such file or folder: /no/such/clip.mp4"),
    (["--source", "gopher://cam"], "camera.source: no source type accepts 'gopher://cam'"),
])
def test_run_refuses_what_no_retry_can_fix(args: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert needle in proc.stderr


@needs_sources
def test_unknown_source_option_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.yaml"
    cfg.write_text("camera:\n  id: c\n  source: rtsp://127.0.0.1:9/x\n  options:\n    fsp: 10\n")
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(cfg)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "camera.options: unknown option(s) fsp for a stream source" in proc.stderr


@needs_sources
def test_unreachable_camera_is_retried_and_reported_not_fatal(broker: Broker, tiny_bundle: Path) -> None:
    import signal
    import socket

    with socket.socket() as s:  # a port with nothing listening: connection refused
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    rec = Recorder(broker.port, ["emotion_edge/door/camera"])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--source", f"rtsp://127.0.0.1:{dead}/stream",
                             "--camera-id", "door", "--bundle", str(tiny_bundle), "--mqtt", broker.url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert rec.wait_for(lambda: any(json.loads(p)["status"] == "reconnecting" for p in rec.payloads("/camera")),
                            timeout=60)
        time.sleep(1.5)  # let it fail and retry at least once more
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.close()
    last = json.loads(rec.payloads("/camera")[-1])
    assert "cannot open" in last["error"]
