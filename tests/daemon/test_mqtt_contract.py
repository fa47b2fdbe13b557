"""The MQTT contract against a real Mosquitto: events, retained state/availability, outages, Last Will."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from daemon.brokers import Broker, Recorder, wait_for
from daemon.scripted import (
    EXPECTED,
    SEQUENCE,
    ListSource,
    cycling_frames,
    scripted_pipeline,
)

from edge.config import validate_config
from edge.daemon import Daemon

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def make_config(port: int, camera: str = "cam1", **mqtt: object):
    return validate_config({
        "camera": {"id": camera, "source": "scripted", "on_end": "stop", "every_frame": True,
                   "watchdog_s": 5, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
                 "stats_interval_s": 0.5, **mqtt},
    })


def start_daemon(cfg, source_factory) -> tuple[Daemon, threading.Thread]:
    d = Daemon(cfg, pipeline=scripted_pipeline(), source_factory=source_factory)
    t = threading.Thread(target=d.run, name="daemon-under-test")
    t.start()
    return d, t


def events(rec: Recorder) -> list[dict]:
    return [json.loads(p) for p in rec.payloads("/events")]


def test_scripted_clip_gives_new_update_end(broker: Broker) -> None:
    rec = Recorder(broker.port, ["emotion_edge/#"])
    d, t = start_daemon(make_config(broker.port), lambda: ListSource(SEQUENCE))
    t.join(timeout=30)
    assert not t.is_alive()
    assert rec.wait_for(lambda: len(rec.payloads("/events")) >= 3 and rec.payloads("/availability")[-1:] == [b"offline"])
    got = events(rec)
    assert [(e["type"], e["label"], e["previous_label"]) for e in got] == EXPECTED
    assert [e["seq"] for e in got] == [1, 2, 3]
    assert len({e["id"] for e in got}) == 1
    assert all(e["camera"] == "cam1" and e["model"] == "scripted" and e["schema_version"] == 1 for e in got)
    assert got[2]["end_time"] is not None and got[2]["end_time"] >= got[2]["start_time"]
    box = got[0]["box"]
    assert box == pytest.approx({"x": 0.3, "y": 0.25, "w": 0.4, "h": 0.5}, abs=1e-3)
    states = [json.loads(p) for p in rec.payloads("/state")]
    labels = [s["label"] for s in states]
    # positive while the face is in, negative after the update, none when it left.
    assert labels.index("positive") < labels.index("negative") and labels[-1] == "none"
    assert d.publisher.counters.published == 3 and d.publisher.counters.dropped == 0
    rec.close()


def test_retained_state_and_availability_are_republished_after_broker_restart(broker: Broker) -> None:
    # A broker without persistence forgets every retained message on restart: what a new
    # subscriber then sees can only come from the daemon's replay on reconnect.
    stop = threading.Event()
    cfg = make_config(broker.port)
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource([SEQUENCE[2]], fps=50, loop=True))
    t = threading.Thread(target=d.run)
    t.start()
    try:
        rec = Recorder(broker.port, ["emotion_edge/#"])
        assert rec.wait_for(lambda: any(json.loads(p)["label"] == "positive" for p in rec.payloads("/state")))
        rec.close()
        broker.restart()
        assert d.publisher.wait_connected(10)
        # Subscribe after the replay, so what arrives must be retained by the broker.
        assert wait_for(lambda: d.publisher.counters.replays >= 2)
        rec2 = Recorder(broker.port, ["emotion_edge/cam1/availability", "emotion_edge/cam1/state"])
        assert rec2.wait_for(lambda: rec2.payloads("/availability") and rec2.payloads("/state"))
        with rec2.lock:
            retained = {topic: (payload, r) for topic, payload, r in rec2.messages}
        assert retained["emotion_edge/cam1/availability"] == (b"online", True)
        state_payload, state_retained = retained["emotion_edge/cam1/state"]
        state = json.loads(state_payload)
        assert state_retained and state["label"] == "positive" and state["faces"] == 1
        assert d.publisher.counters.reconnects == 1
        rec2.close()
    finally:
        stop.set()
        t.join(timeout=10)


def test_broker_restart_mid_run_loses_no_event(persistent_broker: Broker) -> None:
    broker = persistent_broker
    # A persistent session with QoS1 keeps what is published while the subscriber reconnects.
    rec = Recorder(broker.port, ["emotion_edge/cam1/events"], client_id="contract-test-sub", persistent=True)
    stop = threading.Event()
    cfg = make_config(broker.port)
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource(cycling_frames(3), fps=200, loop=True))
    t = threading.Thread(target=d.run)
    t.start()
    try:
        assert rec.wait_for(lambda: len(rec.payloads("/events")) >= 20)
        broker.stop()
        time.sleep(1.0)  # the daemon keeps producing events while the broker is away
        during_outage = d.out.seq
        broker.start()
        assert d.publisher.wait_connected(10)
        assert rec.wait_for(lambda: len(rec.payloads("/events")) >= during_outage + 20, timeout=30)
    finally:
        stop.set()
        t.join(timeout=10)
    sent = d.out.seq
    acked = set(d.publisher.counters.acked_keys)
    assert d.publisher.counters.dropped == 0
    assert acked == set(range(1, sent + 1)), "the broker acknowledged every event the daemon published"
    assert rec.wait_for(lambda: {json.loads(p)["seq"] for p in rec.payloads("/events")} >= acked, timeout=15)
    received = [json.loads(p)["seq"] for p in rec.payloads("/events")]
    assert set(received) == set(range(1, sent + 1))
    assert during_outage > 20, "events were produced while the broker was down"
    print(f"\nbroker restart: {sent} events published, {len(received)} received ({len(received) - len(set(received))} "
          "QoS1 redeliveries)")
    rec.close()


def test_broker_down_at_start_is_waited_for(tmp_path: Path) -> None:
    from daemon.brokers import MOSQUITTO

    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    broker = Broker(tmp_path)
    stop = threading.Event()
    d = Daemon(make_config(broker.port), pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource(cycling_frames(3), fps=100, loop=True))
    t = threading.Thread(target=d.run)
    t.start()
    try:
        time.sleep(1.5)
        assert t.is_alive() and not d.publisher.connected
        broker.start()
        rec = Recorder(broker.port, ["emotion_edge/#"])
        assert rec.wait_for(lambda: rec.payloads("/availability") == [b"online"] and rec.payloads("/events"))
        rec.close()
    finally:
        stop.set()
        t.join(timeout=10)
        broker.stop()


def _spawn(port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{HERE.parent}"}
    return subprocess.Popen([sys.executable, str(HERE / "run_scripted.py"), str(port), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_makes_the_broker_deliver_offline(broker: Broker) -> None:
    rec = Recorder(broker.port, ["emotion_edge/cam1/availability"])
    proc = _spawn(broker.port)
    try:
        assert rec.wait_for(lambda: rec.payloads("/availability")[-1:] == [b"online"], timeout=30), proc.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert rec.wait_for(lambda: rec.payloads("/availability")[-1:] == [b"offline"], timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.close()
    # A late subscriber sees the retained offline too.
    late = Recorder(broker.port, ["emotion_edge/cam1/availability"])
    assert late.wait_for(lambda: late.payloads("/availability") == [b"offline"])
    late.close()


def test_sigterm_ends_open_tracks_goes_offline_and_exits_zero(broker: Broker) -> None:
    rec = Recorder(broker.port, ["emotion_edge/cam1/#"])
    proc = _spawn(broker.port, "face")  # a face stays in view: its track is open at SIGTERM
    try:
        assert rec.wait_for(lambda: any(json.loads(p)["type"] == "new" for p in rec.payloads("/events")), timeout=30)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\nSIGTERM -> exit in {elapsed:.2f} s")
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    assert rec.wait_for(lambda: rec.payloads("/availability")[-1:] == [b"offline"])
    evs = events(rec)
    assert [e["type"] for e in evs] == ["new", "end"]
    assert json.loads(rec.payloads("/state")[-1])["label"] == "none"
    rec.close()


def test_sigterm_while_the_broker_is_down_still_exits_zero() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _spawn(port, "face")
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # SIGTERM while the daemon waits for the broker at start
            if "MQTT: connecting" in line:
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\nSIGTERM with no broker -> exit in {time.monotonic() - t0:.2f} s")
    assert rc == 0


def test_queue_overflow_during_an_outage_is_counted_never_silent(tmp_path: Path) -> None:
    from daemon.brokers import MOSQUITTO

    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    broker = Broker(tmp_path)
    stop = threading.Event()
    cfg = make_config(broker.port, queue_size=10, connect_wait_s=0)
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource(cycling_frames(2), fps=300, loop=True))
    th = threading.Thread(target=d.run)
    th.start()
    try:
        assert wait_for(lambda: d.out.seq > 60)  # far more events than the queue holds, broker down
        broker.start()
        rec = Recorder(broker.port, ["emotion_edge/cam1/events", "emotion_edge/cam1/stats"])
        assert d.publisher.wait_connected(10)
        assert rec.wait_for(lambda: any(json.loads(p)["events_dropped"] > 0 for p in rec.payloads("/stats")))
    finally:
        stop.set()
        th.join(timeout=10)
        broker.stop()
    c = d.publisher.counters
    sent = d.out.seq
    assert c.dropped > 0
    # Every event is accounted for: acknowledged by the broker, or counted as dropped.
    assert c.published + c.dropped == sent
    rec.close()
