"""``emotion-edge package``: build an offline install kit for a Raspberry Pi (or this machine)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="pi",
                        help="pi: 64-bit Raspberry Pi OS (aarch64, Python 3.11); host: this machine (default: pi)")
    parser.add_argument("--bundle", type=Path, help="model bundle directory or archive (default: the shipped bundle)")
    parser.add_argument("--config", type=Path,
                        help="daemon config to ship (default: a template using ${EMOTION_EDGE_CAMERA})")
    parser.add_argument("--camera", help="camera instance install.sh enables when given none (default: none)")
    parser.add_argument("--out", type=Path, help="kit archive to write (default: emotion-edge-<target>.tar.gz)")
    parser.add_argument("--cache", type=Path,
                        help="wheel download cache (default: $EMOTION_EDGE_CACHE or ~/.cache/emotion-edge)")
    parser.add_argument("--refresh", action="store_true", help="ask the package index again instead of using the cache")
    parser.add_argument("--check", type=Path, metavar="KIT",
                        help="check an existing kit (manifest, wheel tags, [edge] coverage, bundle) and exit")


def run(args: argparse.Namespace) -> int:
    from edge.deploy.kit import KitOptions, build_kit
    from edge.deploy.kitcheck import check_kit

    if args.check:
        info, problems = check_kit(args.check)
        print(f"{args.check}: release {info.release}, target {info.target} ({info.machine}, Python {info.python}), "
              f"{len(info.wheels)} wheels, bundle {info.bundle_id}")
        for p in problems:
            print(f"  problem: {p}")
        print("OK" if not problems else f"{len(problems)} problem(s)")
        return 0 if not problems else 1

    out = args.out or Path(f"emotion-edge-{args.target}.tar.gz")
    path, info = build_kit(KitOptions(out=out, target=args.target, bundle=args.bundle, config=args.config,
                                      camera=args.camera, cache=args.cache, refresh=args.refresh))
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB): release {info.release} for {info.target} "
          f"({info.machine}, Python {info.python}), {len(info.wheels)} wheels, bundle {info.bundle_id}")
    print(f"install on the device:  tar xzf {path.name} && sudo ./{info.top_dir}/install.sh --camera NAME")
    print(f"or deploy over SSH:     emotion-edge deploy --kit {path} --host pi@HOST --camera NAME")
    return 0
