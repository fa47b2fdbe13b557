"""Paired bundle comparison (convert/paired.py, scripts/compare_bundles.py): the test, the pairing, the script."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from support import DATA, ROOT, needs_data

from convert.paired import compare_on_data, compare_on_genki, mcnemar_exact, paired
from edge.pipeline import default_bundle_path

FER_VAL = DATA / "fer2013" / "val"


@pytest.mark.parametrize(("a", "b", "p"), [
    (0, 0, 1.0),          # no discordant items: no evidence either way
    (5, 5, 1.0),
    (0, 5, 2 / 32),       # 5 of 5 on one side: 2 * 0.5^5
    (9, 1, 22 / 1024),    # 2 * (C(10,0) + C(10,1)) / 2^10
    (1, 9, 22 / 1024),
])
def test_mcnemar_exact_small_counts(a: int, b: int, p: float) -> None:
    assert mcnemar_exact(a, b) == pytest.approx(p, abs=1e-15)


def test_mcnemar_exact_large_counts_match_binomial_test() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for a, b in ((199, 186), (226, 176), (1500, 1380)):
        assert mcnemar_exact(a, b) == pytest.approx(scipy_stats.binomtest(a, a + b).pvalue, rel=1e-9)
    assert mcnemar_exact(226, 176) < 0.05 < mcnemar_exact(199, 186)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 3)


def test_paired_counts_discordant_items() -> None:
    a = np.array([1, 1, 0, 0, 1, 1], bool)
    b = np.array([1, 0, 1, 0, 0, 1], bool)
    r = paired("x", a, b)
    assert (r.n, r.right_a, r.right_b, r.only_a, r.only_b) == (6, 4, 3, 2, 1)
    assert r.p_value == pytest.approx(mcnemar_exact(2, 1))
    assert "right only with A 2, only with B 1" in r.line()
    with pytest.raises(ValueError, match="different items"):
        paired("x", a, b[:5])


@needs_data
def test_compare_on_data_pairs_the_same_faces_as_eval_scores_them(tiny_bundle: Path) -> None:
    from convert.evaluate_bundle import evaluate_bundle

    default = default_bundle_path()
    seven, valence = compare_on_data(default, tiny_bundle, [str(FER_VAL)], limit=280)
    assert (seven.figure, valence.figure) == ("7-class", "valence (3-class)")
    for bundle, right in ((default, "right_a"), (tiny_bundle, "right_b")):
        s = evaluate_bundle(bundle, [str(FER_VAL)], limit=280)["scores"]
        assert getattr(seven, right) == round(s["class_accuracy"] * 2.8)
        assert getattr(valence, right) == round(s["valence_accuracy"] * 2.8)
    # A trained model against random weights: the split is far from even.
    assert seven.only_a > 3 * seven.only_b and seven.p_value < 1e-6
    same = compare_on_data(default, default, [str(FER_VAL)], limit=70)
    assert all(r.only_a == r.only_b == 0 and r.p_value == 1.0 for r in same)


@needs_data
def test_cli_compare_on_photos_counts_missed_faces_as_wrong(genki_dir: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    from edge.cli import main

    d = str(default_bundle_path())
    assert main(["compare", d, d, str(genki_dir / "labels.csv"), "--limit", "30", "--json"]) == 0
    (smile,) = json.loads(capsys.readouterr().out)  # GENKI labels carry smiles only
    assert smile["figure"] == "smile (positive vs not)" and smile["n"] == 30
    assert smile["only_a"] == smile["only_b"] == 0 and smile["p_value"] == 1.0
    assert main(["compare", d, d, str(FER_VAL), "--limit", "14"]) == 0
    assert "7-class" in capsys.readouterr().out
    assert main(["compare", d, str(genki_dir / "nope"), str(FER_VAL)]) != 0
    assert "bundle not found" in capsys.readouterr().err


@needs_data
def test_compare_on_genki_matches_the_reported_figure(genki_dir: Path) -> None:
    from convert.heldout import genki_scores

    r = compare_on_genki(default_bundle_path(), default_bundle_path(), genki_dir)
    s = genki_scores(default_bundle_path(), genki_dir)
    assert r.n == s["n"] and r.right_a == r.right_b == round(s["smile_accuracy"] * s["n"] / 100)
    assert r.only_a == r.only_b == 0


@needs_data
def test_compare_on_genki_training_split_is_the_photos_training_used(genki_dir: Path) -> None:
    from convert.heldout import genki_scores

    r = compare_on_genki(default_bundle_path(), default_bundle_path(), genki_dir, split="train")
    s = genki_scores(default_bundle_path(), genki_dir, split="train")
    held = genki_scores(default_bundle_path(), genki_dir)
    assert r.figure == "GENKI training split" and r.n == s["n"] == 3000 - held["n"]
    assert r.right_a == r.right_b == round(s["smile_accuracy"] * s["n"] / 100)
    with pytest.raises(ValueError, match="choose test or train"):
        compare_on_genki(default_bundle_path(), default_bundle_path(), genki_dir, split="val")


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("compare_bundles", ROOT / "scripts" / "compare_bundles.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["compare_bundles"] = mod
    spec.loader.exec_module(mod)
    return mod


@needs_data
def test_script_prints_one_line_per_figure(capsys: pytest.CaptureFixture[str]) -> None:
    d = str(default_bundle_path())
    assert _script().main([d, d, "--data", str(DATA), "--no-genki", "--limit", "49"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[2:]] == ["7-class", "valence"]
    assert all("right only with A 0, only with B 0, exact McNemar p = 1.000" in line for line in out[2:])
    assert _script().main([d, d, "--data", str(DATA), "--genki-train", "--limit", "7"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" A ")[0].strip() for line in out[2:]] == [
        "7-class", "valence (3-class)", "GENKI held-out", "GENKI training split"]


def test_script_errors_name_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(default_bundle_path())
    assert _script().main([d, d, "--data", str(tmp_path)]) == 2
    assert "fer2013/val not found; pass --data" in capsys.readouterr().err
    assert _script().main([d, str(tmp_path / "nope"), "--data", str(tmp_path)]) == 2
    assert "bundle not found" in capsys.readouterr().err  # checked before the data
    (tmp_path / "fer2013" / "val").mkdir(parents=True)
    assert _script().main([d, d, "--data", str(tmp_path)]) == 2
    assert "genki4k/labels.csv not found; pass --no-genki" in capsys.readouterr().err
    assert _script().main([d, d, "--data", str(tmp_path), "--no-genki"]) == 2
    assert "no images found" in capsys.readouterr().err
