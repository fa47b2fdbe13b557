"""GENKI training crops (convert.datasets.load_genki) against the crops the device path makes of the same photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convert.datasets import _read, load_genki, read_genki_labels
from edge.bundle import load_bundle
from edge.errors import ConfigError
from edge.pipeline import Pipeline, PipelineOptions, default_bundle_path


def _device_crops(root: Path, options: PipelineOptions) -> list[np.ndarray | None]:
    with Pipeline.from_bundle(default_bundle_path(), options) as pipe:
        out = []
        for f, _ in read_genki_labels(root):
            img = _read(root / "files" / f, gray=False)
            dets = pipe.detector.detect(img)
            out.append(pipe._crops(img, dets[:1], {})[0] if dets else None)
    return out


def test_photo_setting_crops_genki_as_the_heldout_figure_does(few_genki: Path) -> None:
    """``detector="photo"`` gives the crops the held-out GENKI figure classifies (score 0.6, zoom on a miss);
    the default ``"video"`` finds faces as the daemon does (score 0.5), and BlazeFace's box blending at the lower
    threshold frames most of them a little differently."""
    spec = load_bundle(default_bundle_path(), require_detector=False).manifest.preprocess
    photo = load_genki(few_genki, spec, detector="photo", use_cache=False)
    video = load_genki(few_genki, spec, use_cache=False)
    heldout_way = _device_crops(few_genki, PipelineOptions(score_threshold=0.6, zoom_on_miss=True))
    # Training keeps faces of any size (the daemon drops those under 20 px; GENKI has none so small).
    video_way = _device_crops(few_genki, PipelineOptions(score_threshold=0.5, min_face_px=0.0))
    assert photo.found.sum() >= 38
    for got, want in ((photo, heldout_way), (video, video_way)):
        assert [c is not None for c in want] == list(got.found)
        assert all(np.array_equal(g, w) for g, w, k in zip(got.x, want, got.found) if k)
    differ = sum(not np.array_equal(p, v) for p, v, k in zip(photo.x, video.x, photo.found & video.found) if k)
    assert differ > 10


def test_unknown_genki_detector_setting_is_refused(few_genki: Path) -> None:
    spec = load_bundle(default_bundle_path(), require_detector=False).manifest.preprocess
    with pytest.raises(ConfigError, match="choose one of video, photo"):
        load_genki(few_genki, spec, detector="zoom", use_cache=False)
