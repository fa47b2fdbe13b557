"""The per-frame path, top to bottom.

frame -> BlazeFace (letterboxed 128x128) -> decode + weighted NMS -> track ->
crop each face -> int8 classifier -> temporal smoothing -> events.

The pipeline knows nothing about MQTT: it returns a ``FrameResult`` whose
``events`` the daemon hands to a publisher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import Bundle, load_bundle
from .classifier import Classifier, Prediction
from .detector import Detection, DetectorOptions, FaceDetector
from .preprocess import crop_face
from .tracking import Track, Tracker, TrackerOptions, TrackEvent

STAGES = ("resize", "detect", "decode", "track", "crop", "classify")


@dataclass(frozen=True)
class PipelineOptions:
    """Options for ``Pipeline``; the daemon's config maps onto these."""

    num_threads: int = 1
    score_threshold: float = 0.5
    min_face_px: float = 20.0
    max_faces: int = 10
    classify_every: int = 1
    zoom_on_miss: bool = False  # re-look on tiles when a frame has no face (photos; off for live cameras)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)


@dataclass(frozen=True)
class FaceResult:
    """One face in one frame: its track, boxes, and the smoothed and raw predictions."""

    track_id: int
    box: tuple[float, float, float, float]  # normalised x, y, w, h
    box_px: tuple[float, float, float, float]
    detection_score: float
    label: str
    score: float
    scores: dict[str, float]
    raw: Prediction | None


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline learned from one frame."""

    frame_time: float
    width: int
    height: int
    faces: list[FaceResult]
    events: list[TrackEvent]
    timings: dict[str, float]
    faces_skipped: int = 0


class Pipeline:
    """Detector + classifier + tracker for one camera. Not thread-safe."""

    def __init__(self, detector: FaceDetector, classifier: Classifier, options: PipelineOptions | None = None) -> None:
        self.options = options or PipelineOptions()
        self.detector = detector
        self.classifier = classifier
        topts = self.options.tracker
        if topts.abstain_threshold == 0.0 and classifier.abstain > 0:
            from dataclasses import replace

            topts = replace(topts, abstain_threshold=classifier.abstain)
        self.tracker = Tracker(topts)
        self.frame_index = 0

    @classmethod
    def from_bundle(cls, bundle: str | Path | Bundle | None = None, options: PipelineOptions | None = None) -> Pipeline:
        """Build from a bundle path (default: the bundle shipped with the package)."""
        options = options or PipelineOptions()
        if bundle is None and not (default_bundle_path() / "bundle.json").is_file():
            from .errors import BundleError

            raise BundleError(
                f"the default model bundle is not installed ({default_bundle_path()}); "
                "pass --bundle PATH, or reinstall emotion-edge"
            )
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle or default_bundle_path())
        if b.detector_path is None:
            from .errors import BundleError

            raise BundleError(f"bundle {b.root}: no face detector resolved (bundle.json has no detector entry)")
        det = FaceDetector(
            DetectorOptions(
                model_path=b.detector_path,
                score_threshold=options.score_threshold,
                min_face_px=options.min_face_px,
                num_threads=options.num_threads,
                zoom_on_miss=options.zoom_on_miss,
            )
        )
        return cls(det, Classifier(b, num_threads=options.num_threads), options)

    @property
    def bundle_id(self) -> str:
        return self.classifier.bundle_id

    def detect_and_classify(self, frame: np.ndarray, timings: dict[str, float] | None = None) -> list[tuple[Detection, Prediction]]:
        """Stateless: every face in one image with its (unsmoothed) prediction."""
        timings = {} if timings is None else timings
        dets = self.detector.detect(frame, timings)[: self.options.max_faces]
        crops = self._crops(frame, dets, timings)
        t0 = time.perf_counter()
        preds = self.classifier.predict(crops) if dets else []
        timings["classify"] = timings.get("classify", 0.0) + (time.perf_counter() - t0) * 1e3
        return list(zip(dets, preds))

    def _crops(self, frame: np.ndarray, dets: list[Detection], timings: dict[str, float]) -> np.ndarray:
        t0 = time.perf_counter()
        spec = self.classifier.spec
        crops = np.stack([crop_face(frame, d.box, spec, d.eyes) for d in dets]) if dets else np.zeros(
            (0, spec.input_size, spec.input_size), np.uint8
        )
        timings["crop"] = timings.get("crop", 0.0) + (time.perf_counter() - t0) * 1e3
        return crops

    def process(self, frame: np.ndarray, frame_time: float | None = None) -> FrameResult:
        """Run the full path on one frame and return faces, events and per-stage ms."""
        frame_time = time.time() if frame_time is None else frame_time
        timings: dict[str, float] = {}
        h, w = frame.shape[:2]
        if not h or not w:  # a driver hiccup: the daemon counts it as a frame error
            raise ValueError(f"empty frame ({w}x{h} pixels) from the camera")
        dets = self.detector.detect(frame, timings)
        skipped = max(0, len(dets) - self.options.max_faces)
        dets = dets[: self.options.max_faces]

        t0 = time.perf_counter()
        boxes = [d.normalized_box(w, h) for d in dets]
        tracks, events = self.tracker.match(boxes, frame_time)
        timings["track"] = (time.perf_counter() - t0) * 1e3

        # Classify new tracks always, others every k-th frame.
        k = max(1, self.options.classify_every)
        todo = [i for i, t in enumerate(tracks) if t.frames_classified == 0 or self.frame_index % k == 0]
        crops = self._crops(frame, [dets[i] for i in todo], timings)
        t0 = time.perf_counter()
        preds: dict[int, Prediction] = {}
        if todo:
            probs = self.classifier.probabilities(crops)
            val = self.classifier.valence_probabilities(probs)
            for j, i in enumerate(todo):
                preds[i] = self.classifier.to_prediction(probs[j])
                ev = self.tracker.observe(tracks[i], val[j], frame_time, preds[i].classes)
                if ev:
                    events.append(ev)
        timings["classify"] = (time.perf_counter() - t0) * 1e3
        faces = []
        for i, (d, t) in enumerate(zip(dets, tracks)):
            t.detection_score = d.score
            if i not in preds:
                ev = self.tracker.observe(t, None, frame_time)
                if ev:
                    events.append(ev)
            faces.append(_face_result(t, d, preds.get(i)))
        self.frame_index += 1
        return FrameResult(frame_time, w, h, faces, events, timings, skipped)

    def flush(self, frame_time: float | None = None) -> list[TrackEvent]:
        """End all open tracks (on shutdown or end of a clip)."""
        return self.tracker.flush(time.time() if frame_time is None else frame_time)

    def close(self) -> None:
        self.detector.close()
        self.classifier.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _face_result(t: Track, d: Detection, raw: Prediction | None) -> FaceResult:
    return FaceResult(
        track_id=t.id,
        box=t.box,
        box_px=tuple(round(v, 1) for v in d.box),  # type: ignore[arg-type]
        detection_score=round(d.score, 4),
        label=t.label,
        score=round(t.score, 4),
        scores=t.scores,
        raw=raw,
    )


def default_bundle_path() -> Path:
    """The bundle shipped inside the package (``edge/models/default``)."""
    return Path(__file__).resolve().parent / "models" / "default"
