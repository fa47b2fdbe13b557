"""``emotion-edge analyze PATH...``: faces and their valence in images, folders and videos."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="images, folders or videos")
    p.add_argument("--bundle", help="model bundle directory or archive (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="one JSON object per face per line instead of a table")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--every", type=int, default=1, metavar="K", help="videos: analyse every K-th frame")
    p.add_argument("--min-face", type=float, default=20.0, metavar="PX", help="ignore faces smaller than this")
    p.add_argument("--score-threshold", type=float, default=0.6,
                   help="face detector score threshold (default 0.6, chosen for photos; see docs/detector.md)")
    p.add_argument("--no-zoom", action="store_true",
                   help="do not look again on image tiles when a picture gives no face (faster, misses small faces)")


def run(args: argparse.Namespace) -> int:
    from ..analyze import InputProblem, analyze, expand_paths
    from ..pipeline import PipelineOptions

    if args.threads < 1 or args.every < 1:
        from ..errors import ConfigError

        raise ConfigError("--threads and --every must be at least 1")
    expand_paths(args.paths)  # fail fast on a missing path, before loading models
    options = PipelineOptions(
        num_threads=args.threads, min_face_px=args.min_face, score_threshold=args.score_threshold,
        zoom_on_miss=not args.no_zoom,
    )
    from ..pipeline import Pipeline

    pipeline = Pipeline.from_bundle(args.bundle, options)
    problems: list[InputProblem] = []
    out = sys.stdout
    n_faces = 0
    files_with_faces: set[str] = set()
    if not args.json:
        print(f"{'file':<40} {'frame':>5} {'label':<10} {'score':>5}  {'pos':>5} {'neu':>5} {'neg':>5}  box (x y w h)", file=out)
    for rec in analyze(args.paths, every=args.every, problems=problems, pipeline=pipeline):
        n_faces += 1
        files_with_faces.add(rec.file)
        if args.json:
            out.write(json.dumps(rec.to_dict()) + "\n")
        else:
            s = rec.scores
            name = rec.file if len(rec.file) <= 40 else "..." + rec.file[-37:]
            box = " ".join(f"{v:.2f}" for v in rec.box)
            print(f"{name:<40} {rec.frame:>5} {rec.label:<10} {rec.score:>5.2f}  "
                  f"{s['positive']:>5.2f} {s['neutral']:>5.2f} {s['negative']:>5.2f}  {box}", file=out)
    pipeline.close()
    for prob in problems:
        print(f"emotion-edge analyze: error: {prob.reason}", file=sys.stderr)
    if not args.json:
        print(f"{n_faces} face(s) in {len(files_with_faces)} file(s); {len(problems)} unreadable", file=sys.stderr)
    return 1 if problems else 0
