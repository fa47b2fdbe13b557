"""A pipeline whose faces and labels are scripted in the frames themselves.

Only the detector and classifier are stand-ins (their outputs are what the test
controls); tracking, smoothing, events, the daemon and MQTT are the real code.
Frame pixel (0, 0): channel 0 = 1 if a face is in the frame, channel 1 = the
valence index (0 positive, 1 neutral, 2 negative).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edge.classifier import make_prediction
from edge.detector import Detection
from edge.pipeline import Pipeline, PipelineOptions
from edge.preprocess import PreprocessSpec
from edge.tracking import TrackerOptions

POS, NEU, NEG = 0, 1, 2
NAMES = ("positive", "neutral", "negative")


def frame_for(face: bool, label: int = POS, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    img = np.full((*size, 3), 90, np.uint8)
    img[0, 0, 0] = 1 if face else 0
    img[0, 0, 1] = label
    return img


class ScriptedDetector:
    def __init__(self) -> None:
        self.label = POS

    def detect(self, frame: np.ndarray, timings: dict | None = None) -> list[Detection]:
        self.label = int(frame[0, 0, 1])
        if not frame[0, 0, 0]:
            return []
        h, w = frame.shape[:2]
        kp = np.array([[w * 0.4, h * 0.4], [w * 0.6, h * 0.4]] + [[w * 0.5, h * 0.5]] * 4, np.float32)
        return [Detection(box=(w * 0.3, h * 0.25, w * 0.4, h * 0.5), score=0.95, keypoints=kp)]

    def close(self) -> None:
        pass


class ScriptedClassifier:
    bundle_id = "scripted"
    spec = PreprocessSpec(input_size=16, color="gray")
    classes = list(NAMES)
    abstain = 0.0

    def __init__(self, detector: ScriptedDetector) -> None:
        self.detector = detector

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        p = np.full((len(crops), 3), 0.05, np.float32)
        p[:, self.detector.label] = 0.9
        return p

    def valence_probabilities(self, probs: np.ndarray) -> np.ndarray:
        return probs

    def to_prediction(self, p: np.ndarray):
        return make_prediction(p, 0.0, dict(zip(self.classes, p.tolist())))

    def close(self) -> None:
        pass


def scripted_pipeline() -> Pipeline:
    det = ScriptedDetector()
    opts = PipelineOptions(tracker=TrackerOptions(min_hits=2, max_misses=2, ema_alpha=1.0, hysteresis=0.1))
    return Pipeline(det, ScriptedClassifier(det), opts)  # type: ignore[arg-type]


@dataclass
class Frame:
    image: np.ndarray
    time: float
    index: int


class ListSource:
    """Frames from a list, optionally paced and looped; ``read()`` returns None at the end."""

    def __init__(self, frames: list[np.ndarray], fps: float = 0.0, loop: bool = False) -> None:
        self.frames, self.fps, self.loop = frames, fps, loop
        self.i = 0
        self.closed = False

    def read(self) -> Frame | None:
        if self.closed:
            return None
        if self.i >= len(self.frames):
            if not self.loop:
                return None
            self.i = 0
        if self.fps:
            time.sleep(1.0 / self.fps)
        f = Frame(self.frames[self.i], time.time(), self.i)
        self.i += 1
        return f

    def close(self) -> None:
        self.closed = True


# new positive, update -> negative, end.
SEQUENCE = [frame_for(False)] * 2 + [frame_for(True, POS)] * 8 + [frame_for(True, NEG)] * 10 + [frame_for(False)] * 6
EXPECTED = [("new", "positive", None), ("update", "negative", "positive"), ("end", "negative", None)]


def cycling_frames(period: int = 4) -> list[np.ndarray]:
    """A loop that produces many events: a face appears, changes label, leaves."""
    return ([frame_for(True, POS)] * period + [frame_for(True, NEG)] * period + [frame_for(True, NEU)] * period
            + [frame_for(False)] * period)
