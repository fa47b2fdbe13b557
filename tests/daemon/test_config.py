"""Daemon config: strict keys, errors with key and line, ${ENV}, defaults, check-config / config-schema commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import (
    EdgeConfig,
    config_schema,
    load_config,
    parse_config,
    resolve_credentials,
)
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

THREE_LINES = "camera:\n  id: porch\n  source: rtsp://192.168.1.20:554/stream1\n"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=env)


def test_three_line_config_gets_working_defaults() -> None:
    cfg = parse_config(THREE_LINES)
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883 and not cfg.mqtt.use_tls
    assert cfg.mqtt.prefix == "emotion_edge" and cfg.homeassistant.discovery
    assert cfg.liveview.enabled is False and cfg.liveview.host == "127.0.0.1"
    assert cfg.camera.stop_at_end is None and cfg.camera.every_frame is None  # decided by the source (live or file)


def test_typo_key_names_the_key_the_line_and_a_suggestion(tmp_path: Path) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text(THREE_LINES + "mqtt:\n  url: mqtt://broker:1883\n  qeue_size: 50\n")
    proc = cli("check-config", str(f))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"{f}:6: mqtt.qeue_size: unknown key; did you mean 'queue_size'?" in line


def test_wrong_type_names_the_key_line_and_value(tmp_path: Path) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text(THREE_LINES + "model:\n  threads: two\n")
    proc = cli("check-config", str(f))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{f}:5: model.threads:" in proc.stderr and "'two'" in proc.stderr


def test_missing_required_key_points_at_its_section() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml:1: camera.source: required key is missing"):
        parse_config("camera:\n  id: porch\n", "x.yaml")


def test_bad_camera_id_and_bad_yaml() -> None:
    with pytest.raises(ConfigError, match=r"x:2: camera.id: String should match pattern"):
        parse_config("camera:\n  id: Porch Cam\n  source: /dev/video0\n", "x")
    with pytest.raises(ConfigError, match=r"x:\d+: not valid YAML"):
        parse_config("camera: [1\n", "x")


def test_env_substitution_with_defaults_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_PORT", "1999")
    monkeypatch.setenv("KEEPALIVE", "45")
    monkeypatch.delenv("BROKER_HOST", raising=False)
    cfg = parse_config(THREE_LINES + "mqtt:\n  url: mqtt://${BROKER_HOST:-hub.local}:${BROKER_PORT}\n  keepalive_s: ${KEEPALIVE}\n")
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.keepalive_s) == ("hub.local", 1999, 45)
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigError, match=r"x:5: mqtt.username: environment variable \$\{NOPE\} is not set"):
        parse_config(THREE_LINES + "mqtt:\n  username: ${NOPE}\n", "x")


def test_password_never_in_the_url_and_credentials_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="do not put the password in the URL"):
        parse_config(THREE_LINES + "mqtt:\n  url: mqtt://u:secret@host\n")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = parse_config(THREE_LINES + f"mqtt:\n  username: cam\n  password_file: {secret}\n")
    user, pw = resolve_credentials(cfg.mqtt, environ={})
    assert user == "cam" and pw is not None and pw.get_secret_value() == "s3cret" and "s3cret" not in repr(pw)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("fromsystemd")
    cfg2 = parse_config(THREE_LINES + "mqtt:\n  username: cam\n")
    _, pw2 = resolve_credentials(cfg2.mqtt, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert pw2 is not None and pw2.get_secret_value() == "fromsystemd"
    _, pw3 = resolve_credentials(cfg2.mqtt, environ={"EMOTION_EDGE_MQTT_PASSWORD": "fromenv"})
    assert pw3 is not None and pw3.get_secret_value() == "fromenv"


def test_tls_needs_cert_and_key_together() -> None:
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        parse_config(THREE_LINES + "mqtt:\n  tls:\n    cert_file: /a.pem\n")
    cfg = parse_config(THREE_LINES + "mqtt:\n  url: mqtts://broker\n")
    assert cfg.mqtt.use_tls and cfg.mqtt.port == 8883


def test_check_config_ok_and_schema_commands(tmp_path: Path) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text(THREE_LINES)
    proc = cli("check-config", str(f), "--syntax-only")
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
    schema = json.loads(cli("config-schema").stdout)
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"camera"}
    assert schema == json.loads(json.dumps(config_schema()))
    wire = json.loads(cli("config-schema", "--wire").stdout)
    assert {"events", "state", "stats", "camera"} <= set(wire)
    assert {"type", "id", "camera", "label", "score", "scores", "box", "start_time", "frame_time", "model"} <= set(
        wire["events"]["properties"])


def test_check_config_follows_what_the_file_points_at(tmp_path: Path, tiny_bundle: Path) -> None:
    f = tmp_path / "edge.yaml"
    f.write_text(f"camera:\n  id: porch\n  source: rtsp://cam/stream\nmodel:\n  bundle: {tiny_bundle}\n")
    proc = cli("check-config", str(f))
    assert proc.returncode == 0 and "model tiny-test" in proc.stdout, proc.stderr
    f.write_text(f"camera:\n  id: porch\n  source: {tmp_path / 'nope.mp4'}\nmodel:\n  bundle: {tiny_bundle}\n")
    proc = cli("check-config", str(f))
    assert proc.returncode == 2 and "camera.source: no such file or folder" in proc.stderr
    f.write_text(f"camera:\n  id: porch\n  source: rtsp://cam/stream\nmodel:\n  bundle: {tmp_path / 'nobundle'}\n")
    proc = cli("check-config", str(f))
    assert proc.returncode == 3 and "bundle not found" in proc.stderr
    f.write_text("camera:\n  id: porch\n  source: rtsp://cam/stream\nmqtt:\n  username: u\n"
                 f"  password_file: {tmp_path / 'missing'}\n")
    proc = cli("check-config", str(f), "--syntax-only")
    assert proc.returncode == 0
    proc = cli("check-config", str(f))
    assert proc.returncode == 2 and "mqtt.password_file: cannot read" in proc.stderr


def test_load_config_file_not_found() -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("/no/such/edge.yaml")


def test_every_section_rejects_unknown_keys() -> None:
    for section in ("camera", "mqtt", "model", "tracker", "homeassistant", "liveview"):
        extra = f"{section}:\n  bogus_key: 1\n" if section != "camera" else "camera:\n  id: a\n  source: b\n  bogus_key: 1\n"
        text = (THREE_LINES if section != "camera" else "") + extra
        with pytest.raises(ConfigError, match=rf"{section}.bogus_key: unknown key"):
            parse_config(text)
    assert EdgeConfig.model_config["extra"] == "forbid"
