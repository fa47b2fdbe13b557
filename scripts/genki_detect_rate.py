"""Fraction of GENKI-4K photos in which the face detector finds exactly one face.

GENKI-4K shows one person per photo, so "exactly one face" is the expected
answer (a few photos do show a second person or a face on a poster). It measures
``edge.detector.still_image_options`` unless options are given. Usage::

    python scripts/genki_detect_rate.py [--data ../shared/data/genki4k] [--limit N] [--no-zoom]
        [--score-threshold T] [--mediapipe-defaults] [--list-failures]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from dataclasses import replace

    import cv2

    from edge.assets import find_blazeface
    from edge.detector import DetectorOptions, FaceDetector, still_image_options

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "genki4k")
    p.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    p.add_argument("--score-threshold", type=float, default=None, help="default: still-image preset (0.6)")
    p.add_argument("--no-zoom", action="store_true", help="no second pass on tiles when no face is found")
    p.add_argument("--mediapipe-defaults", action="store_true",
                   help="MediaPipe's settings: threshold 0.5, no zoom, no fragment removal")
    p.add_argument("--max-inside", type=float, default=None)
    p.add_argument("--list-failures", action="store_true")
    args = p.parse_args()

    files = sorted((args.data / "files").glob("*.jpg"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"no images in {args.data / 'files'}", file=sys.stderr)
        return 2
    if args.mediapipe_defaults:
        opts = DetectorOptions(find_blazeface(), score_threshold=0.5, zoom_on_miss=False, max_inside=1.0)
    else:
        opts = still_image_options(find_blazeface())
    if args.score_threshold is not None:
        opts = replace(opts, score_threshold=args.score_threshold)
    if args.max_inside is not None:
        opts = replace(opts, max_inside=args.max_inside)
    if args.no_zoom:
        opts = replace(opts, zoom_on_miss=False)
    counts: Counter[int] = Counter()
    failures = []
    t0 = time.perf_counter()
    with FaceDetector.create_from_options(opts) as det:
        for f in files:
            img = cv2.imread(str(f))
            n = -1 if img is None else len(det.detect(img))
            counts[n] += 1
            if n != 1:
                failures.append((f.name, n))
    dt = time.perf_counter() - t0
    total = len(files)
    print(f"options: score_threshold={opts.score_threshold} zoom_on_miss={opts.zoom_on_miss} "
          f"max_inside={opts.max_inside}")
    print(f"files: {total}  exactly one face: {counts[1]} ({100.0 * counts[1] / total:.2f}%)")
    print("faces per file: " + ", ".join(f"{k if k >= 0 else 'unreadable'}: {v}" for k, v in sorted(counts.items())))
    print(f"time: {dt:.1f} s ({1e3 * dt / total:.2f} ms per file, decode included)")
    if args.list_failures:
        for name, n in failures:
            print(f"  {name}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
