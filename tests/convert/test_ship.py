"""A bundle must prepare faces the way its model was trained (convert.ship, convert, the ship script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from convert.ship import preprocess_mismatch, training_provenance, training_record
from edge.bundle import load_bundle
from edge.pipeline import default_bundle_path
from edge.preprocess import PreprocessSpec

ROOT = Path(__file__).resolve().parents[2]


def test_preprocess_mismatch_names_each_field_that_differs():
    spec = PreprocessSpec(input_size=48, color="gray", margin=0.15, shift_y=-0.1)
    record = {"preprocess": spec.model_dump(mode="json")}
    assert preprocess_mismatch(record, spec) == []
    assert preprocess_mismatch(record, spec.model_copy(update={"align": True, "margin": 0.2})) == [
        "margin: trained 0.15, bundle 0.2", "align: trained False, bundle True"]
    assert preprocess_mismatch(record, spec.model_copy(update={"enhance": "clahe"})) == [
        "enhance: trained 'none', bundle 'clahe'"]
    older = {k: v for k, v in record["preprocess"].items() if k != "unsharp"}  # recorded before a field existed
    assert preprocess_mismatch({"preprocess": older}, spec) == []
    assert preprocess_mismatch({}, spec) == []  # a record without a spec is not checked
    assert training_provenance(record)["preprocess"] == record["preprocess"]  # kept in bundle.json


def test_training_record_is_read_only_from_a_train_run(tmp_path):
    model = tmp_path / "m.keras"
    assert training_record(model) is None  # no .json
    (tmp_path / "m.json").write_text("{not json")
    assert training_record(model) is None
    (tmp_path / "m.json").write_text(json.dumps({"labels": ["a", "b"]}))  # some other file of that name
    assert training_record(model) is None
    rec = {"recipe": {"name": "edgenet"}, "preprocess": PreprocessSpec().model_dump(mode="json")}
    (tmp_path / "m.json").write_text(json.dumps(rec))
    assert training_record(model) == rec


def test_ship_script_refuses_a_bundle_that_crops_unlike_training(tmp_path):
    """A training run with aligned photo crops and a bundle converted from an unaligned calibration set: the
    script stops before measuring anything and says how to fix it; the bundle is left as it was."""
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    before = (bundle / "bundle.json").read_bytes()
    spec = load_bundle(bundle, require_detector=False).manifest.preprocess
    (tmp_path / "model.json").write_text(json.dumps(
        {"preprocess": spec.model_copy(update={"align": not spec.align}).model_dump(mode="json")}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_default_model.py"), str(tmp_path / "model.keras"),
                          str(bundle), "--data", str(tmp_path / "no-data"), "--skip-quantize"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert f"align: trained {not spec.align}, bundle {spec.align}" in out.stderr
    assert "calibrate --for" in out.stderr
    assert (bundle / "bundle.json").read_bytes() == before
