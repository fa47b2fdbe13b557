"""``emotion-edge eval BUNDLE DATA``: accuracy of a bundle on labelled data, scored as on the device.

Pre-cropped faces are classified directly; photos go through the bundle's detector
and crop, and a photo whose face is missed counts as an error. Needs no TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory or archive")
    add_data_arguments(parser)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """DATA... and how to read and score it (shared with ``compare``)."""
    parser.add_argument("data", nargs="+", metavar="DATA", help="class-folder tree, labels.csv or fer2013.csv")
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--cropped", dest="cropped", action="store_const", const="yes", default="auto",
                      help="images are face crops: classify directly (default: small square images are)")
    crop.add_argument("--photos", dest="cropped", action="store_const", const="no",
                      help="images are photos: detector + crop as on the device")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="class-balanced subset of N samples")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--threads", type=int, default=1)


@contextlib.contextmanager
def progress_bar(desc: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar fed by ``progress(done, total)`` callbacks (restarts when ``done`` goes back); None without
    tqdm, which comes with the [convert] extra: eval also runs on a lean [edge] install."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    with tqdm(unit="img", desc=desc, leave=False, disable=quiet) as bar:
        def progress(done: int, total: int) -> None:
            if done < bar.n:  # the next pass (compare: the second bundle)
                bar.reset()
            bar.total = total
            bar.update(done - bar.n)

        yield progress


def run(args: argparse.Namespace) -> int:
    import json

    from convert.evaluate_bundle import evaluate_bundle

    with progress_bar("eval", args.json) as progress:
        result = evaluate_bundle(args.bundle, args.data, cropped=args.cropped, limit=args.limit,
                                 threads=args.threads, progress=progress)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    s = result["scores"]
    print(f"bundle {result['bundle']}: {s['n']} samples from {result['data']} "
          f"({s['missed']} faces missed, counted as errors)")
    for key, name in (("class_accuracy", f"{len(result['classes'])}-class accuracy"),
                      ("valence_accuracy", "valence accuracy"), ("smile_accuracy", "smile accuracy")):
        if s.get(key) is not None:
            print(f"  {name:22s} {s[key]:6.2f}%")
    for c, r in s.get("class_recall", {}).items():
        print(f"  recall {c:15s} {r:6.2f}%")
    for v, r in s.get("valence_recall", {}).items():
        print(f"  recall valence {v:8s} {r:6.2f}%")
    a = result["abstain"]
    print(f"  abstain threshold {a['threshold']:.3f}: answers {a['coverage']:.1f}% of faces")
    return 0
