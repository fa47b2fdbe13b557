"""Bad input (hypothesis): the config loader, bundle.json, the MQTT messages the daemon subscribes to, stream URLs.

The property everywhere: the input is accepted, or refused with one of our errors (``edge.errors.*``) whose
message says what is wrong; nothing else escapes. Each test records its example count in the fault table.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reliability.faults import record

from edge.bundle import parse_manifest
from edge.config import EdgeConfig, load_config, parse_config, validate_config
from edge.errors import BundleError, ConfigError, EmotionEdgeError, SourceError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
_counts: dict[str, list[int]] = {}


def _tally(name: str, refused: bool) -> None:
    c = _counts.setdefault(name, [0, 0])
    c[0] += 1
    c[1] += refused


def _clear(exc: EmotionEdgeError) -> None:
    """A rejection must be a readable sentence, not a repr or an empty string."""
    text = str(exc)
    assert len(text) >= 10 and "Traceback" not in text and not text.startswith("<"), text


# ------------------------------------------------------------------ config

SECTIONS = {
    "camera": ["id", "name", "source", "options", "max_fps", "watchdog_s", "reconnect_min_s", "reconnect_max_s",
               "on_end", "every_frame"],
    "mqtt": ["url", "prefix", "client_id", "username", "password_file", "tls", "keepalive_s", "queue_size",
             "connect_wait_s", "stats_interval_s", "reconnect_min_s", "reconnect_max_s"],
    "model": ["bundle", "threads", "score_threshold", "min_face_px", "max_faces", "classify_every"],
    "tracker": ["iou_match", "min_hits", "max_misses", "ema_alpha", "hysteresis"],
    "liveview": ["enabled", "host", "port", "max_fps", "quality"],
    "homeassistant": ["discovery", "prefix"],
}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                    st.sampled_from(["mqtt://h:1", "mqtts://u:p@h", "${NOPE}", "${X:-1}", "0.0.0.0", "-1", "1e309",
                                     "/dev/video0", "rtsp://127.0.0.1:1/x", "picamera2:0", "tcp://", "..", "\x00"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
BASE = {"camera": {"id": "porch", "source": "/dev/video0"}}


def _on_base(doc: dict) -> dict:
    """Fuzzed sections merged into a valid config, so that some examples pass and reach deeper checks."""
    out = {k: dict(v) for k, v in BASE.items()}
    for sec, val in doc.items():
        if isinstance(val, dict) and isinstance(out.get(sec), dict):
            out[sec].update(val)
        else:
            out[sec] = val
    return out


config_docs = st.fixed_dictionaries({}, optional={
    sec: st.one_of(values, st.dictionaries(st.sampled_from(keys + ["typo_key"]), values, max_size=len(keys)),
                   st.dictionaries(st.sampled_from(keys), st.one_of(st.none(), st.booleans(), st.integers(0, 100)),
                                   max_size=2))
    for sec, keys in SECTIONS.items()
} | {"log_level": st.one_of(values, st.sampled_from(["debug", "info"])), "extra": values}).map(_on_base)


@FUZZ
@given(doc=config_docs)
def test_config_structure_fuzz(doc: dict) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    try:
        cfg = parse_config(text, "fuzz.yaml")
        assert isinstance(cfg, EdgeConfig)
        _tally("config (structured YAML)", False)
    except ConfigError as exc:
        _clear(exc)
        _tally("config (structured YAML)", True)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_config_text_fuzz(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml")
        _tally("config (raw text)", False)
    except ConfigError as exc:
        _clear(exc)
        _tally("config (raw text)", True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_config_file_bytes_fuzz(data: bytes, tmp_path: Path) -> None:
    p = tmp_path / "fuzz.yaml"
    p.write_bytes(data)
    try:
        load_config(p)
        _tally("config (file bytes)", False)
    except ConfigError as exc:
        _clear(exc)
        _tally("config (file bytes)", True)


# ------------------------------------------------------------------ bundle.json

GOOD = {
    "schema_version": 1, "id": "fuzz", "created": "2026-01-01",
    "classifier": {"file": "classifier.tflite", "sha256": "0" * 64},
    "preprocess": {"input_size": 48, "color": "gray"},
    "classes": ["happy", "neutral", "sad"],
    "valence": {"happy": "positive", "neutral": "neutral", "sad": "negative"},
}


def _mutations() -> st.SearchStrategy[dict]:
    def mutate(args: tuple) -> dict:
        doc = json.loads(json.dumps(GOOD))
        path, value, delete = args
        node = doc
        keys = path.split(".")
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                return doc
            node = node[k]
        if delete:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
        return doc

    paths = st.sampled_from(["schema_version", "id", "created", "classifier", "classifier.file", "classifier.sha256",
                             "classifier.bytes", "preprocess", "preprocess.input_size", "preprocess.color",
                             "preprocess.scale", "classes", "valence", "valence.sad", "output", "calibration",
                             "detector", "metrics", "unknown"])
    json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                         st.text(max_size=20)),
                               lambda i: st.one_of(st.lists(i, max_size=3), st.dictionaries(st.text(max_size=6), i, max_size=3)),
                               max_leaves=5)
    return st.tuples(paths, json_values, st.booleans()).map(mutate)


@FUZZ
@given(doc=_mutations())
def test_bundle_manifest_structure_fuzz(doc: dict) -> None:
    try:
        parse_manifest(json.dumps(doc), "bundle.json")
        _tally("bundle.json (mutated fields)", False)
    except BundleError as exc:
        _clear(exc)
        _tally("bundle.json (mutated fields)", True)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      _mutations().map(lambda d: json.dumps(d).encode()[: len(json.dumps(d)) // 2])))
def test_bundle_manifest_bytes_fuzz(data: bytes) -> None:
    try:
        parse_manifest(data, "bundle.json")
        _tally("bundle.json (raw bytes, truncated)", False)
    except BundleError as exc:
        _clear(exc)
        _tally("bundle.json (raw bytes, truncated)", True)


# ------------------------------------------------------------------ stream URLs

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


url_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=40, deadline=None)
@given(scheme=st.sampled_from(["rtsp", "rtsps", "http", "https", "RTSP", "rtmp", "udp", "tcp", "file", "gopher"]),
       userinfo=st.one_of(st.just(""), url_text.map(lambda u: u + "@")), path=url_text)
def test_stream_url_fuzz(scheme: str, userinfo: str, path: str) -> None:
    # Only 127.0.0.1 on a closed port: nothing leaves the machine, every open fails fast.
    from edge.sources import open_source

    url = f"{scheme}://{userinfo}127.0.0.1:{_closed_port()}/{path}"
    try:
        src = open_source(url, open_timeout=1.0, read_timeout=1.0)
        src.close()
        _tally("stream URLs (open_source)", False)
    except SourceError as exc:
        _clear(exc)
        _tally("stream URLs (open_source)", True)


@FUZZ
@given(spec=st.text(max_size=60).filter(lambda s: "://" not in s))
def test_source_spec_in_config_fuzz(spec: str) -> None:
    # The start-up check the daemon runs on camera.source (no camera is opened).
    from edge.daemon import check_source

    try:
        cfg = validate_config({"camera": {"id": "cam", "source": spec}})
        check_source(cfg)
        _tally("camera.source specs (check at start)", False)
    except (ConfigError, SourceError) as exc:
        _clear(exc)
        _tally("camera.source specs (check at start)", True)


safe = st.text(st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12)


@FUZZ
@given(user=safe, password=st.text(st.characters(exclude_characters="@/", exclude_categories=["Cs"]),
                                   min_size=4, max_size=20), path=safe)
def test_stream_url_password_is_never_shown(user: str, password: str, path: str) -> None:
    from edge.sources.stream import redact

    url = f"rtsp://{user}:{password}@127.0.0.1:554/{path}"
    assume(password not in f"rtsp://{user}:@127.0.0.1:554/{path}***")
    assert password not in redact(url)
    _tally("stream URL passwords (redacted in messages)", False)


# ------------------------------------------------------------------ MQTT input

def test_mqtt_messages_the_daemon_subscribes_to(broker, caplog: pytest.LogCaptureFixture) -> None:
    """Garbage on every topic the daemon listens to (Home Assistant birth), through a real broker."""
    import paho.mqtt.client as mqtt
    from daemon.brokers import Recorder, wait_for
    from daemon.scripted import ListSource, frame_for, scripted_pipeline

    from edge.daemon import Daemon

    payloads = st.one_of(st.binary(max_size=2000), st.sampled_from([b"online", b"offline", b"ONLINE", b" online\n",
                                                                     b"\x00", b"", b"{}", b"online" * 10000]))
    cfg = validate_config({"camera": {"id": "cam1", "source": "scripted", "every_frame": True},
                           "mqtt": {"url": broker.url, "stats_interval_s": 1}})
    stop = threading.Event()
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource([frame_for(True)], fps=20, loop=True))
    t = threading.Thread(target=d.run)
    rec = Recorder(broker.port, ["homeassistant/device/cam1/config", "emotion_edge/cam1/stats"])
    sent = 0
    caplog.set_level(logging.ERROR)
    t.start()
    try:
        assert wait_for(lambda: rec.payloads("/config"), 15)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()

        @settings(max_examples=150, deadline=None, database=None)
        @given(topic=st.sampled_from(["homeassistant/status", "homeassistant/status", "emotion_edge/cam1/set",
                                      "emotion_edge/cam1/command", "homeassistant/device/cam1/config/x"]),
               payload=payloads)
        def send(topic: str, payload: bytes) -> None:
            nonlocal sent
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
            sent += 1

        send()
        onlines_before = len(rec.payloads("/config"))
        pub.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        # Still alive and still answering: discovery re-sent on a real birth message, stats flowing.
        assert wait_for(lambda: len(rec.payloads("/config")) > onlines_before, 15)
        n_stats = len(rec.payloads("/stats"))
        assert wait_for(lambda: len(rec.payloads("/stats")) > n_stats, 15)
        pub.loop_stop()
        pub.disconnect()
    finally:
        stop.set()
        t.join(timeout=15)
        rec.close()
    failures = [r for r in caplog.records if "handler" in r.getMessage() and r.levelno >= logging.ERROR]
    alive_ok = not t.is_alive()
    record("MQTT input the daemon subscribes to", group="Bad input (fuzzing)", survived=not failures and alive_ok,
           detail=f"{sent} hypothesis payloads (binary, huge, empty) on homeassistant/status and command-like "
                  "topics via Mosquitto: 0 handler errors, discovery and stats still flowing")
    assert not failures, [r.getMessage() for r in failures]


def test_zz_record_fuzz_counts() -> None:
    """Write what the fuzz tests above tried (runs last in this module)."""
    if not _counts:
        pytest.skip("no fuzz test ran")
    for name, (n, refused) in _counts.items():
        if "passwords" in name:
            detail = f"{n} hypothesis examples: the password never appears in the URL as logged"
        else:
            detail = f"{n} hypothesis examples: {n - refused} accepted, {refused} refused with a clear error, 0 uncaught"
        record(name, group="Bad input (fuzzing)", survived=True, detail=detail)
