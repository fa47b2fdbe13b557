"""Measure the device path: per-stage and per-frame milliseconds, peak memory, and a peer.

``run_benchmark(BenchOptions)`` returns a JSON-ready report:

- for each (faces per frame, threads): ``ms_per_frame`` (median, p90, ...) of
  ``Pipeline.process`` on synthetic 640x480 frames, the per-stage split the
  pipeline records in ``FrameResult.timings``, and how many faces it found;
- the benchmark process's peak RSS, and the *daemon path's* peak RSS, measured
  in a fresh interpreter that imports only ``edge.pipeline`` (and paho-mqtt),
  runs the pipeline on N frames and reports its own peak (``VmHWM``: a child's
  ``ru_maxrss`` would inherit the parent's high-water mark on Linux);
- the ``fer`` package on the same frames, run by another environment's python
  (``scripts/setup_bench_env.sh``), and the ratio ours / fer.

"threads" caps parallelism on both sides: interpreter threads and OpenCV's pool.
Wall time is the headline; CPU time per frame is reported next to it, because on
a shared machine other processes stretch wall time but not CPU time. With
``pin`` each configuration is also confined to as many CPUs as it has threads
(best on a quiet machine: on a busy one, the pinned CPU may be the busy one).

Run as ``python -m edge.bench daemon-rss ...`` this module is the daemon-path
child; it writes its result to a file and prints nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pipeline import STAGES, Pipeline, PipelineOptions

log = logging.getLogger(__name__)

SCHEMA = "emotion-edge.bench/1"
# The budgets the project holds itself to (docs/benchmarks.md).
TARGETS = {
    "ms_per_frame_1face_1thread": 2.5,
    "peer_ratio_max": 0.1,
    "daemon_peak_rss_mb": 120.0,
}
HEAVY_MODULES = ("tensorflow", "keras", "tf_keras", "mediapipe", "torch", "tensorflow_model_optimization")
PEER_SCRIPT = Path(__file__).with_name("bench_peer_fer.py")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """What ``run_benchmark`` measures and how long."""

    bundle: Path
    frames: int = 200
    warmup: int = 20
    threads: tuple[int, ...] = (1, 2)
    face_counts: tuple[int, ...] = (1, 5)
    faces_dir: Path | None = None
    distinct_frames: int = 16
    rss_frames: int = 100
    peer_python: Path | None = None
    peer_frames: int = 100
    peer_warmup: int = 5
    peer_skip_reason: str = "no peer environment"
    pin: bool = False
    pace_ms: float = 0.0
    seed: int = 0


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, p90, mean, min and max of a sample, rounded to microseconds."""
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {"median": 0.0, "p90": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0, "n": 0}
    return {
        "median": round(float(np.median(a)), 3),
        "p90": round(float(np.percentile(a, 90)), 3),
        "mean": round(float(a.mean()), 3),
        "min": round(float(a.min()), 3),
        "max": round(float(a.max()), 3),
        "n": int(a.size),
    }


def _threads_of_this_process() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


@contextlib.contextmanager
def pinned(threads: int, pin: bool = True) -> Iterator[list[int]]:
    """Run the block with OpenCV's pool at ``threads`` and, with ``pin``, on ``threads`` CPUs.

    Affinity is per thread on Linux, so all existing threads (LiteRT's and OpenCV's
    pools included) are moved, and new ones inherit it. Restored on exit.
    """
    import cv2

    cv2_threads = cv2.getNumThreads()
    if not pin or not hasattr(os, "sched_setaffinity"):
        cv2.setNumThreads(threads)
        try:
            yield []
        finally:
            cv2.setNumThreads(cv2_threads)
        return
    before = os.sched_getaffinity(0)
    cpus = sorted(before)[: max(1, threads)]

    def apply(mask: Sequence[int]) -> None:
        for tid in _threads_of_this_process():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, mask)

    apply(cpus)
    cv2.setNumThreads(threads)
    try:
        yield cpus
    finally:
        apply(sorted(before))
        cv2.setNumThreads(cv2_threads)


def measure_pipeline(
    pipeline: Pipeline, frames: np.ndarray, warmup: int, count: int, pace_s: float = 0.0
) -> dict[str, object]:
    """Time ``pipeline.process`` on ``count`` frames (cycling ``frames``) after ``warmup`` untimed ones.

    ``pace_s`` sleeps between frames, as a camera-paced daemon does: on a busy
    machine back-to-back frames run out their scheduler slice and wait mid-frame.
    """
    n = len(frames)
    t = 0.0
    for i in range(warmup):
        pipeline.process(frames[i % n], t)
        t += 1 / 15
    totals: list[float] = []
    cpu: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    found: list[int] = []
    for i in range(count):
        frame = frames[(warmup + i) % n]
        if pace_s > 0:
            time.sleep(pace_s)
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = pipeline.process(frame, t)
        totals.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        t += 1 / 15
        for s in STAGES:
            stages[s].append(result.timings.get(s, 0.0))
        found.append(len(result.faces))
    other = np.asarray(totals) - np.sum([stages[s] for s in STAGES], axis=0)
    stage_stats = {s: summarize(v) for s, v in stages.items()}
    stage_stats["other"] = summarize(other.tolist())
    return {
        "ms_per_frame": summarize(totals),
        "cpu_ms_per_frame": summarize(cpu),
        "stages": stage_stats,
        "faces_found_mean": round(float(np.mean(found)), 3) if found else 0.0,
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``ru_maxrss``)."""
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def _own_peak_rss_mb() -> tuple[float, str]:
    """Peak RSS of this process image only, and where the figure comes from.

    A child's ``ru_maxrss`` is not its own: Linux carries the parent's high-water
    mark across fork + exec, so a child of a big benchmark process reports the
    parent's peak. ``VmHWM`` in /proc/self/status belongs to the exec'd image.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1), "VmHWM"
    return _peak_rss_mb(), "ru_maxrss"


def _machine() -> dict[str, object]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info: dict[str, object] = {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, AttributeError):
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return info


def _child_env() -> dict[str, str]:
    """Environment for our own child interpreter: this edge package first on the path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def daemon_peak_rss(bundle: Path, frames_file: Path, frames: int, threads: int = 1) -> dict[str, object]:
    """Peak RSS of a fresh interpreter running only the device path on ``frames`` frames."""
    with tempfile.TemporaryDirectory(prefix="emotion-edge-rss-") as tmp:
        out = Path(tmp) / "rss.json"
        cmd = [
            sys.executable, "-m", "edge.bench", "daemon-rss", "--bundle", str(bundle),
            "--frames-file", str(frames_file), "--frames", str(frames), "--threads", str(threads),
            "--out", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": f"daemon-path child failed (exit {proc.returncode}): {' | '.join(tail)}"}
        return json.loads(out.read_text())


def _daemon_rss_child(argv: Sequence[str]) -> int:
    """The daemon-path child: import only what the daemon imports, run, report own peak RSS."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m edge.bench daemon-rss")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--frames-file", required=True)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    modules = ["edge.pipeline"]
    with contextlib.suppress(ImportError):
        import paho.mqtt.client  # noqa: F401  the daemon's publisher needs it

        modules.append("paho.mqtt.client")
    rss_start, _ = _own_peak_rss_mb()
    # Frames are read one at a time into one buffer, as a camera hands them over:
    # loading the whole file would count the test data as the daemon's memory.
    with open(args.frames_file, "rb") as f:
        fmt = np.lib.format
        major, _ = fmt.read_magic(f)
        shape, _, dtype = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(f)
        offset = f.tell()
        frame = np.empty(shape[1:], dtype)
        n = shape[0]
        processed = faces = 0
        with Pipeline.from_bundle(args.bundle, PipelineOptions(num_threads=args.threads)) as pipe:
            for i in range(args.frames):
                f.seek(offset + (i % n) * frame.nbytes)
                f.readinto(memoryview(frame).cast("B"))  # type: ignore[arg-type]
                faces += len(pipe.process(frame, i / 15).faces)
                processed += 1
    peak, source = _own_peak_rss_mb()
    report = {
        "peak_rss_mb": peak,
        "peak_rss_source": source,
        "rss_after_imports_mb": rss_start,
        "frames": processed,
        "faces_found_mean": round(faces / max(1, processed), 3),
        "threads": args.threads,
        "imports": modules,
        "heavy_modules_loaded": sorted(m for m in HEAVY_MODULES if m in sys.modules),
    }
    Path(args.out).write_text(json.dumps(report))
    return 0


def run_peer(
    peer_python: Path,
    frames_files: dict[int, Path],
    threads: Sequence[int],
    warmup: int,
    frames: int,
    pin: bool = False,
    pace_ms: float = 0.0,
) -> dict[str, object]:
    """Run ``fer`` on the same frames with ``peer_python``; one child per thread count."""
    runs: list[dict[str, object]] = []
    info: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="emotion-edge-peer-") as tmp:
        for th in threads:
            out = Path(tmp) / f"peer-{th}.json"
            cmd = [str(peer_python), str(PEER_SCRIPT), "--threads", str(th), "--warmup", str(warmup),
                   "--frames", str(frames), "--out", str(out), "--pace-ms", str(pace_ms)]  # fmt: skip
            if pin:
                cmd.append("--pin")
            for path in frames_files.values():
                cmd += ["--frames-file", str(path)]
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
            env.pop("PYTHONPATH", None)  # the peer's environment, not ours
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return {"skipped": f"peer did not run with {peer_python}: {exc}"}
            if proc.returncode != 0 or not out.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
                return {"skipped": f"peer failed with {peer_python} (exit {proc.returncode}): {' | '.join(tail)}"}
            rep = json.loads(out.read_text())
            by_file = {r["frames_file"]: r for r in rep.pop("results")}
            info = rep
            for faces, path in frames_files.items():
                r = by_file[str(path)]
                runs.append({
                    "faces": faces, "threads": th, "cpus": rep.get("cpus", []),
                    "ms_per_frame": summarize(r["ms"]),
                    "cpu_ms_per_frame": summarize(r["cpu_ms"]),
                    "faces_found_mean": round(float(np.mean(r["faces"])), 3) if r["faces"] else 0.0,
                })  # fmt: skip
    info.pop("cpus", None)
    return {**info, "python": str(peer_python), "runs": runs}


def _ratios(ours: list[dict[str, object]], peer: dict[str, object]) -> list[dict[str, object]]:
    theirs = {(r["faces"], r["threads"]): r for r in peer.get("runs", [])}  # type: ignore[union-attr]
    out = []
    for r in ours:
        p = theirs.get((r["faces"], r["threads"]))
        if p is None:
            continue
        a = r["ms_per_frame"]["median"]  # type: ignore[index]
        b = p["ms_per_frame"]["median"]
        ac = r["cpu_ms_per_frame"]["median"]  # type: ignore[index]
        bc = p["cpu_ms_per_frame"]["median"]
        out.append({
            "faces": r["faces"], "threads": r["threads"],
            "ours_over_peer": round(a / b, 4) if b else None,
            "ours_over_peer_cpu": round(ac / bc, 4) if bc else None,
        })  # fmt: skip
    return out


def _checks(report: dict[str, object]) -> dict[str, dict[str, object]]:
    checks: dict[str, dict[str, object]] = {}
    for r in report["runs"]:  # type: ignore[union-attr]
        if r["faces"] == 1 and r["threads"] == 1:
            v = r["ms_per_frame"]["median"]
            t = TARGETS["ms_per_frame_1face_1thread"]
            cpu = r["cpu_ms_per_frame"]["median"]
            checks["ms_per_frame_1face_1thread"] = {"value": v, "cpu_ms": cpu, "target": t, "ok": v <= t}
    # Both ratios count: wall time flatters whichever side has shorter frames when
    # the machine is busy (a long frame is preempted more), CPU time does not.
    pairs = [(x["ours_over_peer"], x["ours_over_peer_cpu"]) for x in report.get("peer_ratios", [])]
    ratios = [v for pair in pairs for v in pair if v is not None]
    if ratios:
        t = TARGETS["peer_ratio_max"]
        checks["peer_ratio_max"] = {"value": max(ratios), "target": t, "ok": max(ratios) <= t}
    rss = report["memory"]["daemon_path"].get("peak_rss_mb")  # type: ignore[index,union-attr]
    if rss is not None:
        t = TARGETS["daemon_peak_rss_mb"]
        checks["daemon_peak_rss_mb"] = {"value": rss, "target": t, "ok": rss <= t}
    return checks


def run_benchmark(options: BenchOptions, progress: Progress | None = None) -> dict[str, object]:
    """Run every measurement in ``options`` and return the report (see module docstring)."""
    from . import __version__
    from .bench_frames import FRAME_SIZE, face_patches, photo_paths, synth_frames
    from .bundle import load_bundle
    from .runtime import available_backend

    say = progress or (lambda msg: None)
    bundle = load_bundle(options.bundle)
    photos = photo_paths(options.faces_dir)
    with Pipeline.from_bundle(bundle) as p:
        patches = face_patches(photos, lambda img: [d.box for d in p.detector.detect(img)])
    frame_sets = {n: synth_frames(patches, n, options.distinct_frames, options.seed + n) for n in options.face_counts}

    report: dict[str, object] = {
        "schema": SCHEMA,
        "version": __version__,
        "bundle": {"id": bundle.id, "path": str(bundle.root)},
        "runtime": available_backend(),
        "machine": _machine(),
        "frame": {"width": FRAME_SIZE[0], "height": FRAME_SIZE[1], "distinct": options.distinct_frames},
        "faces_from": str(options.faces_dir) if options.faces_dir else f"{photos[0]} (scikit-image)",
        "face_photos": len(patches),
        "frames": options.frames,
        "warmup": options.warmup,
        "pinned": options.pin,
        "pace_ms": options.pace_ms,
        "stages": list(STAGES) + ["other"],
        "targets": TARGETS,
    }
    runs = []
    for threads in options.threads:
        for faces in options.face_counts:
            say(f"ours: {faces} face(s), {threads} thread(s), {options.frames} frames")
            with (
                pinned(threads, options.pin) as cpus,
                Pipeline.from_bundle(bundle, PipelineOptions(num_threads=threads)) as pipe,
            ):
                m = measure_pipeline(pipe, frame_sets[faces], options.warmup, options.frames, options.pace_ms / 1e3)
            runs.append({"faces": faces, "threads": threads, "cpus": cpus, **m})
    report["runs"] = runs

    with tempfile.TemporaryDirectory(prefix="emotion-edge-bench-") as tmp:
        files = {}
        for faces, frames in frame_sets.items():
            files[faces] = Path(tmp) / f"frames-{faces}.npy"
            np.save(files[faces], frames)
        rss_faces = max(options.face_counts)
        say(f"daemon path: peak RSS of a fresh process, {options.rss_frames} frames")
        daemon = daemon_peak_rss(bundle.root, files[rss_faces], options.rss_frames)
        daemon["faces_per_frame"] = rss_faces
        report["memory"] = {"bench_process_peak_rss_mb": _peak_rss_mb(), "daemon_path": daemon}

        if options.peer_python is None:
            report["peer"] = {"skipped": options.peer_skip_reason}
        else:
            say(f"peer: fer with {options.peer_python}, {options.peer_frames} frames per configuration")
            report["peer"] = run_peer(
                options.peer_python, files, options.threads, options.peer_warmup, options.peer_frames, options.pin,
                options.pace_ms,
            )
    report["peer_ratios"] = _ratios(runs, report["peer"])  # type: ignore[arg-type]
    report["checks"] = _checks(report)
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "daemon-rss":
        sys.exit(_daemon_rss_child(sys.argv[2:]))
    sys.exit("usage: python -m edge.bench daemon-rss --bundle B --frames-file F --out OUT")
