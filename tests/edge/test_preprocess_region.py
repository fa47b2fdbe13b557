"""crop_face converts only the pixels its warp reads: the crop must equal the whole-frame computation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.preprocess import PreprocessSpec, _warp_region, crop_face


def whole_frame_warp(frame: np.ndarray, m: np.ndarray, size: int, interp: int, color: str) -> np.ndarray:
    if color == "gray" and frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    elif color == "rgb":
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB if frame.ndim == 2 else cv2.COLOR_BGR2RGB)
    return cv2.warpAffine(frame, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("color", ["gray", "rgb"])
@pytest.mark.parametrize("frame_shape", [(480, 640, 3), (240, 320)])
def test_region_warp_is_bit_identical_to_whole_frame(color: str, frame_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, frame_shape, dtype=np.uint8)
    h, w = frame_shape[:2]
    spec = PreprocessSpec(input_size=48, color=color)  # type: ignore[arg-type]
    for _ in range(300):
        # Crops anywhere, partly or wholly outside the frame, rotated, shrunk or enlarged.
        centre = (rng.uniform(-60, w + 60), rng.uniform(-60, h + 60))
        m = cv2.getRotationMatrix2D(centre, rng.uniform(-40, 40), rng.uniform(0.3, 3.0))
        m[:, 2] += 24 - np.array(centre)
        interp = int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_AREA]))
        got = _warp_region(frame, m, 48, interp, spec)
        want = whole_frame_warp(frame, m, 48, interp, color)
        np.testing.assert_array_equal(got, want)


def test_consecutive_crops_do_not_see_each_others_pixels() -> None:
    # The scratch buffer is reused; a crop must not pick up a previous frame's pixels.
    spec = PreprocessSpec(input_size=32, margin=0.2)
    white = np.full((480, 640, 3), 255, np.uint8)
    black = np.zeros((480, 640, 3), np.uint8)
    assert crop_face(white, (100, 100, 80, 80), spec).min() == 255
    assert crop_face(black, (90, 95, 100, 90), spec).max() == 0
    assert crop_face(white, (-30, 400, 120, 120), spec).min() == 255
