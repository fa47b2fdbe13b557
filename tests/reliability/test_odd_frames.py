"""Frames of odd shape through the real pipeline (BlazeFace + the tiny int8 classifier).

8K, grayscale (2-D and 1-channel), BGRA, 1x1, empty, no face, one face, a crowd of 30 faces. Nothing
may raise except the empty frame (a clear ``ValueError`` the daemon counts as a frame error), and the
faces classified per frame never exceed ``model.max_faces``: the per-frame cost is bounded by
configuration, not by the scene. Per-frame times go to the fault table as figures (no timed assertion).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from reliability.faults import record

from edge.pipeline import Pipeline, PipelineOptions

CAP = 10


def _face() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ([test] extra) ships the face photo")
    import cv2

    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)[0:260, 100:340].copy()


class Crowd:
    """The real detector on one face, its detection repeated on a 6x5 grid: 30 faces per frame.

    (The short-range BlazeFace, made for faces within about 2 m, finds none of 30 faces that small
    in one frame; the crowd is made of its own real detection so the cap is what is tested.)
    """

    def __init__(self, detector, face: np.ndarray) -> None:
        self.detector = detector
        self.one = detector.detect(face)[0]
        self.fh, self.fw = face.shape[:2]

    def detect(self, frame: np.ndarray, timings: dict | None = None) -> list:
        self.detector.detect(frame, timings)  # the real cost of the frame
        out = []
        for r in range(5):
            for c in range(6):
                dx, dy = c * self.fw, r * self.fh
                x, y, w, h = self.one.box
                out.append(dataclasses.replace(self.one, box=(x + dx, y + dy, w, h),
                                               keypoints=self.one.keypoints + np.array([dx, dy], np.float32)))
        return out

    def close(self) -> None:
        self.detector.close()


@pytest.fixture(scope="module")
def pipeline(tiny_bundle: Path):
    p = Pipeline.from_bundle(tiny_bundle, PipelineOptions(max_faces=CAP))
    classified: list[int] = []
    real = p.classifier.probabilities

    def counting(crops):
        classified.append(len(crops))
        return real(crops)

    p.classifier.probabilities = counting  # type: ignore[method-assign]
    p.classified = classified  # type: ignore[attr-defined]
    yield p
    p.close()


def _frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    face = _face()
    return {
        "8K (7680x4320)": rng.integers(0, 255, (4320, 7680, 3), np.uint8),
        "grayscale 2-D": np.full((480, 640), 90, np.uint8),
        "grayscale 1-channel": np.full((480, 640, 1), 90, np.uint8),
        "BGRA": np.full((480, 640, 4), 90, np.uint8),
        "1x1": np.zeros((1, 1, 3), np.uint8),
        "no face": np.zeros((480, 640, 3), np.uint8),
        "one face": face,
        "30 faces": np.vstack([np.hstack([face] * 6)] * 5),
    }


def test_odd_frames_are_processed_and_classification_is_capped(pipeline) -> None:
    face_detector = pipeline.detector
    results = {}
    for name, frame in _frames().items():
        if name == "30 faces":
            pipeline.detector = Crowd(face_detector, _face())
        pipeline.classified.clear()
        t0 = time.perf_counter()
        error = None
        try:
            r = pipeline.process(frame, 1.0)
            r = pipeline.process(frame, 1.1)  # second frame: tracks exist
        except Exception as exc:  # noqa: BLE001 - recorded, then failed below
            error = f"{type(exc).__name__}: {exc}"
            r = None
        ms = (time.perf_counter() - t0) * 1e3 / 2
        pipeline.detector = face_detector
        most = max(pipeline.classified, default=0)
        ok = error is None and most <= CAP
        detail = (f"{ms:.0f} ms/frame; faces {len(r.faces)}, classified at most {most} per frame "
                  f"(cap model.max_faces={CAP}), {r.faces_skipped} skipped" if r else error)
        record(name, group="Frames", survived=ok, detail=detail)
        results[name] = (error, most, r)
    for name, (error, most, r) in results.items():
        assert error is None, f"{name}: {error}"
        assert most <= CAP, f"{name}: {most} faces classified in one frame"
    assert results["one face"][2].faces, "the face photo is found"
    crowd = results["30 faces"][2]
    assert len(crowd.faces) == CAP and crowd.faces_skipped == 30 - CAP


def test_an_empty_frame_is_a_clear_error(pipeline) -> None:
    with pytest.raises(ValueError, match=r"empty frame \(0x0 pixels\)"):
        pipeline.process(np.zeros((0, 0, 3), np.uint8))
    record("empty (0x0)", group="Frames", survived=True,
           detail="ValueError 'empty frame (0x0 pixels) from the camera': counted in stats.frame_errors, run goes on")
