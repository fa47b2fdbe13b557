"""The ``emotion-edge`` command line.

Each subcommand lives in its own module with two functions,
``add_arguments(parser)`` and ``run(args) -> int``; this file only routes.
Modules are imported when their command runs, so ``emotion-edge analyze`` on a
Pi never imports the workstation (TensorFlow) code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from . import __version__
from .errors import EmotionEdgeError

# name -> (module, one-line help). Workstation commands live outside edge/.
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("edge.commands.analyze", "find faces in images/videos and print their valence"),
    "bench": ("edge.commands.bench", "per-stage timings and peak memory of the device path"),
    "run": ("edge.commands.run", "run the daemon: camera -> faces -> valence -> MQTT events"),
    "check-config": ("edge.commands.check_config", "validate a daemon config file"),
    "config-schema": ("edge.commands.config_schema", "print the JSON Schema of the config (or --wire: of MQTT payloads)"),
    "subscribe": ("edge.commands.subscribe", "watch a daemon's MQTT events live"),
    "demo": ("edge.commands.demo", "zero-setup demo: broker + daemon on a synthesised clip + live events"),
    "package": ("edge.commands.package", "build an offline install kit for a Raspberry Pi (or this machine)"),
    "deploy": ("edge.commands.deploy", "install a kit on Pis over SSH: atomic switch, readiness check, rollback"),
    "calibrate": ("calibration.commands.calibrate", "build an int8 calibration set through the device crop path"),
    "convert": ("convert.commands.convert", "Keras/SavedModel -> pruned full-int8 bundle with validation report"),
    "eval": ("convert.commands.eval", "accuracy of a bundle on labelled faces or photos, as on the device"),
    "compare": ("convert.commands.compare", "two bundles sample by sample on the same labelled data (exact McNemar)"),
    "train": ("convert.commands.train", "train a valence classifier from scratch (workstation, needs TensorFlow)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-edge",
        description="Facial-expression valence on the edge: int8 models, BlazeFace, MQTT events.",
    )
    parser.add_argument("--version", action="version", version=f"emotion-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # add_arguments is cheap: command modules import heavy things inside run().
        try:
            importlib.import_module(module).add_arguments(p)
        except ImportError as exc:
            # One broken or absent command must not take the others down.
            p.set_defaults(_unavailable=f"command {name!r} is unavailable here: {exc}")
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "_unavailable", None):
        print(f"emotion-edge: error: {args._unavailable}", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except EmotionEdgeError as exc:
        print(f"emotion-edge {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
