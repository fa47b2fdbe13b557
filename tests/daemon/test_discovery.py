"""Home Assistant device discovery: the payload key by key, and re-sending when HA comes online."""

from __future__ import annotations

import json
import threading

import pytest
from daemon.brokers import Broker, Recorder, wait_for
from daemon.scripted import ListSource, frame_for, scripted_pipeline

from edge import __version__
from edge.comms.discovery import discovery_payload
from edge.comms.topics import Topics
from edge.config import validate_config
from edge.daemon import Daemon

# The documented device-discovery format (HA 2024.11+): abbreviations for the device and origin maps.
DEVICE_KEYS = {"ids", "name", "mf", "mdl", "sw"}
ORIGIN_KEYS = {"name", "sw", "url"}
PLATFORMS = {"event", "sensor", "binary_sensor"}


def test_discovery_payload_matches_the_device_discovery_format() -> None:
    t = Topics("emotion_edge", "porch")
    p = discovery_payload(t, "Porch", model="fer-valence-v1")
    assert set(p) == {"dev", "o", "cmps", "availability_topic", "payload_available", "payload_not_available", "qos"}
    assert set(p["dev"]) == DEVICE_KEYS
    assert p["dev"]["ids"] == ["emotion_edge_porch"] and p["dev"]["name"] == "Porch" and p["dev"]["sw"] == __version__
    assert set(p["o"]) == ORIGIN_KEYS and p["o"]["name"] == "emotion-edge"
    assert p["availability_topic"] == "emotion_edge/porch/availability"
    assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")

    cmps = p["cmps"]
    uids = [c["unique_id"] for c in cmps.values()]
    assert len(set(uids)) == len(uids) and all(u.startswith("emotion_edge_porch_") for u in uids)
    for key, c in cmps.items():
        assert c["p"] in PLATFORMS, key
        assert c["unique_id"] == key
        assert c["state_topic"].startswith("emotion_edge/porch/")
        assert "value_template" in c and c["name"]

    by_platform: dict[str, list[dict]] = {}
    for c in cmps.values():
        by_platform.setdefault(c["p"], []).append(c)
    (event,) = by_platform["event"]
    assert event["event_types"] == ["positive", "neutral", "negative"] and event["state_topic"] == t.events
    (mood,) = [c for c in by_platform["sensor"] if c.get("device_class") == "enum"]
    assert mood["state_topic"] == t.state
    assert set(mood["options"]) == {"positive", "neutral", "negative", "uncertain", "none"}
    (presence,) = by_platform["binary_sensor"]
    assert presence["device_class"] in ("occupancy", "presence") and presence["state_topic"] == t.state
    confidence = [c for c in by_platform["sensor"] if c.get("unit_of_measurement") == "%"]
    assert len(confidence) == 1 and confidence[0]["state_topic"] == t.state
    diag = [c for c in cmps.values() if c.get("entity_category") == "diagnostic"]
    assert {c["state_topic"] for c in diag} == {t.stats}
    assert any(c.get("unit_of_measurement") == "fps" for c in diag)
    assert any(c.get("unit_of_measurement") == "ms" for c in diag)


def test_event_template_fires_only_on_definite_labels() -> None:
    # Home Assistant renders templates with Jinja2 (its builtin tojson filter included).
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment()
    tpl = env.from_string(discovery_payload(Topics("p", "c"))["cmps"]["emotion_edge_c_expression"]["value_template"])

    def render(ev: dict) -> str:
        return tpl.render(value_json=ev).strip()

    assert json.loads(render({"type": "new", "label": "positive", "id": 3, "score": 0.9}))["event_type"] == "positive"
    assert render({"type": "end", "label": "positive", "id": 3, "score": 0.9}) == ""
    assert render({"type": "update", "label": "uncertain", "id": 3, "score": 0.4}) == ""


def test_discovery_is_retained_and_resent_when_home_assistant_comes_online(broker: Broker) -> None:
    cfg = validate_config({"camera": {"id": "porch", "source": "scripted", "every_frame": True},
                           "mqtt": {"url": broker.url}})
    stop = threading.Event()
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource([frame_for(False)], fps=20, loop=True))
    th = threading.Thread(target=d.run)
    th.start()
    try:
        assert d.publisher.wait_connected(10)
        assert wait_for(lambda: d.publisher.counters.replays >= 1)
        rec = Recorder(broker.port, ["homeassistant/device/porch/config"])
        assert rec.wait_for(lambda: len(rec.messages) == 1)
        _, payload, retained = rec.messages[0]
        assert retained and json.loads(payload)["dev"]["ids"] == ["emotion_edge_porch"]
        rec.client.publish("homeassistant/status", "online", qos=1)
        assert rec.wait_for(lambda: len(rec.messages) == 2)
        assert rec.messages[1][2] is False and json.loads(rec.messages[1][1]) == json.loads(payload)
        rec.close()
    finally:
        stop.set()
        th.join(timeout=10)
