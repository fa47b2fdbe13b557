#!/usr/bin/env python3
"""Compare two bundles face by face on FER2013 val and photo by photo on GENKI's held-out split.

    python scripts/compare_bundles.py BUNDLE_A BUNDLE_B [--data ../shared/data] [--no-genki] [--limit N]
                                      [--genki-train]

For each figure: how many items each bundle gets right, how many only A or only B gets right, and the exact
McNemar p-value of that split (convert/paired.py). ``--genki-train`` adds GENKI's training split: how hard each
bundle fits the photos it trained on, beside how well it does on the held-out ones. A small p says these two
models differ; it does not say their recipes do (seeds alone can differ that much: compare several seeds of each
recipe). Runs on the device runtime, no TensorFlow. Exit status 0, or 2 with a message when a bundle or the data cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle_a", type=Path)
    ap.add_argument("bundle_b", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="folder with fer2013/val and genki4k (default: ../shared/data)")
    ap.add_argument("--no-genki", action="store_true", help="FER2013 val only (GENKI runs the detector: slower)")
    ap.add_argument("--limit", type=int, default=None, help="a class-balanced subset of N FER faces")
    ap.add_argument("--genki-train", action="store_true",
                    help="also compare on GENKI's training split (the photos training used: how hard each fits them)")
    args = ap.parse_args(argv)

    from convert.paired import compare_on_data, compare_on_genki
    from edge.bundle import load_bundle
    from edge.errors import EmotionEdgeError

    try:  # a bad bundle fails before minutes of measuring the other one
        for b in (args.bundle_a, args.bundle_b):
            load_bundle(b, require_detector=False)
    except EmotionEdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    fer = args.data / "fer2013" / "val"
    genki = args.data / "genki4k"
    if not fer.is_dir():
        print(f"error: {fer} not found; pass --data DIR with fer2013/val inside", file=sys.stderr)
        return 2
    if not args.no_genki and not (genki / "labels.csv").is_file():
        print(f"error: {genki / 'labels.csv'} not found; pass --no-genki to compare on FER2013 only",
              file=sys.stderr)
        return 2
    try:
        results = compare_on_data(args.bundle_a, args.bundle_b, [str(fer)], limit=args.limit)
        if not args.no_genki:
            results.append(compare_on_genki(args.bundle_a, args.bundle_b, genki))
            if args.genki_train:
                results.append(compare_on_genki(args.bundle_a, args.bundle_b, genki, split="train"))
    except EmotionEdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"A = {args.bundle_a}\nB = {args.bundle_b}")
    for r in results:
        print(r.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
