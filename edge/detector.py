"""BlazeFace short-range face detector, decoded in NumPy.

Model: ``face_detection_short_range.tflite`` (input ``[1,128,128,3]`` float RGB in
[-1, 1]; outputs ``regressors [1,896,16]`` and ``classificators [1,896,1]``).
The frame is letterboxed (aspect kept, centred, black padding), the 896 SSD
anchors decode boxes and six keypoints, scores are ``sigmoid(clip(raw))`` and
overlapping boxes are blended with MediaPipe's weighted NMS. These steps match
MediaPipe Tasks' ``FaceDetector`` on the same file (tests/edge/test_detector.py).

Two optional steps go beyond MediaPipe: a box lying mostly inside a better one
is dropped as a fragment of the same face, and ``zoom_on_miss`` re-runs the
model on overlapping tiles when the whole frame gives nothing, for faces too
small to survive the 128-pixel letterbox (a person standing across the room).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import BundleError
from .runtime import TFLiteModel

INPUT_SIZE = 128
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


def ssd_anchors(
    input_size: int = INPUT_SIZE,
    strides: tuple[int, ...] = (8, 16, 16, 16),
    offset: float = 0.5,
) -> np.ndarray:
    """Anchor centres ``(896, 2)`` in normalised coordinates (fixed size 1x1).

    Consecutive layers with the same stride share one feature map, each layer
    adding 2 anchors per cell: 16x16x2 + 8x8x6 = 896 for short range.
    """
    out = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        n = 0
        while i < len(strides) and strides[i] == stride:
            n += 2
            i += 1
        fm = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        centres = np.stack([(xs + offset) / fm, (ys + offset) / fm], axis=-1).reshape(-1, 2)
        out.append(np.repeat(centres, n, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """One face: pixel box ``(x, y, w, h)``, score and 6 keypoints ``(6, 2)`` in pixels."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False, compare=False)

    @property
    def eyes(self) -> tuple[tuple[float, float], tuple[float, float]]:
        r, l = self.keypoints[0], self.keypoints[1]
        return (float(r[0]), float(r[1])), (float(l[0]), float(l[1]))

    def normalized_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Box as fractions of the frame, clipped to [0, 1]."""
        x, y, w, h = self.box
        x0, y0 = max(0.0, x / width), max(0.0, y / height)
        x1, y1 = min(1.0, (x + w) / width), min(1.0, (y + h) / height)
        return (round(x0, 4), round(y0, 4), round(max(0.0, x1 - x0), 4), round(max(0.0, y1 - y0), 4))


@dataclass(frozen=True)
class DetectorOptions:
    """Options for ``FaceDetector``.

    ``max_inside``: drop a face whose box lies more than this fraction inside a
    higher-scoring face (weighted NMS only merges boxes of similar size, so a
    half-face fragment inside a whole face would otherwise survive); 1 disables.
    ``zoom_on_miss``: when the frame gives no face, look again on overlapping
    square tiles of ``zoom_tile`` times the long side. It costs about 6 more
    model runs on a 4:3 frame without a face, so it suits still images more
    than a live camera whose scenes are empty most of the time.
    """

    model_path: Path
    score_threshold: float = 0.5
    nms_iou: float = 0.3
    min_face_px: float = 20.0
    max_faces: int = 30
    num_threads: int = 1
    max_inside: float = 0.5
    zoom_on_miss: bool = False
    zoom_tile: float = 0.5


def still_image_options(model_path: Path, **overrides: object) -> DetectorOptions:
    """Options for photos, where each image is seen once and a miss is final:
    zoom on a miss, and a score threshold of 0.6 (on GENKI-4K, chosen on one half
    of the files and confirmed on the other; ``scripts/genki_detect_rate.py``)."""
    from dataclasses import replace

    return replace(DetectorOptions(model_path, score_threshold=0.6, zoom_on_miss=True), **overrides)


def letterbox(frame_bgr: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, float, float]:
    """Resize keeping aspect into ``size x size`` RGB uint8, centred with black padding.

    Returns ``(image, scale, pad_x, pad_y)``: a frame pixel ``p`` maps to ``p * scale + pad``.
    """
    h, w = frame_bgr.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if small.ndim == 2 or small.shape[2] == 1:
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
    elif small.shape[2] == 4:
        small = cv2.cvtColor(small, cv2.COLOR_BGRA2RGB)
    else:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    out = np.zeros((size, size, 3), np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = small
    return out, scale, float(px), float(py)


def decode(
    regressors: np.ndarray,
    logits: np.ndarray,
    anchors: np.ndarray,
    score_threshold: float = 0.5,
    input_size: int = INPUT_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs -> ``(boxes (N,4) x0,y0,x1,y1, keypoints (N,6,2), scores (N,))`` in input pixels.

    Only anchors above the threshold are decoded.
    """
    raw = np.clip(logits.reshape(-1), -100.0, 100.0)
    # sigmoid(raw) >= t  <=>  raw >= logit(t): filter before exponentiating.
    t = min(max(score_threshold, 1e-6), 1 - 1e-6)
    keep = np.nonzero(raw >= np.log(t / (1 - t)))[0]
    if keep.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros((0,), np.float32)
    reg = regressors.reshape(-1, 16)[keep]
    anc = anchors[keep] * input_size
    scores = 1.0 / (1.0 + np.exp(-raw[keep]))
    cx = reg[:, 0] + anc[:, 0]
    cy = reg[:, 1] + anc[:, 1]
    w, h = reg[:, 2], reg[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    return boxes.astype(np.float32), kps.astype(np.float32), scores.astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """``(N, N)`` IoU matrix; row ``i`` equals ``_iou(boxes[i], boxes)``."""
    b = boxes[:, None, :]
    ix0 = np.maximum(b[..., 0], boxes[:, 0])
    iy0 = np.maximum(b[..., 1], boxes[:, 1])
    ix1 = np.minimum(b[..., 2], boxes[:, 2])
    iy1 = np.minimum(b[..., 3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(areas[:, None] + areas - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = 0.3, max_out: int = 100
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster (IoU > ``iou`` with its best box) is
    replaced by the score-weighted mean of its boxes and keypoints, keeping the best score."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    out = []
    remaining = np.arange(len(scores))
    # All pairwise IoUs at once (the same arithmetic as _iou, row by row): a few
    # dozen candidates make per-cluster NumPy calls cost more than the maths.
    pairwise = _pairwise_iou(boxes) if len(scores) > 1 else np.ones((len(scores), len(scores)), np.float32)
    while remaining.size and len(out) < max_out:
        top = remaining[0]
        ious = pairwise[top, remaining]
        cluster = remaining[ious > iou]
        cluster = cluster if cluster.size else remaining[:1]
        wts = scores[cluster][:, None]
        box = (boxes[cluster] * wts).sum(0) / wts.sum()
        kp = (keypoints[cluster] * wts[:, :, None]).sum(0) / wts.sum()
        out.append((box, kp, float(scores[top])))
        remaining = remaining[ious <= iou]
        if top in remaining:  # degenerate zero-area box: make progress regardless
            remaining = remaining[remaining != top]
    return out


def drop_inside(
    faces: list[tuple[np.ndarray, np.ndarray, float]], max_inside: float = 0.5
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Drop faces (best first, boxes x0,y0,x1,y1) lying more than ``max_inside``
    of their own area inside a better face kept before them."""
    if max_inside >= 1.0 or len(faces) < 2:
        return faces
    kept: list[tuple[np.ndarray, np.ndarray, float]] = []
    for box, kp, score in faces:
        area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
        inside = 0.0
        for other, _, _ in kept:
            iw = min(box[2], other[2]) - max(box[0], other[0])
            ih = min(box[3], other[3]) - max(box[1], other[1])
            if iw > 0 and ih > 0:
                inside = max(inside, iw * ih / area)
        if inside <= max_inside:
            kept.append((box, kp, score))
    return kept


def zoom_tiles(height: int, width: int, tile: float = 0.5, overlap: float = 1 / 3) -> list[tuple[int, int, int]]:
    """Overlapping square tiles ``(x, y, side)`` covering a frame, side = ``tile`` x long side.

    A 4:3 frame gives 3 x 2 tiles; each is letterboxed on its own, so a face
    gains about 1 / ``tile`` in resolution at the model input.
    """
    side = max(1, round(max(height, width) * tile))
    step = max(1.0, side * (1.0 - overlap))

    def starts(n: int) -> list[int]:
        if n <= side:
            return [0]
        k = math.ceil((n - side) / step) + 1
        return [round(v) for v in np.linspace(0, n - side, k)]

    return [(x, y, side) for y in starts(height) for x in starts(width)]


class FaceDetector:
    """BlazeFace short range on a TFLite runtime. Use ``create_from_options``."""

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        self._model = TFLiteModel(options.model_path, num_threads=options.num_threads)
        self._anchors = ssd_anchors()
        # Output order differs between exports; pick by last dimension.
        dims = [o.shape[-1] for o in self._model.outputs]
        if sorted(dims) != [1, 16] or self._anchors.shape[0] != self._model.outputs[0].shape[-2]:
            self._model.close()
            raise BundleError(
                f"{options.model_path} is not a BlazeFace short-range model (outputs {dims}, "
                f"expected [896,16] boxes and [896,1] scores); use face_detection_short_range.tflite"
            )
        self._reg_idx = dims.index(16)
        self._cls_idx = dims.index(1)
        self._buf = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    @classmethod
    def create_from_options(cls, options: DetectorOptions) -> "FaceDetector":
        return cls(options)

    def detect(self, frame_bgr: np.ndarray, timings: dict[str, float] | None = None) -> list[Detection]:
        """Faces in a BGR (or gray) frame, best score first, in frame pixels."""
        boxes, kps, scores = self._candidates(frame_bgr, timings)
        t0 = time.perf_counter()
        dets = self._select(boxes, kps, scores)
        if not dets and self.options.zoom_on_miss:
            found = [(boxes, kps, scores)]
            h, w = frame_bgr.shape[:2]
            for x, y, side in zoom_tiles(h, w, self.options.zoom_tile):
                b, k, s = self._candidates(frame_bgr[y : y + side, x : x + side], timings)
                found.append((b + np.array([x, y, x, y], np.float32), k + np.array([x, y], np.float32), s))
            dets = self._select(*(np.concatenate(parts) for parts in zip(*found)))
        if timings is not None:
            timings["decode"] = timings.get("decode", 0.0) + (time.perf_counter() - t0) * 1e3
        return dets

    def _candidates(
        self, image: np.ndarray, timings: dict[str, float] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One model run: boxes above the threshold, before NMS, in ``image`` pixels."""
        t0 = time.perf_counter()
        img, scale, px, py = letterbox(image)
        np.multiply(img, 1.0 / 127.5, out=self._buf[0], casting="unsafe")
        self._buf -= 1.0
        t1 = time.perf_counter()
        outs = self._model.run(self._buf)
        t2 = time.perf_counter()
        threshold = self.options.score_threshold
        boxes, kps, scores = decode(outs[self._reg_idx], outs[self._cls_idx], self._anchors, threshold)
        boxes = (boxes - np.array([px, py, px, py], np.float32)) / scale
        kps = (kps - np.array([px, py], np.float32)) / scale
        if timings is not None:
            timings["resize"] = timings.get("resize", 0.0) + (t1 - t0) * 1e3
            timings["detect"] = timings.get("detect", 0.0) + (t2 - t1) * 1e3
            timings["decode"] = timings.get("decode", 0.0) + (time.perf_counter() - t2) * 1e3
        return boxes, kps, scores

    def _select(self, boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray) -> list[Detection]:
        """Weighted NMS, fragment removal and minimum size, on boxes in frame pixels."""
        o = self.options
        faces = drop_inside(weighted_nms(boxes, kps, scores, o.nms_iou, o.max_faces), o.max_inside)
        dets = []
        for box, kp, score in faces:
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            if min(w, h) < o.min_face_px:
                continue
            dets.append(Detection((float(box[0]), float(box[1]), w, h), score, kp))
        return dets

    def decode_outputs(
        self, regressors: np.ndarray, logits: np.ndarray, scale: float, pad_x: float, pad_y: float
    ) -> list[Detection]:
        """Raw model outputs for a letterboxed frame -> detections in frame pixels."""
        boxes, kps, scores = decode(regressors, logits, self._anchors, self.options.score_threshold)
        boxes = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
        kps = (kps - np.array([pad_x, pad_y], np.float32)) / scale
        return self._select(boxes, kps, scores)

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
