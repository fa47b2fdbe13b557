"""Calibration sources, sampling and spec parsing on synthetic images (no dataset needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.sources import balanced_subset, open_samples
from calibration.spec import parse_spec
from edge.errors import ConfigError, SourceError


def _img(path: Path, size: int = 48, value: int = 0) -> None:
    rng = np.random.default_rng(value)
    cv2.imwrite(str(path), rng.integers(0, 255, (size, size), dtype=np.uint8))


def test_class_folder_tree_is_labelled_by_folder_and_small_squares_are_crops(tmp_path: Path) -> None:
    for cls, n in (("happy", 3), ("sad", 5)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            _img(tmp_path / cls / f"{i}.png", value=i)
    info = open_samples(tmp_path)
    assert info.kind == "class folders"
    assert info.class_counts() == {"happy": 3, "sad": 5}
    assert all(s.cropped for s in info.samples)
    assert not any(s.cropped for s in open_samples(tmp_path, cropped="no").samples)


def test_large_photos_are_not_treated_as_crops(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "p.jpg"), np.zeros((240, 320, 3), np.uint8))
    assert not open_samples(tmp_path).samples[0].cropped


def test_genki_style_labels_csv(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    rows = [("f1.jpg", 1), ("f2.jpg", 0), ("f3.jpg", 1)]
    for name, _ in rows:
        cv2.imwrite(str(tmp_path / "files" / name), np.zeros((190, 180, 3), np.uint8))
    with (tmp_path / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "smile", "yaw", "pitch", "roll"])
        for name, smile in rows:
            w.writerow([name, smile, 0, 0, 0])
    info = open_samples(tmp_path)
    assert info.kind == "labels.csv"
    assert [s.label for s in info.samples] == ["smile", "no_smile", "smile"]
    assert not info.samples[0].cropped


def test_kaggle_fer2013_csv_rows_become_48px_crops_in_fer7_order(tmp_path: Path) -> None:
    p = tmp_path / "fer2013.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerow([3, " ".join(["7"] * 2304), "Training"])
        w.writerow([6, " ".join(["9"] * 2304), "PublicTest"])
    info = open_samples(p)
    assert [s.label for s in info.samples] == ["happy", "neutral"]
    img = info.samples[1].load()
    assert img.shape == (48, 48) and int(img[0, 0]) == 9
    assert [s.label for s in open_samples(p, usage="PublicTest").samples] == ["neutral"]


def test_bad_kaggle_row_names_the_row(tmp_path: Path) -> None:
    p = tmp_path / "fer2013.csv"
    p.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    with pytest.raises(SourceError, match="row 2"):
        open_samples(p)


def test_empty_source_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images found"):
        open_samples(tmp_path)
    with pytest.raises(SourceError, match="not found"):
        open_samples(tmp_path / "nope")


def test_balanced_subset_is_even_where_the_data_allows() -> None:
    from calibration.sources import Sample

    pool = [Sample(f"a{i}", "a", True, lambda: None) for i in range(100)]
    pool += [Sample(f"b{i}", "b", True, lambda: None) for i in range(100)]
    pool += [Sample(f"c{i}", "c", True, lambda: None) for i in range(5)]
    got = balanced_subset(pool, 45, seed=1)
    counts = {k: sum(s.label == k for s in got) for k in "abc"}
    assert counts == {"a": 20, "b": 20, "c": 5}
    assert [s.id for s in balanced_subset(pool, 45, seed=1)] == [s.id for s in got]


def test_parse_spec_key_values_and_bundle_json(tmp_path: Path) -> None:
    s = parse_spec("size=64,color=rgb,scale=minus1to1,margin=0.2,align=yes")
    assert (s.input_size, s.color, s.scale, s.margin, s.align) == (64, "rgb", "minus1to1", 0.2, True)
    (tmp_path / "bundle.json").write_text('{"preprocess": {"input_size": 40, "color": "gray"}}')
    assert parse_spec(str(tmp_path)).input_size == 40
    with pytest.raises(ConfigError, match="color"):
        parse_spec("size=48,color=purple")
    with pytest.raises(ConfigError, match="key=value"):
        parse_spec("fer48")
