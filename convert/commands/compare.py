"""``emotion-edge compare A B DATA``: do two bundles differ on the same labelled data?

Both bundles are scored sample by sample as ``emotion-edge eval`` scores them (photos through the detector and
crop, a missed face is an error). For each figure: how many samples each gets right, how many only one of them
gets right, and the exact McNemar p-value of that split. Needs no TensorFlow.
"""

from __future__ import annotations

import argparse

from .eval import add_data_arguments, progress_bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle_a", metavar="A", help="bundle directory or archive (e.g. the one you run now)")
    parser.add_argument("bundle_b", metavar="B", help="bundle directory or archive (e.g. a retrained one)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from convert.paired import compare_on_data
    from edge.bundle import load_bundle

    for b in (args.bundle_a, args.bundle_b):  # a broken bundle fails before the other one is measured
        load_bundle(b)
    with progress_bar("compare", args.json) as progress:
        results = compare_on_data(args.bundle_a, args.bundle_b, args.data, cropped=args.cropped, limit=args.limit,
                                  threads=args.threads, progress=progress)
    if args.json:
        print(json.dumps([{**asdict(r), "p_value": r.p_value} for r in results], indent=2))
        return 0
    print(f"A = {args.bundle_a}\nB = {args.bundle_b}")
    for r in results:
        print(r.line())
    if not results:
        print("no figure in common: the data's labels fit neither bundle's classes, valence nor smile")
    return 0
