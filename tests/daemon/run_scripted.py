"""A daemon process on a scripted, endless source (for the signal and Last Will tests).

usage: run_scripted.py PORT [face|cycle] [JSON]
  face: one face stays in view; cycle (default): faces come and go
  JSON: config overrides merged section by section (e.g. '{"mqtt": {"stats_interval_s": 5}}')
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from daemon.scripted import ListSource, cycling_frames, frame_for, scripted_pipeline

from edge.config import validate_config
from edge.daemon import Daemon


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    port = int(sys.argv[1])
    frames = [frame_for(True)] if sys.argv[2:3] == ["face"] else cycling_frames(5)
    raw: dict = {
        "camera": {"id": "cam1", "source": "scripted", "every_frame": True},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "keepalive_s": 5},
    }
    for section, values in (json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}).items():
        raw.setdefault(section, {}).update(values)
    cfg = validate_config(raw)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop, source_factory=lambda: ListSource(frames, fps=30, loop=True))
    return d.run()


if __name__ == "__main__":
    sys.exit(main())
