"""The demo's embedded broker speaks enough MQTT for the daemon's contract (checked with paho and the daemon)."""

from __future__ import annotations

import json
import threading

import pytest

from daemon.brokers import Recorder
from daemon.scripted import EXPECTED, SEQUENCE, ListSource, scripted_pipeline
from edge.comms.minibroker import MiniBroker, topic_matches
from edge.config import validate_config
from edge.daemon import Daemon


@pytest.mark.parametrize(("sub", "topic", "ok"), [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a/b/c", True),
    ("#", "a", True), ("+/+", "a/b", True), ("a/b", "a/c", False), ("#", "$SYS/x", False), ("a/#", "a", True),
])
def test_topic_matching(sub: str, topic: str, ok: bool) -> None:
    assert topic_matches(sub, topic) is ok


def test_daemon_contract_over_the_embedded_broker() -> None:
    with MiniBroker() as b:
        rec = Recorder(b.port, ["emotion_edge/#"])
        cfg = validate_config({"camera": {"id": "cam1", "source": "s", "on_end": "stop", "every_frame": True},
                               "mqtt": {"url": b.url}})
        d = Daemon(cfg, pipeline=scripted_pipeline(), source_factory=lambda: ListSource(SEQUENCE))
        th = threading.Thread(target=d.run)
        th.start()
        th.join(timeout=30)
        assert rec.wait_for(lambda: rec.payloads("/availability")[-1:] == [b"offline"])
        evs = [json.loads(p) for p in rec.payloads("/events")]
        assert [(e["type"], e["label"], e["previous_label"]) for e in evs] == EXPECTED
        assert d.publisher.counters.published == 3  # PUBACKs came back
        rec.close()
        late = Recorder(b.port, ["emotion_edge/cam1/availability", "emotion_edge/cam1/state"])
        assert late.wait_for(lambda: len(late.messages) == 2)
        assert all(retained for _, _, retained in late.messages)
        assert dict((t.rsplit("/", 1)[1], p) for t, p, _ in late.messages)["availability"] == b"offline"
        late.close()


def test_last_will_on_unclean_disconnect() -> None:
    import paho.mqtt.client as mqtt

    with MiniBroker() as b:
        rec = Recorder(b.port, ["dev/avail"])
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dying")
        c.will_set("dev/avail", "offline", qos=1, retain=True)
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        c.publish("dev/avail", "online", qos=1, retain=True).wait_for_publish(5)
        c.loop_stop()
        c.socket().close()  # no DISCONNECT: as if the process died
        assert rec.wait_for(lambda: rec.payloads("avail")[-1:] == [b"offline"])
        rec.close()
