"""The representative set is cut by the device's own path: its crops equal what
``edge.pipeline.Pipeline`` feeds the classifier for the same photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.representative import build_calibration_set, load_calibration_set, save_calibration_set
from calibration.sources import read_image
from edge.errors import SourceError
from edge.pipeline import Pipeline


def test_calibration_crops_equal_pipeline_crops(genki_dir: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((genki_dir / "files").glob("*.jpg"))[:24]:
        (photos / p.name).symlink_to(p)  # links in a temp dir: no dataset image is copied
    with Pipeline.from_bundle(tiny_bundle) as pipe:
        spec = pipe.classifier.spec
        cs = build_calibration_set([photos], spec, n=24)
        assert len(cs) >= 20
        for crop, sid in zip(cs.crops, cs.ids):
            frame = read_image(Path(sid))
            dets = pipe.detector.detect(frame)
            expected = pipe._crops(frame, dets[:1], {})[0]
            np.testing.assert_array_equal(crop, expected)
    paths = save_calibration_set(cs, tmp_path / "calib.npz")
    back = load_calibration_set(paths["npz"])
    np.testing.assert_array_equal(back.crops, cs.crops)
    assert back.spec == spec
    assert back.manifest["count"] == len(cs) and paths["preview"].stat().st_size > 0


def test_photos_without_faces_are_an_empty_source(tmp_path: Path) -> None:
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"blank{i}.jpg"), np.full((240, 320, 3), 128, np.uint8))
    from edge.preprocess import PreprocessSpec

    with pytest.raises(SourceError, match="no faces found"):
        build_calibration_set([tmp_path], PreprocessSpec())


def test_video_frames_go_through_the_detector(genki_dir: Path, tmp_path: Path) -> None:
    import cv2

    from calibration.crops import device_detector, sample_crops
    from calibration.sources import open_samples
    from edge.preprocess import PreprocessSpec

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for p in sorted((genki_dir / "files").glob("*.jpg"))[:6]:
        frame = cv2.resize(read_image(p), (200, 210))
        canvas = np.zeros((240, 320, 3), np.uint8)
        canvas[15:225, 60:260] = frame
        for _ in range(5):
            w.write(canvas)
    w.release()
    info = open_samples(video, video_stride=5)
    assert info.kind == "video" and len(info.samples) == 6 and not info.samples[0].cropped
    with device_detector() as det:
        crops = [c for s in info.samples for c in sample_crops(s, PreprocessSpec(), det)]
    assert len(crops) >= 5 and crops[0].shape == (48, 48)
