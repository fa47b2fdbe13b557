"""``emotion-edge demo``: broker + daemon on a clip synthesised at run time + the events a subscriber receives."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", help="model bundle (default: the bundle shipped with the package)")
    parser.add_argument("--mqtt", metavar="URL", help="use this broker instead of starting one")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto",
                        help="broker to start: mosquitto, a minimal embedded one, or auto (mosquitto if installed)")
    parser.add_argument("--photo", action="append", type=Path, metavar="FILE",
                        help="face photo(s) to animate (up to 2; default: portraits shipped by matplotlib / scikit-image)")
    parser.add_argument("--camera-id", default="demo", help="camera id in the topics (default %(default)s)")
    parser.add_argument("--save-clip", type=Path, metavar="FILE.mp4", help="also write the synthesised clip to a video file")


def run(args: argparse.Namespace) -> int:
    import statistics
    import threading

    from ..comms.client import EventClient
    from ..comms.schema import Event
    from ..config import validate_config
    from ..daemon import Daemon, build_pipeline
    from ..demo import ClipSource, face_boxes, load_photos, synthesise_clip
    from .subscribe import format_message

    photos, paths = load_photos(args.photo)
    cfg = validate_config({
        "camera": {"id": args.camera_id, "source": "demo-clip", "on_end": "stop", "every_frame": True},
        "model": {"bundle": args.bundle} if args.bundle else {},
        "mqtt": {"url": args.mqtt or "mqtt://127.0.0.1:1883", "stats_interval_s": 5},
    }, "demo")
    pipeline = build_pipeline(cfg)
    clip = synthesise_clip(photos, face_boxes(pipeline.detector, photos, paths))
    if args.save_clip:
        _write_clip(clip, args.save_clip)
    print(f"model   {pipeline.bundle_id}")
    print(f"photos  {', '.join(p.name for p in paths)}")
    print(f"clip    {clip.description}: empty scene, a face, a cross-fade to another face, empty scene")

    broker, kind = _broker(args)
    with broker as b:
        if b is not None:
            cfg = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"url": b.url})})
        print(f"broker  {cfg.mqtt.url}" + (f" ({kind}, started for the demo)" if b is not None else ""))
        print(f"topics  {cfg.mqtt.prefix}/{cfg.camera.id}/{{events,state,stats,availability}}"
              f"  (watch them: emotion-edge subscribe --mqtt {cfg.mqtt.url})\n")
        with EventClient(cfg.mqtt.url, camera=cfg.camera.id, prefix=cfg.mqtt.prefix,
                         kinds=("events", "state", "availability")) as client:
            if not client.wait_connected(10):
                print(f"emotion-edge demo: error: cannot connect to {cfg.mqtt.url}")
                return 1
            daemon = Daemon(cfg, pipeline=pipeline, source_factory=lambda: ClipSource(clip))
            th = threading.Thread(target=daemon.run, name="daemon")
            th.start()
            latencies, events = [], []
            done = False
            while not done:
                done = not th.is_alive()
                for m in client.messages(timeout=0.5 if not done else 1.0):
                    print(format_message(m), flush=True)
                    if isinstance(m.payload, Event):
                        events.append(m.payload)
                        latencies.append((m.received_at - m.payload.frame_time) * 1e3)
                    if m.kind == "availability" and m.payload == "offline":
                        break
            th.join()
    kinds = {k: sum(e.type == k for e in events) for k in ("new", "update", "end")}
    print(f"\n{len(events)} events received: {kinds['new']} new, {kinds['update']} update, {kinds['end']} end", end="")
    if latencies:
        print(f"; frame -> subscriber latency median {statistics.median(latencies):.1f} ms", end="")
    print()
    st = daemon.stats()
    print(f"daemon: {daemon.counters.processed} frames processed, "
          f"{st.events_published} events acknowledged by the broker, {st.events_dropped} dropped")
    return 0 if events else 1


def _broker(args: argparse.Namespace):  # noqa: ANN202
    """(context manager giving the broker or None, description)."""
    import contextlib

    from ..comms.minibroker import MiniBroker
    from ..demo import LocalBroker
    from ..errors import ConfigError

    if args.mqtt:
        return contextlib.nullcontext(), "given"
    if args.broker in ("auto", "mosquitto"):
        try:
            return LocalBroker(), "mosquitto"
        except ConfigError:
            if args.broker == "mosquitto":
                raise
    return MiniBroker(), "embedded minimal broker; install mosquitto for a real one"


def _write_clip(clip, path: Path) -> None:
    import cv2

    h, w = clip.frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (w, h))
    for f in clip.frames:
        out.write(f)
    out.release()
