"""``emotion-edge config-schema``: JSON Schema of the config file (or, with --wire, of the MQTT payloads)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wire", action="store_true", help="print the MQTT payload schemas (events, state, stats, camera)")


def run(args: argparse.Namespace) -> int:
    import json

    if args.wire:
        from ..comms.schema import json_schemas

        print(json.dumps(json_schemas(), indent=2))
    else:
        from ..config import config_schema

        print(json.dumps(config_schema(), indent=2))
    return 0
