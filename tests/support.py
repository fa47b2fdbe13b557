"""Shared test constants (import as `from support import ...`; several conftest.py files exist)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMOTION_EDGE_DATA", ROOT.parent / "shared" / "data"))

needs_data = pytest.mark.skipif(not (DATA / "fer2013").is_dir(), reason=f"dataset folder {DATA} is absent")


def have_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def fer_subset(split: str, per_class: int, scale: str):  # type: ignore[no-untyped-def]
    """The first ``per_class`` FER2013 images of each class as float model inputs ``(N, 48, 48, 1)`` and labels."""
    import cv2
    import numpy as np

    xs, ys = [], []
    for i, c in enumerate(FER7):
        for p in sorted((DATA / "fer2013" / split / c).glob("*.jpg"))[:per_class]:
            xs.append(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
            ys.append(i)
    x = np.array(xs, np.float32)[..., None]
    x = x / 127.5 - 1.0 if scale == "minus1to1" else x / 255.0
    return x, np.array(ys)


def synthetic_fer_folders(root: Path, per_class: int = 6) -> Path:
    """Class folders of synthetic 48x48 images; 'happy' gets a bright mouth bar so it is learnable."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in FER7:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(60, 120, (48, 48), np.uint8)
                if c == "happy":
                    img[32:38, 12:36] = 250
                cv2.imwrite(str(d / f"{i}.png"), img)
    return root


def interrupt_after_one_epoch(train, cfg) -> None:  # type: ignore[no-untyped-def]
    """Run ``convert.train.train`` and break off once its first epoch (of this call) is saved, as a kill would."""

    class Stop(Exception):
        pass

    def stop(e):  # type: ignore[no-untyped-def]
        raise Stop

    with pytest.raises(Stop):
        train(cfg, stop)
