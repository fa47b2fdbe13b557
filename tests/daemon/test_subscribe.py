"""`emotion-edge subscribe` and the Python client helper, against a real broker and daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from daemon.brokers import Broker
from daemon.scripted import EXPECTED, SEQUENCE, ListSource, scripted_pipeline

from edge.comms.client import EventClient, parse_payload
from edge.comms.schema import Event, State
from edge.config import validate_config
from edge.daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]


def run_clip(broker: Broker) -> None:
    cfg = validate_config({"camera": {"id": "cam1", "source": "scripted", "on_end": "stop", "every_frame": True},
                           "mqtt": {"url": broker.url}})
    th = threading.Thread(target=Daemon(cfg, pipeline=scripted_pipeline(),
                                        source_factory=lambda: ListSource(SEQUENCE)).run)
    th.start()
    th.join(timeout=30)


def test_client_yields_typed_events(broker: Broker) -> None:
    with EventClient(broker.url, camera="cam1") as client:
        assert client.wait_connected(10)
        run_clip(broker)
        msgs = list(client.messages(timeout=2))
    evs = [m.payload for m in msgs if isinstance(m.payload, Event)]
    assert [(e.type, e.label, e.previous_label) for e in evs] == EXPECTED
    assert any(isinstance(m.payload, State) and m.payload.label == "negative" for m in msgs)
    assert [m.payload for m in msgs if m.kind == "availability"][-1] == "offline"


def test_client_ignores_unknown_keys_and_drops_malformed(caplog) -> None:
    good = {"type": "new", "id": 1, "seq": 1, "camera": "c", "label": "positive", "score": 0.9,
            "scores": {"positive": 0.9, "neutral": 0.05, "negative": 0.05}, "box": {"x": 0, "y": 0, "w": 0.5, "h": 0.5},
            "start_time": 1.0, "frame_time": 1.0, "model": "m", "from_the_future": [1, 2]}
    ev = parse_payload("events", json.dumps(good).encode())
    assert isinstance(ev, Event) and ev.label == "positive"
    assert parse_payload("events", b"{not json") is None
    assert parse_payload("events", json.dumps({**good, "label": "ecstatic"}).encode()) is None
    assert "malformed" in caplog.text


def test_subscribe_command_prints_json_lines_and_readable_lines(broker: Broker) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outs = {}
    for mode in ("--json", None):
        args = [sys.executable, "-m", "edge", "subscribe", "--mqtt", broker.url, "--camera", "cam1", "--count", "3",
                "--timeout", "20"] + ([mode] if mode else [])
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "listening to camera cam1" in proc.stderr.readline()
        run_clip(broker)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        outs[mode] = out
    lines = [json.loads(l) for l in outs["--json"].splitlines()]
    evs = [l["payload"] for l in lines if l["kind"] == "events"]
    assert [(e["type"], e["label"]) for e in evs] == [(t, l) for t, l, _ in EXPECTED]
    readable = [l for l in outs[None].splitlines() if " face #" in l]
    assert len(readable) == 3
    assert " new " in readable[0] and "positive" in readable[0]
    assert "positive -> negative" in readable[1] and " end " in readable[2]
