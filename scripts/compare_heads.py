#!/usr/bin/env python3
"""Label design by measurement: a 7-class FER head mapped to valence vs a 3-class valence head.

    python scripts/compare_heads.py --data ../shared/data --epochs 6 --work runs/heads

Trains the default recipe twice with everything equal (seed, data, GENKI smiles,
epochs) except ``head``, quantises each to the int8 bundle the device runs
(``convert.ship``) and measures both the same way as the shipped model: FER2013 val
valence accuracy and GENKI-4K held-out positive-vs-not through the full device path.
Prints a markdown table and writes ``WORK/heads.json``. Resumable: finished runs
and bundles are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with fer2013/ and genki4k/")
    ap.add_argument("--recipe", default="edgenet")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per head (short: this is a comparison)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--work", type=Path, default=Path("runs/heads"))
    args = ap.parse_args()

    from convert.commands.train import DEFAULT_MARGIN, DEFAULT_SHIFT_Y
    from convert.heldout import fer_scores, genki_scores
    from convert.recipes import get_recipe
    from convert.ship import ship
    from convert.train import TrainConfig, train
    from edge.preprocess import PreprocessSpec

    rows = {}
    for head in ("fer7", "valence3"):
        recipe = get_recipe(args.recipe, head=head, epochs=args.epochs)
        spec = PreprocessSpec(input_size=recipe.input_size, color="gray", scale="zero_one",
                              margin=DEFAULT_MARGIN, shift_y=DEFAULT_SHIFT_Y)
        out = args.work / head / "model.keras"
        cfg = TrainConfig(data=args.data / "fer2013", out=out, recipe=recipe, preprocess=spec,
                          genki=args.data / "genki4k", seed=args.seed, resume=True)
        if not out.is_file():
            print(f"training {head} head for {args.epochs} epochs", flush=True)
            train(cfg, lambda e, h=head: print(f"  {h} epoch {e.epoch}/{e.epochs} {e.seconds:.0f}s "
                                               f"valence {e.val_valence_acc:.4f}", flush=True))
        record = json.loads(out.with_suffix(".json").read_text())
        bundle = args.work / head / "bundle"
        if not (bundle / "bundle.json").is_file():
            ship(out, bundle, f"{head}-{args.recipe}-compare", record)
        fer = fer_scores(bundle, args.data / "fer2013" / "val")
        genki = genki_scores(bundle, args.data / "genki4k", record["data"]["genki_test_fraction"])
        rows[head] = {"fer_val_valence": fer["valence_accuracy"], "fer_val_7class": fer["class_accuracy"],
                      "genki_heldout": genki["smile_accuracy"], "genki_n": genki["n"],
                      "epochs": args.epochs, "seed": args.seed, "train_minutes":
                      round(sum(h["seconds"] for h in record["history"]) / 60, 1)}
    (args.work / "heads.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| head | FER val valence (int8) | FER val 7-class | GENKI held-out (device path) | train min |")
    print("|---|---|---|---|---|")
    for head, r in rows.items():
        seven = f"{r['fer_val_7class']:.2f} %" if r["fer_val_7class"] is not None else "n/a"
        print(f"| {head} | {r['fer_val_valence']:.2f} % | {seven} | {r['genki_heldout']:.2f} % "
              f"({r['genki_n']} photos) | {r['train_minutes']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
