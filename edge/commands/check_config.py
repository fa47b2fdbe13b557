"""``emotion-edge check-config FILE``: validate a daemon config without running anything."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="YAML config file")
    parser.add_argument("--print", action="store_true", dest="show", help="print the config with every default filled in")


def run(args: argparse.Namespace) -> int:
    import json

    from ..config import load_config

    cfg = load_config(args.file)
    if args.show:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        print(f"{args.file}: OK (camera {cfg.camera.id}, broker {cfg.mqtt.host}:{cfg.mqtt.port})")
    return 0
