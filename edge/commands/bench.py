"""``emotion-edge bench``: per-stage timings and peak memory of the device path, and the fer peer.

    emotion-edge bench                      # readable table
    emotion-edge bench --json > bench.json  # the full report
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, help="bundle directory or archive (default: the shipped bundle)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--frames", type=_positive, default=200, help="timed frames per configuration (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames before each configuration (20)")
    parser.add_argument("--threads", type=_counts, default=(1, 2), help="thread counts to measure (1,2)")
    parser.add_argument("--face-counts", type=_counts, default=(1, 5), help="faces per frame to measure (1,5)")
    parser.add_argument(
        "--faces", type=Path, metavar="DIR",
        help="take face photos from DIR (default: astronaut.png from the scikit-image package)",
    )  # fmt: skip
    parser.add_argument("--rss-frames", type=_positive, default=100, help="frames for the daemon-path memory run")
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument(
        "--peer-python", type=Path, metavar="PATH",
        help="python of an environment with `fer` (default: .bench-venv/bin/python if present; "
        "make it with scripts/setup_bench_env.sh)",
    )  # fmt: skip
    peer.add_argument("--no-peer", action="store_true", help="do not run the fer comparison")
    parser.add_argument("--peer-frames", type=_positive, default=100, help="timed frames per peer configuration")
    parser.add_argument(
        "--pin", action="store_true",
        help="also confine each configuration (ours and the peer) to as many CPUs as it has threads",
    )  # fmt: skip
    parser.add_argument(
        "--pace-ms", type=float, default=0.0, metavar="MS",
        help="sleep MS between timed frames, as a camera-paced daemon does (steadier wall times on a busy machine)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames")


def _default_peer() -> Path | None:
    from edge import __file__ as edge_init

    for root in (Path.cwd(), Path(edge_init).resolve().parents[1]):
        candidate = root / ".bench-venv" / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def run(args: argparse.Namespace) -> int:
    from edge.bench import BenchOptions, run_benchmark
    from edge.errors import ConfigError
    from edge.pipeline import default_bundle_path

    bundle = args.bundle or default_bundle_path()
    if args.bundle is None and not (bundle / "bundle.json").is_file():
        raise ConfigError(
            f"no default bundle at {bundle}; pass --bundle PATH (any bundle: speed does not depend on weights)"
        )
    if args.warmup < 0:
        raise ConfigError("--warmup must be >= 0")
    if args.pace_ms < 0:
        raise ConfigError("--pace-ms must be >= 0")
    skip_reason = "--no-peer given"
    peer = None
    if not args.no_peer:
        peer = args.peer_python or _default_peer()
        if peer is None:
            skip_reason = "no .bench-venv found; make it with scripts/setup_bench_env.sh or pass --peer-python"
        elif not peer.exists():
            raise ConfigError(f"--peer-python {peer}: no such file; make it with scripts/setup_bench_env.sh")
    options = BenchOptions(
        bundle=bundle,
        frames=args.frames,
        warmup=args.warmup,
        threads=args.threads,
        face_counts=args.face_counts,
        faces_dir=args.faces,
        rss_frames=args.rss_frames,
        peer_python=peer,
        peer_frames=args.peer_frames,
        peer_skip_reason=skip_reason,
        pin=args.pin,
        pace_ms=args.pace_ms,
        seed=args.seed,
    )
    report = run_benchmark(options, progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _ok(check: dict | None) -> str:
    if not check:
        return ""
    return "  [ok]" if check["ok"] else f"  [MISSES target {check['target']}]"


def format_report(r: dict) -> str:
    """The report as a readable table."""
    m = r["machine"]
    stages = r["stages"]
    lines = [
        (
            f"emotion-edge {r['version']} bench: bundle {r['bundle']['id']}, runtime {r['runtime']}, "
            f"{r['frame']['width']}x{r['frame']['height']} frames, {r['frames']} timed after {r['warmup']} warm-up"
        ),
        f"machine: {m['cpu']} ({m['cpus']} CPUs, load {m.get('loadavg_1m', '?')}), Python {m['python']}",
        f"faces from: {r['faces_from']}",
    ]
    load, cpus = m.get("loadavg_1m"), m.get("cpus") or 1
    if load is not None and load > 0.75 * cpus:
        lines.append(
            f"note: the machine is busy (load {load} on {cpus} CPUs): wall times include waiting for a CPU; "
            "CPU ms is the steadier figure"
        )
    how = "each configuration pinned to 'threads' CPUs" if r["pinned"] else "'threads' = interpreter and OpenCV threads"
    if r.get("pace_ms"):
        how += f"; {r['pace_ms']:g} ms sleep between frames"
    lines += ["", f"wall ms per frame: median and p90; CPU ms per frame: median; per-stage wall medians; {how}"]
    head = ["faces", "threads", "ms/frame", "p90", "cpu ms"] + stages + ["found"]
    rows = []
    for run in r["runs"]:
        rows.append(
            [str(run["faces"]), str(run["threads"]), f"{run['ms_per_frame']['median']:.3f}",
             f"{run['ms_per_frame']['p90']:.3f}", f"{run['cpu_ms_per_frame']['median']:.3f}"]
            + [f"{run['stages'][s]['median']:.3f}" for s in stages]
            + [f"{run['faces_found_mean']:g}"]
        )  # fmt: skip
    lines += _table(head, rows)
    checks = r["checks"]
    lines.append("")
    if "ms_per_frame_1face_1thread" in checks:
        c = checks["ms_per_frame_1face_1thread"]
        lines.append(
            f"1 face, 1 thread: {c['value']:.3f} ms per frame (CPU {c['cpu_ms']:.3f} ms){_ok(c)} "
            f"(target <= {c['target']} ms)"
        )
    mem = r["memory"]
    d = mem["daemon_path"]
    if "error" in d:
        lines.append(f"daemon-path peak RSS: not measured ({d['error']})")
    else:
        lines.append(
            f"daemon-path peak RSS: {d['peak_rss_mb']:.1f} MB{_ok(checks.get('daemon_peak_rss_mb'))} "
            f"(fresh process importing {', '.join(d['imports'])}; {d['frames']} frames, "
            f"{d['faces_per_frame']} faces each; "
            f"heavy modules loaded: {', '.join(d['heavy_modules_loaded']) or 'none'})"
        )
    lines.append(f"bench process peak RSS: {mem['bench_process_peak_rss_mb']:.1f} MB (holds all test frames)")
    peer = r["peer"]
    lines.append("")
    if "skipped" in peer:
        lines.append(f"peer (fer): skipped: {peer['skipped']}")
        return "\n".join(lines)
    lines.append(
        f"peer: fer {peer['version']} ({peer['detector']}; {peer['classifier']}), "
        f"TensorFlow {peer['tensorflow']}, OpenCV {peer['opencv']}; same frames, "
        f"{peer['runs'][0]['ms_per_frame']['n'] if peer['runs'] else 0} timed per configuration"
    )
    ratios = {(x["faces"], x["threads"]): x for x in r["peer_ratios"]}
    ours = {(x["faces"], x["threads"]): x for x in r["runs"]}
    rows = []
    for p in peer["runs"]:
        key = (p["faces"], p["threads"])
        o = ours.get(key)
        ratio = ratios.get(key)
        rows.append([
            str(p["faces"]), str(p["threads"]), f"{p['ms_per_frame']['median']:.2f}", f"{p['ms_per_frame']['p90']:.2f}",
            f"{p['cpu_ms_per_frame']['median']:.2f}", f"{p['faces_found_mean']:g}",
            f"{o['ms_per_frame']['median']:.3f}" if o else "-",
            f"{ratio['ours_over_peer']:.3f}x" if ratio and ratio["ours_over_peer"] is not None else "-",
            f"{ratio['ours_over_peer_cpu']:.3f}x" if ratio and ratio["ours_over_peer_cpu"] is not None else "-",
        ])  # fmt: skip
    head = ["faces", "threads", "fer ms", "fer p90", "fer cpu ms", "fer found", "ours ms", "ours/fer", "cpu ratio"]
    lines += _table(head, rows)
    if "peer_ratio_max" in checks:
        c = checks["peer_ratio_max"]
        lines.append(f"worst ours/fer (wall or CPU): {c['value']:.3f}x{_ok(c)} (target <= {c['target']}x)")
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return [fmt.format(*head)] + [fmt.format(*row) for row in rows]
