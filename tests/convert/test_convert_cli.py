"""End to end: a model trained elsewhere -> int8 bundle -> eval, and one clear line for bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("EMOTION_EDGE_DATA", ROOT.parent / "shared" / "data"))
VAL = str(DATA / "fer2013" / "val")


def test_legacy_h5_converts_to_a_gated_int8_bundle_that_eval_agrees_with(
    legacy_h5: Path, fer_calib: Path, tmp_path: Path, cli, capsys  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "bundle"
    rc = cli(["convert", str(legacy_h5), "--labels", "fer7", "--calib", str(fer_calib), "--eval", VAL,
              "--eval-limit", "280", "--scale", "minus1to1", "--input-size", "48", "--color", "gray",
              "--max-drop", "3", "--out", str(out), "--latency-runs", "5", "--no-detector", "--save-artifacts"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    from edge.bundle import load_bundle

    b = load_bundle(out)
    m = b.manifest
    assert m.classes[3] == "happy" and m.preprocess.scale == "minus1to1" and m.output == "probabilities"
    arts = m.metrics["artifacts"]
    assert set(arts) == {"float32", "dynamic", "int8"} and all(a["loads_on_litert"] for a in arts.values())
    assert arts["int8"]["bytes"] < 0.35 * arts["float32"]["bytes"]
    assert m.metrics["gate"]["passed"] is True
    assert m.calibration.temperature > 0 and 0 < m.calibration.abstain_threshold < 1
    assert m.calibration.ece_before is not None
    assert "\n| int8 | " in (out / "report.md").read_text() and (out / "report.html").is_file()
    assert (out / "confusion_int8_classes.png").is_file() and (out / "artifacts" / "dynamic.tflite").is_file()
    # eval on the same (class-balanced, seeded) subset gives the bundle's own 7-class figure:
    # argmax is unchanged by the temperature, and both go through the same crop path.
    rc = cli(["eval", str(out), VAL, "--limit", "280", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert res["scores"]["class_accuracy"] == arts["int8"]["scores"]["class_accuracy"]
    assert res["scores"]["n"] == 280


def test_gate_fails_with_nonzero_exit_unless_overridden(
    legacy_h5: Path, fer_calib: Path, tmp_path: Path, cli, capsys  # type: ignore[no-untyped-def]
) -> None:
    # A negative allowance makes any int8 model "too far" from float32: the gate must trip.
    args = ["convert", str(legacy_h5), "--labels", "fer7", "--calib", str(fer_calib), "--eval", VAL,
            "--eval-limit", "140", "--scale", "minus1to1", "--max-drop", "-50", "--latency-runs", "2",
            "--no-detector", "--out", str(tmp_path / "b")]
    assert cli(args) == 6
    err = capsys.readouterr().err
    assert "gate FAILED" in err and len(err.strip().splitlines()) == 1
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["metrics"]["gate"]["passed"] is False
    # --no-gate accepts; --calib may also name a source, built through the same crop path.
    args[args.index("--calib") + 1] = str(DATA / "fer2013" / "train")
    assert cli(args + ["--no-gate", "--calib-samples", "30"]) == 0
    m = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert m["provenance"]["calibration_set"]["count"] == 30


def _one_error_line(capsys) -> str:  # type: ignore[no-untyped-def]
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("emotion-edge")]
    assert len(err) == 1, err
    return err[0]


def test_corrupt_model_file_is_one_clear_line(fer_calib: Path, tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 this is not a keras archive")
    rc = cli(["convert", str(bad), "--labels", "fer7", "--calib", str(fer_calib), "--out", str(tmp_path / "o")])
    assert rc != 0
    assert "cannot load model" in _one_error_line(capsys)
    bad_h5 = tmp_path / "broken.h5"
    bad_h5.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    assert cli(["convert", str(bad_h5), "--labels", "fer7", "--calib", str(fer_calib), "--out", str(tmp_path / "o")]) != 0
    assert "cannot load model" in _one_error_line(capsys)


def test_model_trained_on_other_crops_is_refused_before_any_work(keras3_model: Path, fer_calib: Path,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path, cli, capsys) -> None:
    """``train`` records its crop spec next to the model; a calibration set (and so a bundle) that would prepare
    faces otherwise, here without eye-line alignment, stops convert with one line naming the field, and no bundle
    is written. A matching record passes the check."""
    import shutil

    from calibration.representative import load_calibration_set
    from convert.build import _check_training_spec

    model = Path(shutil.copy(keras3_model, tmp_path / "m.keras"))
    spec = load_calibration_set(fer_calib).spec
    record = {"recipe": {"name": "edgenet"}, "preprocess": spec.model_copy(update={"align": True}).model_dump(mode="json")}
    (tmp_path / "m.json").write_text(json.dumps(record))
    rc = cli(["convert", str(model), "--labels", "fer7", "--calib", str(fer_calib), "--out", str(tmp_path / "o")])
    assert rc != 0
    line = _one_error_line(capsys)
    assert "align: trained True, bundle False" in line and "calibrate" in line
    assert not (tmp_path / "o").exists()
    _check_training_spec(model, spec.model_copy(update={"align": True}))  # the same spec: no error


def test_calibration_source_for_a_trained_model_defaults_to_its_training_crops(keras3_model: Path,  # type: ignore[no-untyped-def]
                                                                               tmp_path: Path, cli, capsys) -> None:
    """``--calib SOURCE`` without ``--calib-spec`` crops as the ``train`` record says, so the bundle does too; an
    explicit spec that disagrees is refused."""
    import shutil

    from edge.preprocess import PreprocessSpec

    model = Path(shutil.copy(keras3_model, tmp_path / "m.keras"))
    trained = PreprocessSpec(input_size=48, color="gray", margin=0.15, shift_y=-0.1)
    (tmp_path / "m.json").write_text(json.dumps({"recipe": {"name": "tiny"},
                                                 "preprocess": trained.model_dump(mode="json")}))
    args = ["convert", str(model), "--labels", "fer7", "--calib", str(DATA / "fer2013" / "train"),
            "--calib-samples", "30", "--no-gate", "--latency-runs", "2", "--out", str(tmp_path / "b")]
    assert cli(args) == 0
    spec = json.loads((tmp_path / "b" / "bundle.json").read_text())["preprocess"]
    assert (spec["margin"], spec["shift_y"], spec["align"]) == (0.15, -0.1, False)
    capsys.readouterr()
    assert cli(args[:-1] + [str(tmp_path / "c"), "--calib-spec", "margin=0.2,shift_y=-0.1"]) != 0
    assert "margin: trained 0.15, bundle 0.2" in _one_error_line(capsys)


def test_label_preset_that_does_not_match_the_model(legacy_h5: Path, fer_calib: Path, tmp_path: Path, cli,  # type: ignore[no-untyped-def]
                                                    capsys) -> None:
    rc = cli(["convert", str(legacy_h5), "--labels", "smile2", "--calib", str(fer_calib), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "has 2 classes but" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_empty_calibration_source(tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty").mkdir()
    rc = cli(["calibrate", str(tmp_path / "empty"), "--for", "size=48,color=gray", "--out", str(tmp_path / "c.npz")])
    assert rc != 0
    assert "no images found" in _one_error_line(capsys)


def test_eval_folder_with_unknown_class_names(tmp_path: Path, cli, capsys, tiny_bundle: Path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    for cls in ("happy", "cats"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / cls / "x.png"), np.zeros((48, 48), np.uint8))
    rc = cli(["eval", str(tiny_bundle), str(tmp_path / "data")])
    assert rc == 2
    assert "unknown class names in the data: ['cats']" in _one_error_line(capsys)


def test_calibrate_command_writes_set_manifest_and_preview(fer_needed: None, tmp_path: Path, cli, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = cli(["calibrate", VAL, "--for", "size=40,color=gray,margin=0.1", "-n", "35", "--out", str(tmp_path / "c.npz")])
    assert rc == 0
    assert "35 faces (angry 5, disgust 5" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "c.json").read_text())
    assert manifest["spec"]["input_size"] == 40 and manifest["counts_per_class"]["happy"] == 5
    assert manifest["sources"][0]["kind"] == "class folders" and len(manifest["npz_sha256"]) == 64
    from calibration.representative import load_calibration_set

    cs = load_calibration_set(tmp_path / "c.npz")
    assert cs.crops.shape == (35, 40, 40) and cs.content_sha256() == manifest["content_sha256"]
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_photo_eval_data_goes_through_the_detector_and_gates_on_smiles(
    legacy_h5: Path, fer_calib: Path, genki_dir: Path, tmp_path: Path, cli, capsys  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "b"
    rc = cli(["convert", str(legacy_h5), "--labels", "fer7", "--calib", str(fer_calib), "--eval", str(genki_dir),
              "--eval-limit", "60", "--scale", "minus1to1", "--max-drop", "100", "--latency-runs", "2",
              "--no-detector", "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    m = json.loads((out / "bundle.json").read_text())["metrics"]
    s = m["artifacts"]["int8"]["scores"]
    assert s["n"] == 60 and s["smile_accuracy"] is not None and s["class_accuracy"] is None
    assert m["eval_data"]["missed_faces"] == s["missed"]
    assert "gate passed" in m["gate"]["message"]


def test_pruned_bundle_loads_on_litert_and_is_smaller_gzipped(
    legacy_h5: Path, fer_calib: Path, tmp_path: Path, cli, capsys  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "p"
    rc = cli(["convert", str(legacy_h5), "--labels", "fer7", "--calib", str(fer_calib), "--scale", "minus1to1",
              "--prune", "0.5", "--latency-runs", "2", "--no-detector", "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    from edge.bundle import load_bundle
    from edge.classifier import Classifier

    b = load_bundle(out)
    m = b.manifest.metrics
    assert m["deployed"] == "pruned_int8" and b.manifest.provenance["sparsity"] == pytest.approx(0.5, abs=0.01)
    arts = m["artifacts"]
    assert arts["pruned_int8"]["loads_on_litert"] and arts["pruned_int8"]["gzip_bytes"] < arts["int8"]["gzip_bytes"]
    if arts["pruned_int8"]["sparse_format"] is False:
        # The sparse encoding failed on XNNPACK: the fallback is said, and what it would have cost is reported.
        assert "dense encoding" in m["notes"][0] and m["pruning"]["sparse_format"]["bytes"] > 0
    with Classifier(b) as clf:
        probs = clf.probabilities(np.zeros((2, 48, 48), np.uint8))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-3)
