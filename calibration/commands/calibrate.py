"""``emotion-edge calibrate SOURCE... --for SPEC --out calib.npz``: a representative set
built through the device's detect -> crop -> preprocess path."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="class-folder tree, GENKI-style labels.csv, Kaggle fer2013.csv, photos or videos")
    parser.add_argument("--for", dest="spec", required=True, metavar="SPEC",
                        help="target input spec: a bundle, a spec .json, or 'size=48,color=gray,margin=0.1'")
    parser.add_argument("--out", required=True, help="output .npz (a .json manifest and .png preview go next to it)")
    parser.add_argument("-n", "--samples", type=int, default=500, help="faces to keep, class-balanced (default 500)")
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--cropped", dest="cropped", action="store_const", const="yes", default="auto",
                      help="images are already face crops (default: small square images are)")
    crop.add_argument("--photos", dest="cropped", action="store_const", const="no",
                      help="images are photos: find faces with the detector")
    parser.add_argument("--usage", default=None, metavar="SPLIT",
                        help="Kaggle fer2013.csv only: keep rows of this Usage (Training, PublicTest, PrivateTest)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from calibration.representative import build_calibration_set, save_calibration_set
    from calibration.spec import parse_spec
    from edge.errors import ConfigError

    if args.samples < 1:
        raise ConfigError("--samples must be at least 1")
    spec = parse_spec(args.spec)
    with tqdm(total=args.samples, unit="face", desc="calibrate", leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        cs = build_calibration_set(args.sources, spec, args.samples, cropped=args.cropped, seed=args.seed,
                                   usage=args.usage, progress=progress)
    paths = save_calibration_set(cs, args.out)
    m = cs.manifest
    counts = ", ".join(f"{k or 'unlabelled'} {v}" for k, v in m["counts_per_class"].items())
    print(f"{paths['npz']}: {m['count']} faces ({counts}); {m['missed_faces']} photos without a face skipped")
    print(f"manifest {paths['manifest']}, preview {paths['preview']}")
    return 0
