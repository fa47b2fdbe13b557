"""The one face-crop and preprocessing implementation.

Training (convert), calibration and the device all call these functions, so what
the int8 ranges are fitted on is exactly what the device feeds the classifier.

Steps: square crop around the detector box with a margin -> optional rotation so
the eye line is level -> resize -> gray or RGB -> optional enhancement
(histogram equalisation, CLAHE, unsharp mask) -> normalisation.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Color = Literal["gray", "rgb"]
Scale = Literal["zero_one", "minus1to1", "raw255"]
Enhance = Literal["none", "hist", "clahe"]


class PreprocessSpec(BaseModel):
    """What the classifier expects; stored in ``bundle.json`` under ``preprocess``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: int = Field(48, ge=8, le=512, description="square input side in pixels")
    color: Color = Field("gray", description="gray (1 channel) or rgb (3 channels, RGB order)")
    scale: Scale = Field(
        "zero_one", description="pixel normalisation: zero_one = x/255, minus1to1 = x/127.5-1, raw255 = x"
    )
    margin: float = Field(
        0.0, ge=-0.4, le=1.0, description="extra border around the detector box, as a fraction of its side"
    )
    shift_y: float = Field(
        0.0, ge=-0.5, le=0.5, description="move the crop centre down (+) or up (-), fraction of the side"
    )
    align: bool = Field(False, description="rotate so the eye line is level (BlazeFace eye keypoints)")
    enhance: Enhance = Field("none", description="optional contrast enhancement on the gray/RGB crop")
    unsharp: float = Field(0.0, ge=0.0, le=3.0, description="unsharp-mask amount; 0 = off")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def differences(self, other: PreprocessSpec) -> list[tuple[str, Any, Any]]:
        """``(field, self's value, other's value)`` for each field that differs, in declaration order.

        A classifier sees faces the way its spec crops them: two specs that differ
        anywhere (crop geometry, alignment, enhancement, scaling) feed it other inputs.
        """
        return [(k, getattr(self, k), getattr(other, k)) for k in type(self).model_fields
                if getattr(self, k) != getattr(other, k)]


def square_box(
    box: tuple[float, float, float, float], spec: PreprocessSpec
) -> tuple[float, float, float]:
    """Centre and side (pixels) of the square crop for detector box ``(x, y, w, h)`` in pixels."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + spec.margin)
    cx = x + w / 2.0
    cy = y + h / 2.0 + spec.shift_y * side
    return cx, cy, side


def crop_face(
    frame_bgr: np.ndarray,
    box: tuple[float, float, float, float],
    spec: PreprocessSpec,
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> np.ndarray:
    """Cut the face out of a BGR (or gray) frame as a uint8 ``size x size x C`` image.

    ``box`` is ``(x, y, w, h)`` in pixels; ``eyes`` is ((right_x, right_y), (left_x, left_y))
    in pixels, used when ``spec.align``. Pixels outside the frame are replicated from
    the border, so faces at the edge keep their scale.
    """
    cx, cy, side = square_box(box, spec)
    size = spec.input_size
    angle = 0.0
    if spec.align and eyes is not None:
        (rx, ry), (lx, ly) = eyes
        # BlazeFace's "right eye" is the subject's right, on the image's left.
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    s = size / max(side, 1e-6)
    # One affine warp does crop + rotate + resize: map crop centre to output centre.
    m = cv2.getRotationMatrix2D((cx, cy), angle, s)
    m[0, 2] += size / 2.0 - cx
    m[1, 2] += size / 2.0 - cy
    interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
    if s < 0.5:
        interp = cv2.INTER_LINEAR
    if _prescale_factor(s) > 1:
        # Pre-shrink big faces so INTER_AREA-like smoothing happens before the warp.
        img, m = _prescale(_to_color(frame_bgr, spec), m, s)
        out = cv2.warpAffine(img, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    else:
        out = _warp_region(frame_bgr, m, size, interp, spec)
    return enhance(out, spec)


def _to_color(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    code = _color_code(img, spec)
    return img if code is None else cv2.cvtColor(img, code)


def _warp_region(frame: np.ndarray, m: np.ndarray, size: int, interp: int, spec: PreprocessSpec) -> np.ndarray:
    """``warpAffine`` of the colour-converted frame, converting only the pixels the warp reads.

    Converting the whole 640x480 frame per face cost more than the warp itself.
    The converted pixels go to their own place in a frame-sized scratch buffer and
    the warp runs with the unchanged matrix, so the crop is bit-identical to
    converting everything (a warp on a shifted sub-image is not: OpenCV's
    float32 coordinates round differently). The region is the crop's footprint
    plus the interpolation taps, clipped to the frame, so border replication
    still reads the frame's own edge pixels.
    """
    code = _color_code(frame, spec)
    if code is None:
        return cv2.warpAffine(frame, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    h, w = frame.shape[:2]
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0.0, 0.0, 1.0], [size, 0.0, 1.0], [0.0, size, 1.0], [size, size, 1.0]]) @ inv.T
    lo = np.floor(corners.min(axis=0)) - 2
    hi = np.ceil(corners.max(axis=0)) + 3
    x0, x1 = min(max(int(lo[0]), 0), w - 1), min(max(int(hi[0]), 1), w)
    y0, y1 = min(max(int(lo[1]), 0), h - 1), min(max(int(hi[1]), 1), h)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    buf = _scratch((h, w) if spec.color == "gray" else (h, w, 3), frame.dtype)
    buf[y0:y1, x0:x1] = cv2.cvtColor(frame[y0:y1, x0:x1], code)
    return cv2.warpAffine(buf, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def _color_code(img: np.ndarray, spec: PreprocessSpec) -> int | None:
    if spec.color == "gray":
        return cv2.COLOR_BGR2GRAY if img.ndim == 3 else None
    return cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB


_scratch_local = threading.local()


def _scratch(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-thread buffer of ``shape``, reused across calls (its contents are stale)."""
    buf = getattr(_scratch_local, "buf", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = _scratch_local.buf = np.empty(shape, dtype)
    return buf


def _prescale_factor(s: float) -> int:
    return max(1, int(1.0 / (2.0 * s))) if s < 0.5 else 1


def _prescale(img: np.ndarray, m: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    f = _prescale_factor(s)
    if f <= 1:
        return img, m
    small = cv2.resize(img, (img.shape[1] // f, img.shape[0] // f), interpolation=cv2.INTER_AREA)
    m2 = m.copy()
    m2[:, :2] *= f
    # Compensate the half-pixel shift of area downsampling.
    m2[:, 2] += m[:, :2] @ np.array([(f - 1) / 2.0, (f - 1) / 2.0])
    return small, m2


def enhance(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Optional contrast enhancement and unsharp mask on a uint8 crop (off by default)."""
    if spec.enhance != "none":
        if img.ndim == 2:
            img = _equalize(img, spec.enhance)
        else:
            ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
            ycc[..., 0] = _equalize(ycc[..., 0], spec.enhance)
            img = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    if spec.unsharp > 0:
        blur = cv2.GaussianBlur(img, (0, 0), 1.0)
        img = cv2.addWeighted(img, 1.0 + spec.unsharp, blur, -spec.unsharp, 0)
    return img


def _equalize(gray: np.ndarray, how: str) -> np.ndarray:
    if how == "hist":
        return cv2.equalizeHist(gray)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(gray)


def normalize(crops: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 crops ``(N, S, S[, C])`` -> float32 model input ``(N, S, S, C)``."""
    x = crops.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if spec.scale == "zero_one":
        x *= 1.0 / 255.0
    elif spec.scale == "minus1to1":
        x = x * (1.0 / 127.5) - 1.0
    return x


def prepare_cropped(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """An already-cropped face (e.g. a FER2013 48x48 image) -> uint8 crop for ``spec``.

    Used for datasets that ship face crops; photos go through ``crop_face``.
    """
    img = image
    if spec.color == "gray" and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif spec.color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
    if img.shape[0] != spec.input_size or img.shape[1] != spec.input_size:
        interp = cv2.INTER_AREA if img.shape[0] > spec.input_size else cv2.INTER_LINEAR
        img = cv2.resize(img, (spec.input_size, spec.input_size), interpolation=interp)
    return enhance(img, spec)
