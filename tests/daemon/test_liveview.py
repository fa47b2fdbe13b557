"""Live view: off by default, loopback by default, serves annotated JPEG snapshots and an MJPEG stream."""

from __future__ import annotations

import threading
import urllib.request

import cv2
import numpy as np

from edge.config import LiveViewConfig
from edge.liveview import BOUNDARY, LiveView, annotate
from edge.pipeline import FaceResult


class _Result:
    def __init__(self) -> None:
        self.faces = [FaceResult(track_id=7, box=(0.25, 0.25, 0.5, 0.5), box_px=(0, 0, 0, 0), detection_score=0.9,
                                 label="positive", score=0.91, scores={}, raw=None)]


def test_defaults_are_off_and_loopback() -> None:
    c = LiveViewConfig()
    assert c.enabled is False and c.host == "127.0.0.1"


def test_annotate_draws_the_box_in_the_label_colour() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    out = annotate(img, _Result().faces)
    assert img.sum() == 0  # the camera frame itself is untouched
    assert tuple(out[50, 25]) == (80, 200, 60)  # left edge of the box, positive colour


def test_snapshot_and_mjpeg_stream(free_port: int) -> None:
    lv = LiveView(LiveViewConfig(enabled=True, port=free_port, max_fps=50))
    lv.start()
    stop = threading.Event()

    def feed() -> None:
        img = np.full((120, 160, 3), 60, np.uint8)
        while not stop.is_set():
            lv.update(img, _Result())
            stop.wait(0.02)

    th = threading.Thread(target=feed)
    th.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/snapshot.jpg", timeout=5) as r:
            assert r.headers["Content-Type"] == "image/jpeg"
            img = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (120, 160, 3)
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/stream.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
            head = r.read(200)
            assert head.startswith(f"--{BOUNDARY}\r\nContent-Type: image/jpeg".encode())
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/", timeout=5) as r:
            assert b"/stream.mjpg" in r.read()
    finally:
        stop.set()
        th.join()
        lv.close()
        lv.close()
