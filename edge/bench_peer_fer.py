"""Time the `fer` package on benchmark frames: run as a script by the peer's own python.

    PEER_PYTHON edge/bench_peer_fer.py --frames-file F.npy --threads 1 --warmup 5 --frames 50 --out R.json

This file is executed by the environment that holds ``fer`` (``.bench-venv``,
made by ``scripts/setup_bench_env.sh``), not imported by emotion-edge: it uses the
standard library and numpy at module level, and fer (which imports TensorFlow)
only inside ``main``. Timing covers ``FER.detect_emotions`` per frame, fer's whole
path: grayscale conversion, face detection (Haar cascade by default), crops,
emotion classification.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _pin(threads: int) -> list[int]:
    """Limit this process (every thread) to ``threads`` CPUs; returns them."""
    if not hasattr(os, "sched_setaffinity"):
        return []
    cpus = sorted(os.sched_getaffinity(0))[: max(1, threads)]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass
    return cpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames-file", action="append", required=True, help=".npy (N, H, W, 3) uint8 BGR; repeatable")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pin", action="store_true", help="confine the process to --threads CPUs")
    ap.add_argument("--pace-ms", type=float, default=0.0, help="sleep between timed frames")
    args = ap.parse_args(argv)

    # Pin before TensorFlow and OpenCV start their thread pools, so they inherit it.
    cpus = _pin(args.threads) if args.pin else []
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore")
    import cv2
    import fer
    import numpy as np
    from fer.fer import FER

    cv2.setNumThreads(args.threads)
    t0 = time.perf_counter()
    detector = FER()  # the package defaults: Haar cascade, quantised TFLite classifier
    load_s = time.perf_counter() - t0

    results = []
    for path in args.frames_file:
        frames = np.load(path)
        for i in range(args.warmup):
            detector.detect_emotions(frames[i % len(frames)])
        ms, cpu_ms, faces = [], [], []
        for i in range(args.frames):
            frame = frames[i % len(frames)]
            if args.pace_ms > 0:
                time.sleep(args.pace_ms / 1e3)
            c = time.process_time()
            t = time.perf_counter()
            found = detector.detect_emotions(frame)
            ms.append((time.perf_counter() - t) * 1e3)
            cpu_ms.append((time.process_time() - c) * 1e3)
            faces.append(len(found))
        results.append({"frames_file": path, "ms": ms, "cpu_ms": cpu_ms, "faces": faces})

    from importlib.metadata import version  # fer has loaded TensorFlow already; only its version is wanted

    report = {
        "name": "fer",
        "version": fer.__version__,
        "detector": "opencv haar cascade (fer default)",
        "classifier": "fer emotion_model_quantized.tflite on tf.lite (fer default)",
        "opencv": cv2.__version__,
        "tensorflow": version("tensorflow"),
        "python": sys.version.split()[0],
        "cpus": cpus,
        "load_s": round(load_s, 3),
        "results": results,
    }
    with open(args.out, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
