#!/usr/bin/env python3
"""Which test-time views help a trained model? FER2013 val accuracy (float) for several view sets.

    python scripts/compare_tta_views.py RUN.work/last.keras [--data ../shared/data]

The model is a training checkpoint (logits out). Each view set's softmax outputs are averaged per face, as
``convert.recipes.export_model`` does in the device graph. Views: the crop, its mirror, a centred zoom-in by 1.1
(``--tta-zoom 1.1``: what the export can bake in), a zoom-out by 0.9 (border reflected; measured only, since
the export has no pixels outside the crop), and both zooms mirrored. Use it sparingly: val picks the views.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="training checkpoint with logits output (RUN.work/last.keras)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with fer2013/")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2
    import keras
    import numpy as np

    from convert.datasets import load_class_folders
    from convert.recipes import tta_views
    from convert.train import valence_accuracy
    from edge.preprocess import PreprocessSpec

    state = args.checkpoint.parent / "state.json"  # the run's preprocessing, when the checkpoint is in a work folder
    spec = (PreprocessSpec.model_validate(json.loads(state.read_text())["preprocess"]) if state.is_file()
            else PreprocessSpec(input_size=48, color="gray"))
    val = load_class_folders(args.data / "fer2013" / "val", spec)
    x = val.x.astype(np.float32)[..., None] / 255.0
    model = keras.models.load_model(args.checkpoint, compile=False)

    def zoom_out(v, s=0.9):
        size = v.shape[2]  # the run's input size (state.json), not always 48
        c = (size - 1) / 2.0
        m = cv2.getRotationMatrix2D((c, c), 0, s)
        return np.stack([cv2.warpAffine(a[..., 0], m, (size, size), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT)[..., None] for a in v])

    views = dict(zip(("crop", "mirror", "zoom1.1"), tta_views(x, True, 1.1)))
    views["zoom0.9"] = zoom_out(x)
    views["zoom1.1+mirror"] = views["zoom1.1"][:, :, ::-1]
    views["zoom0.9+mirror"] = views["zoom0.9"][:, :, ::-1]
    probs = {k: np.asarray(keras.ops.softmax(model.predict(v, batch_size=512, verbose=0))) for k, v in views.items()}
    for names in (["crop"], ["crop", "mirror"], ["crop", "mirror", "zoom1.1"], ["crop", "mirror", "zoom0.9"],
                  ["crop", "mirror", "zoom1.1", "zoom1.1+mirror"], ["crop", "mirror", "zoom0.9", "zoom0.9+mirror"],
                  list(views)):
        p = np.mean([probs[k] for k in names], 0)
        print(f"{' + '.join(names):70s} 7-class {100 * np.mean(p.argmax(1) == val.y):.2f} %  "
              f"valence {100 * valence_accuracy(p, val.y):.2f} %", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
