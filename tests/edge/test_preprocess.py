"""The one crop/preprocess implementation."""

from __future__ import annotations

import numpy as np

from edge.preprocess import PreprocessSpec, crop_face, normalize, prepare_cropped


def frame_with_square(size=(480, 640), box=(300, 200, 100, 100)) -> np.ndarray:
    f = np.zeros(size + (3,), np.uint8)
    x, y, w, h = box
    f[y : y + h, x : x + w] = (255, 255, 255)
    return f


def test_crop_without_margin_fills_output_with_the_box() -> None:
    spec = PreprocessSpec(input_size=48, margin=0.0)
    c = crop_face(frame_with_square(), (300, 200, 100, 100), spec)
    assert c.shape == (48, 48) and c.dtype == np.uint8
    assert c[2:-2, 2:-2].min() > 200


def test_margin_shows_border_around_face() -> None:
    spec = PreprocessSpec(input_size=48, margin=1.0)
    c = crop_face(frame_with_square(), (300, 200, 100, 100), spec)
    assert c[24, 24] > 200 and c[2, 2] < 50 and c[24, 2] < 50


def test_rgb_order_and_channels() -> None:
    f = np.zeros((100, 100, 3), np.uint8)
    f[..., 2] = 200  # red in BGR
    c = crop_face(f, (20, 20, 50, 50), PreprocessSpec(input_size=32, color="rgb"))
    assert c.shape == (32, 32, 3) and c[..., 0].mean() > 190 and c[..., 2].mean() < 10


def test_alignment_levels_a_tilted_eye_line() -> None:
    f = np.zeros((200, 200, 3), np.uint8)
    f[95:105, :] = 255  # a horizontal bar through the centre
    spec = PreprocessSpec(input_size=64, align=True)
    level = crop_face(f, (50, 50, 100, 100), spec, eyes=((70, 100), (130, 100)))
    tilted = crop_face(f, (50, 50, 100, 100), spec, eyes=((70, 85), (130, 115)))
    # With a level eye line the bar stays horizontal; with a tilted one the crop is rotated.
    assert level[32, 5] > 200 and level[32, 58] > 200
    assert not (tilted[32, 5] > 200 and tilted[32, 58] > 200)


def test_faces_at_the_frame_edge_keep_their_scale() -> None:
    spec = PreprocessSpec(input_size=48)
    c = crop_face(frame_with_square(box=(0, 0, 100, 100)), (-20, -20, 100, 100), spec)
    assert c.shape == (48, 48)


def test_big_faces_are_smoothed_not_aliased() -> None:
    f = np.zeros((1000, 1000, 3), np.uint8)
    f[:, ::2] = 255  # 1-pixel stripes average to grey when shrunk properly
    c = crop_face(f, (100, 100, 800, 800), PreprocessSpec(input_size=48))
    assert 100 < c.mean() < 155 and c.std() < 30


def test_normalisation_modes() -> None:
    crops = np.array([[[0, 255]]], np.uint8)
    assert normalize(crops, PreprocessSpec(scale="zero_one")).reshape(-1).tolist() == [0.0, 1.0]
    assert normalize(crops, PreprocessSpec(scale="minus1to1")).reshape(-1).tolist() == [-1.0, 1.0]
    assert normalize(crops, PreprocessSpec(scale="raw255")).shape == (1, 1, 2, 1)


def test_prepare_cropped_resizes_and_enhances() -> None:
    img = (np.arange(64 * 64) % 64).reshape(64, 64).astype(np.uint8)
    out = prepare_cropped(img, PreprocessSpec(input_size=48, enhance="clahe", unsharp=0.5))
    assert out.shape == (48, 48) and out.dtype == np.uint8
