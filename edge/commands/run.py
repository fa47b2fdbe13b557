"""``emotion-edge run``: the daemon (camera -> faces -> valence -> MQTT events)."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML config (see `emotion-edge config-schema`)")
    parser.add_argument("--source", help="camera source (overrides camera.source): /dev/video0, rtsp://..., a file")
    parser.add_argument("--camera-id", help="camera id used in topics (overrides camera.id; default 'camera')")
    parser.add_argument("--bundle", help="model bundle directory or archive (overrides model.bundle)")
    parser.add_argument("--mqtt", metavar="URL", help="broker, mqtt://host:port or mqtts://host:port (overrides mqtt.url)")
    parser.add_argument("--liveview", metavar="PORT", type=int,
                        help="serve an annotated MJPEG stream on http://127.0.0.1:PORT/ (off by default)")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as dotted config keys."""
    o: dict[str, Any] = {}
    if args.source:
        o["camera.source"] = args.source
    if args.camera_id:
        o["camera.id"] = args.camera_id
    if args.bundle:
        o["model.bundle"] = args.bundle
    if args.mqtt:
        o["mqtt.url"] = args.mqtt
    if getattr(args, "liveview", None):
        o["liveview.enabled"] = True
        o["liveview.port"] = args.liveview
    return o


def load(args: argparse.Namespace):
    from ..config import config_from_options, load_config
    from ..errors import ConfigError

    overrides = overrides_from_args(args)
    if args.config:
        return load_config(args.config, overrides)
    if "camera.source" not in overrides:
        raise ConfigError("give --config FILE, or at least --source (e.g. --source /dev/video0)")
    overrides.setdefault("camera.id", "camera")
    return config_from_options(overrides)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ..daemon import Daemon

    cfg = load(args)
    if args.verbose == 0:
        logging.getLogger().setLevel(cfg.log_level.upper())
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    liveview = None
    on_frame = None
    if cfg.liveview.enabled:
        from ..liveview import LiveView

        liveview = LiveView(cfg.liveview)
        liveview.start()
        on_frame = liveview.update
    try:
        return Daemon(cfg, stop=stop, on_frame=on_frame).run()
    finally:
        if liveview is not None:
            liveview.close()
