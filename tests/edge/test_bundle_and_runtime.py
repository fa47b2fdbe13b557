"""Bundle manifest validation, hash checks, archives; runtime (de)quantisation."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import load_bundle, parse_manifest
from edge.errors import BundleError
from edge.runtime import TensorInfo, dequantize, quantize


def test_quantize_roundtrip_and_clipping() -> None:
    info = TensorInfo(0, "x", (1, 4), np.dtype(np.int8), scale=1 / 255.0, zero_point=-128)
    x = np.array([0.0, 0.6, 1.0, 2.0], np.float32)
    q = quantize(x, info)
    assert q.dtype == np.int8 and q.tolist() == [-128, 25, 127, 127]
    assert np.allclose(dequantize(q, info)[:3], x[:3], atol=1 / 255)
    u = TensorInfo(0, "y", (1,), np.dtype(np.uint8), scale=0.5, zero_point=10)
    assert quantize(np.array([-10.0]), u).tolist() == [0]


def test_manifest_errors_name_the_field() -> None:
    with pytest.raises(BundleError, match="not valid JSON"):
        parse_manifest(b"{oops")
    with pytest.raises(BundleError, match="unknown bundle schema_version None"):
        parse_manifest(b"{}")
    with pytest.raises(BundleError, match="field classifier"):
        parse_manifest(json.dumps({"schema_version": 1, "id": "x", "created": "now"}))


def test_valence_map_must_cover_classes(tiny_bundle: Path) -> None:
    m = json.loads((tiny_bundle / "bundle.json").read_text())
    del m["valence"]["happy"]
    with pytest.raises(BundleError, match="valence map has no entry for classes \\['happy'\\]"):
        parse_manifest(json.dumps(m))


def test_missing_classifier_file(tiny_bundle: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    (b / "classifier.tflite").unlink()
    with pytest.raises(BundleError, match="classifier file missing"):
        load_bundle(b)


def test_truncated_detector_is_skipped_for_a_verified_copy(tiny_bundle: Path, tmp_path: Path) -> None:
    """A bad detector.tflite in the bundle is never used; the installed package copy (same sha256) is."""
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    (b / "detector.tflite").write_bytes(b"truncated")
    bundle = load_bundle(b)
    assert bundle.detector_path is not None and bundle.detector_path != b / "detector.tflite"


def test_archive_bundle_loads(tiny_bundle: Path, tmp_path: Path) -> None:
    arc = tmp_path / "bundle.tar.gz"
    with tarfile.open(arc, "w:gz") as t:
        t.add(tiny_bundle, arcname="tiny")
    bundle = load_bundle(arc)
    assert bundle.id == "tiny-test" and bundle.classifier_path.is_file()


def test_corrupt_archive(tmp_path: Path) -> None:
    arc = tmp_path / "bundle.tar.gz"
    arc.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(BundleError, match="cannot unpack bundle archive"):
        load_bundle(arc)


def test_classifier_outputs_are_distributions(tiny_bundle: Path) -> None:
    from edge.classifier import Classifier

    with Classifier(load_bundle(tiny_bundle)) as clf:
        crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
        probs = clf.probabilities(crops)
        assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1, atol=1e-4)
        preds = clf.predict(crops)
        assert all(abs(sum(p.valence.values()) - 1) < 1e-3 for p in preds)
