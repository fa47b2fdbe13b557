"""`emotion-edge demo`: broker + daemon + subscriber on a clip synthesised from a package-shipped photo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from daemon.brokers import MOSQUITTO

from edge.demo import packaged_photos, synthesise_clip

ROOT = Path(__file__).resolve().parents[2]


def test_clip_is_synthesised_from_packaged_photos() -> None:
    import numpy as np

    photos = packaged_photos()
    if not photos:
        pytest.skip("neither matplotlib nor scikit-image (which ship the demo photos) is installed")
    img = np.zeros((200, 200, 3), np.uint8)
    clip = synthesise_clip([img], [(50.0, 50.0, 100.0, 100.0)], fps=10)
    assert clip.frames[0].shape == (480, 640, 3) and len(clip.frames) > 50
    # The repository carries no image: the photos come from installed packages.
    assert all("site-packages" in str(p) or "dist-packages" in str(p) for p in photos)


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
def test_demo_prints_the_events_a_subscriber_received(tiny_bundle: Path) -> None:
    if not packaged_photos():
        pytest.skip("neither matplotlib nor scikit-image (which ship the demo photos) is installed")
    proc = subprocess.run([sys.executable, "-m", "edge", "demo", "--bundle", str(tiny_bundle)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "broker  mqtt://127.0.0.1:" in out and "(mosquitto, started for the demo)" in out
    assert re.search(r"face #1 +new ", out) and re.search(r"face #1 +end ", out)
    assert "availability offline" in out
    m = re.search(r"(\d+) events received: (\d+) new, (\d+) update, (\d+) end", out)
    assert m and int(m.group(2)) >= 1 and int(m.group(4)) == int(m.group(2))
    assert re.search(r"(\d+) events acknowledged by the broker, 0 dropped", out)


def test_demo_with_the_embedded_broker(tiny_bundle: Path) -> None:
    if not packaged_photos():
        pytest.skip("neither matplotlib nor scikit-image (which ship the demo photos) is installed")
    proc = subprocess.run([sys.executable, "-m", "edge", "demo", "--bundle", str(tiny_bundle), "--broker", "embedded"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "(embedded minimal broker" in proc.stdout
    assert re.search(r"face #1 +new ", proc.stdout) and re.search(r"face #1 +end ", proc.stdout)
