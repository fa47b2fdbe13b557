#!/usr/bin/env python3
"""Benchmark the daemon's MQTT path on loopback (prints figures; asserts nothing about speed).

1. frame -> broker latency: the real pipeline (a bundle, BlazeFace, tracker) on a clip where a
   packaged portrait appears and leaves every few frames; each event's ``frame_time`` (capture)
   is compared with the time a subscriber on the same machine received it. p50 / p99.
2. sustained events/s: a stub pipeline that emits one event per frame, frames as fast as the
   loop takes them; events/s acknowledged by the broker and received by a subscriber, and
   whether any was lost.

usage: python scripts/bench_mqtt.py [--bundle DIR] [--seconds 10] [--mqtt mqtt://host:port]
Needs mosquitto (or --mqtt), and for part 1 a bundle (default: edge/models/default) and a
package that ships a portrait (matplotlib or scikit-image).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.comms.client import EventClient
from edge.config import validate_config
from edge.daemon import Daemon, build_pipeline
from edge.demo import LocalBroker, face_boxes, load_photos
from edge.pipeline import FrameResult
from edge.tracking import Track, TrackEvent


class _Frame:
    def __init__(self, image: np.ndarray, index: int) -> None:
        self.image, self.time, self.index = image, time.time(), index


class LoopSource:
    """Endless frames from a list, paced at ``fps`` (0 = as fast as read)."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        self.frames, self.fps, self.i, self.t0 = frames, fps, 0, time.monotonic()

    def read(self) -> _Frame:
        if self.fps:
            delay = self.t0 + self.i / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        f = _Frame(self.frames[self.i % len(self.frames)], self.i)
        self.i += 1
        return f

    def close(self) -> None:
        pass


class StubPipeline:
    """Emits one event per frame (label flips), so the MQTT path is all that is measured."""

    bundle_id = "stub"

    def __init__(self) -> None:
        self.track = Track(id=1, box=(0.3, 0.3, 0.3, 0.3), start_time=time.time(), last_time=time.time(), confirmed=True)
        self.n = 0

    def process(self, frame: np.ndarray, frame_time: float | None = None) -> FrameResult:
        self.n += 1
        self.track.label = ("positive", "negative")[self.n % 2]
        self.track.score = 0.9
        self.track.smoothed = np.array([0.9, 0.05, 0.05] if self.n % 2 == 0 else [0.05, 0.05, 0.9], np.float32)
        ev = TrackEvent("new" if self.n == 1 else "update", self.track, frame_time or time.time())
        return FrameResult(frame_time or time.time(), 640, 480, [], [ev], {"stub": 0.0})

    def flush(self, frame_time: float | None = None) -> list:
        return []

    def close(self) -> None:
        pass


def run_daemon(cfg, pipeline, frames, fps, seconds, camera):
    """Run the daemon for ``seconds`` with a subscriber; return (daemon, received messages, wall seconds)."""
    stop = threading.Event()
    with EventClient(cfg.mqtt.url, camera=camera, kinds=("events",), max_queue=0) as client:
        if not client.wait_connected(10):
            raise SystemExit(f"cannot connect to {cfg.mqtt.url}")
        d = Daemon(cfg, pipeline=pipeline, stop=stop, source_factory=lambda: LoopSource(frames, fps))
        th = threading.Thread(target=d.run)
        t0 = time.monotonic()
        th.start()
        time.sleep(seconds)
        stop.set()
        th.join()
        wall = time.monotonic() - t0
        received = list(client.messages(timeout=2.0))
    return d, received, wall


def config(url: str, camera: str, **tracker: object):
    return validate_config({"camera": {"id": camera, "source": "bench", "every_frame": True},
                            "mqtt": {"url": url, "queue_size": 100000, "stats_interval_s": 3600},
                            "tracker": tracker, "homeassistant": {"discovery": False}}, "bench")


def latency_bench(url: str, bundle: str | None, seconds: float, fps: float) -> None:
    import cv2

    cfg = config(url, "bench-latency", min_hits=1, max_misses=0)
    if bundle:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"bundle": Path(bundle)})})
    pipeline = build_pipeline(cfg)
    photos, paths = load_photos(None)
    (box,) = face_boxes(pipeline.detector, photos[:1], paths[:1])
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    s = 160 / w
    m = np.array([[s, 0, 320 - s * cx], [0, s, 230 - s * cy]], np.float32)
    face = cv2.warpAffine(photos[0], m, (640, 480), borderValue=(100, 100, 100))
    empty = np.full((480, 640, 3), 100, np.uint8)
    frames = [face, face, empty, empty]  # new on the 1st face frame, end on the 1st empty frame
    d, received, wall = run_daemon(cfg, pipeline, frames, fps, seconds, "bench-latency")
    lat = sorted((m.received_at - m.payload.frame_time) * 1e3 for m in received)
    st = d.stats()
    print(f"\n[1] frame -> broker -> subscriber latency, real pipeline ({pipeline.bundle_id}), 640x480, {fps:g} fps, "
          f"{wall:.1f} s")
    print(f"    events {len(lat)}; latency p50 {np.percentile(lat, 50):.2f} ms, p90 {np.percentile(lat, 90):.2f} ms, "
          f"p99 {np.percentile(lat, 99):.2f} ms, max {lat[-1]:.2f} ms")
    c = d.counters
    print(f"    of which the pipeline takes {c.total_frame_ms / max(1, c.processed):.2f} ms per frame (mean of "
          f"{c.processed} frames); dropped {st.events_dropped}")


def throughput_bench(url: str, seconds: float) -> None:
    cfg = config(url, "bench-rate")
    frame = np.zeros((48, 64, 3), np.uint8)
    d, received, wall = run_daemon(cfg, StubPipeline(), [frame], 0, seconds, "bench-rate")
    sent = d.out.seq
    seqs = {m.payload.seq for m in received}
    acked = d.publisher.counters.published
    lat = [(m.received_at - m.payload.frame_time) * 1e3 for m in received]
    print(f"\n[2] sustained events/s (stub pipeline: one event per frame, QoS1), {wall:.1f} s")
    print(f"    published {sent} events = {sent / wall:.0f} events/s; acknowledged {acked}; "
          f"received {len(seqs)} distinct ({len(received) - len(seqs)} redeliveries); "
          f"lost {len(set(range(1, sent + 1)) - seqs)}; dropped (queue full) {d.publisher.counters.dropped}")
    if lat:
        print(f"    latency under this load: p50 {statistics.median(lat):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", help="bundle for the latency run (default: the shipped one)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0, help="camera rate for the latency run")
    ap.add_argument("--mqtt", help="use this broker instead of a throwaway local mosquitto")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    broker = contextlib.nullcontext() if args.mqtt else LocalBroker()
    with broker as b:
        url = args.mqtt or b.url
        print(f"broker {url}; python {sys.version.split()[0]}")
        if not args.skip_latency:
            latency_bench(url, args.bundle, args.seconds, args.fps)
        throughput_bench(url, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
