"""Samples -> uint8 face crops through the device's own path.

Photos and video frames: ``FaceDetector.detect`` (same options as ``edge.pipeline``)
then ``crop_face(frame, det.box, spec, det.eyes)``, exactly what ``Pipeline._crops``
does. Pre-cropped faces: ``prepare_cropped``. So int8 ranges, confidence
calibration and evaluation all see what the device feeds the classifier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.assets import find_blazeface
from edge.detector import Detection, DetectorOptions, FaceDetector
from edge.pipeline import PipelineOptions
from edge.preprocess import PreprocessSpec, crop_face, prepare_cropped

from .sources import Sample


def device_detector(model_path: Path | None = None, options: PipelineOptions | None = None) -> FaceDetector:
    """A ``FaceDetector`` configured as ``Pipeline.from_bundle`` configures it."""
    o = options or PipelineOptions()
    return FaceDetector(
        DetectorOptions(
            model_path=model_path or find_blazeface(),
            score_threshold=o.score_threshold,
            min_face_px=o.min_face_px,
            num_threads=o.num_threads,
        )
    )


def detections(frame: np.ndarray, detector: FaceDetector, max_faces: int | None = None) -> list[Detection]:
    """Faces as the pipeline keeps them: best score first, at most ``PipelineOptions.max_faces``."""
    return detector.detect(frame)[: max_faces or PipelineOptions().max_faces]


def sample_crops(sample: Sample, spec: PreprocessSpec, detector: FaceDetector | None,
                 max_faces: int = 1) -> list[np.ndarray]:
    """uint8 crops for one sample: [] when the detector finds no face in a photo."""
    img = sample.load()
    if sample.cropped:
        return [prepare_cropped(img, spec)]
    if detector is None:
        raise ValueError("photos need a detector")
    return [crop_face(img, d.box, spec, d.eyes) for d in detections(img, detector)[:max_faces]]
