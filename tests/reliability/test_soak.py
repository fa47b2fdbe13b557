"""Soak: the real daemon (``python -m edge run``) on a looping clip, RSS sampled, growth bounded.

CI runs 3 minutes (``$EMOTION_EDGE_SOAK_S`` to change); the one-hour run is marked ``slow`` and runs
only when selected (``-m slow``). RSS is printed every minute (``-s`` shows it);
growth after the warm-up must stay within 5 MB.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from daemon.brokers import Broker, Recorder, wait_for
from reliability.faults import record
from reliability.procs import cli_daemon, rss_kb

GROWTH_LIMIT_MB = 5.0
SAMPLE_S = 5.0


def _clip(path: Path, seconds: int = 6, fps: int = 10) -> Path:
    """A clip with a face that comes and goes (events every loop), from scikit-image's astronaut."""
    import cv2

    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ([test] extra) ships the face photo")
    face = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)[0:260, 100:340]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (480, 360))
    assert w.isOpened(), "OpenCV cannot write an MJPG clip"
    for i in range(seconds * fps):
        frame = np.full((360, 480, 3), 70, np.uint8)
        if i < seconds * fps * 2 // 3:
            x = 40 + (i % 30) * 4
            frame[50:310, x:x + 240] = face
        w.write(frame)
    w.release()
    return path


def _soak(broker: Broker, tiny_bundle: Path, tmp_path: Path, duration_s: float, warmup_s: float) -> None:
    clip = _clip(tmp_path / "loop.avi")
    cfg = tmp_path / "soak.yaml"
    cfg.write_text(yaml.safe_dump({
        "camera": {"id": "cam1", "source": str(clip), "options": {"realtime": True}, "on_end": "reopen"},
        "mqtt": {"url": broker.url, "stats_interval_s": 30},
        "model": {"bundle": str(tiny_bundle)},
    }))
    rec = Recorder(broker.port, ["emotion_edge/cam1/events", "emotion_edge/cam1/stats"])
    daemon = cli_daemon(cfg, tmp_path / "daemon.log")
    samples: list[tuple[float, float]] = []  # (seconds since start, RSS MB)
    try:
        assert wait_for(lambda: rec.payloads("/events"), 60), daemon.text()[-3000:]
        t0 = time.monotonic()
        next_print = 0.0
        while (now := time.monotonic() - t0) < duration_s:
            assert daemon.proc.poll() is None, daemon.text()[-3000:]
            samples.append((now, rss_kb(daemon.pid) / 1024))
            if now >= next_print:
                print(f"soak t={now / 60:5.1f} min  RSS {samples[-1][1]:7.1f} MB  events {len(rec.payloads('/events'))}",
                      flush=True)
                next_print += 60
            time.sleep(SAMPLE_S)
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        rec.close()
    after = [mb for t, mb in samples if t >= warmup_s]
    assert len(after) >= 6, "too few samples after the warm-up"
    start, end = statistics.median(after[:3]), statistics.median(after[-3:])
    growth = end - start
    stats = [json.loads(p) for p in rec.payloads("/stats")]
    errors = stats[-1]["frame_errors"] if stats else None
    events = len(rec.payloads("/events"))
    record(f"{duration_s / 60:.0f} min on a looping clip (real pipeline)", group="Soak",
           survived=growth <= GROWTH_LIMIT_MB and errors == 0, lost=None,
           detail=f"RSS {start:.1f} -> {end:.1f} MB after {warmup_s:.0f} s warm-up (growth {growth:+.1f} MB, "
                  f"limit {GROWTH_LIMIT_MB:.0f}); peak {max(mb for _, mb in samples):.1f} MB; {events} events, "
                  f"{errors} frame errors")
    print(f"soak: RSS {start:.1f} -> {end:.1f} MB (growth {growth:+.2f} MB), {events} events")
    assert growth <= GROWTH_LIMIT_MB, f"RSS grew {growth:.1f} MB after warm-up"
    assert errors == 0 and events > 0


def test_soak_short(broker: Broker, tiny_bundle: Path, tmp_path: Path) -> None:
    duration = float(os.environ.get("EMOTION_EDGE_SOAK_S", "180"))
    _soak(broker, tiny_bundle, tmp_path, duration, warmup_s=min(60.0, duration / 3))


@pytest.mark.slow
def test_soak_one_hour(broker: Broker, tiny_bundle: Path, tmp_path: Path) -> None:
    _soak(broker, tiny_bundle, tmp_path, 3600.0, warmup_s=300.0)
