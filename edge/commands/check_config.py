"""``emotion-edge check-config FILE``: validate a daemon config without running anything.

Checks what can be checked without a camera or a broker: the file itself (keys,
types, ``${ENV}``), the camera source spec and its options, a local source
file, the credentials files, and the model bundle (present, hashes match).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="YAML config file")
    parser.add_argument("--print", action="store_true", dest="show", help="print the config with every default filled in")
    parser.add_argument("--syntax-only", action="store_true",
                        help="check the file only (not the source, credentials or bundle it points at)")


def run(args: argparse.Namespace) -> int:
    import json

    from ..config import load_config, resolve_credentials

    cfg = load_config(args.file)
    bundle_id = None
    if not args.syntax_only:
        from ..bundle import load_bundle
        from ..daemon import check_source
        from ..pipeline import default_bundle_path

        check_source(cfg)
        resolve_credentials(cfg.mqtt)
        bundle_id = load_bundle(cfg.model.bundle or default_bundle_path(), require_detector=True).id
    if args.show:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        model = f", model {bundle_id}" if bundle_id else ""
        print(f"{args.file}: OK (camera {cfg.camera.id}, broker {cfg.mqtt.host}:{cfg.mqtt.port}{model})")
    return 0
