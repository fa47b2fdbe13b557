"""``emotion-edge subscribe``: watch a daemon's events live in the terminal (or as JSON lines)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt", metavar="URL", default="mqtt://127.0.0.1:1883", help="broker (default %(default)s)")
    parser.add_argument("--camera", metavar="ID", help="one camera (default: all)")
    parser.add_argument("--prefix", default="emotion_edge", help="topic prefix (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line (topic, payload)")
    parser.add_argument("--all", action="store_true", help="also show stats messages")
    parser.add_argument("--timeout", type=float, help="exit after this many seconds without a message")
    parser.add_argument("--count", type=int, help="exit after this many events")


def format_message(m) -> str:
    """One readable line per message."""
    import datetime as dt

    from ..comms.schema import CameraStatus, Event, State, Stats

    p = m.payload
    clock = dt.datetime.fromtimestamp(getattr(p, "frame_time", None) or getattr(p, "time", None) or m.received_at)
    ts = clock.strftime("%H:%M:%S.%f")[:-3]
    if isinstance(p, Event):
        change = f"{p.previous_label} -> {p.label}" if p.type == "update" else p.label
        s = p.scores
        extra = f" after {p.end_time - p.start_time:.1f} s" if p.type == "end" and p.end_time else ""
        return (f"{ts} {m.camera:<10} face #{p.id:<3} {p.type:<6} {change:<22} {p.score:5.2f}  "
                f"(+{s.positive:.2f} ={s.neutral:.2f} -{s.negative:.2f}){extra}")
    if isinstance(p, State):
        return f"{ts} {m.camera:<10} state  {p.label} ({p.faces} face{'s' if p.faces != 1 else ''})"
    if isinstance(p, CameraStatus):
        return f"{ts} {m.camera:<10} camera {p.status}" + (f": {p.error}" if p.error else "")
    if isinstance(p, Stats):
        return (f"{ts} {m.camera:<10} stats  camera {p.camera_fps:.1f} fps, processed {p.processed_fps:.1f} fps, "
                f"{p.frame_ms:.1f} ms/frame, events {p.events_published} sent / {p.events_dropped} dropped")
    return f"{ts} {m.camera:<10} {m.kind} {p}"


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from ..comms.client import EventClient

    kinds = ("events", "state", "camera", "availability") + (("stats",) if args.all or args.json else ())
    events = 0
    with EventClient(args.mqtt, camera=args.camera, prefix=args.prefix, kinds=kinds) as client:
        if not client.wait_connected(timeout=args.timeout or 10):
            print(f"emotion-edge subscribe: error: no broker at {args.mqtt}", file=sys.stderr)
            return 1
        which = f"camera {args.camera}" if args.camera else "all cameras"
        print(f"listening to {which} on {args.mqtt} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        for m in client.messages(timeout=args.timeout):
            if args.json:
                p = m.payload
                body = p if isinstance(p, str) else p.model_dump(mode="json")
                print(json.dumps({"topic": m.topic, "camera": m.camera, "kind": m.kind, "retained": m.retained, "payload": body}),
                      flush=True)
            else:
                print(format_message(m), flush=True)
            if m.kind == "events":
                events += 1
                if args.count and events >= args.count:
                    break
    return 0
