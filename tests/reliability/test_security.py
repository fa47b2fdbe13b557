"""Security: secrets stay out of argv, the process list, logs and MQTT; readable secrets warn; TLS verifies by
default; the live view is off, on loopback, and password-protected anywhere else."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from daemon.brokers import MOSQUITTO, Broker, wait_for
from reliability.procs import DaemonProc

from edge.config import (
    LiveViewConfig,
    MqttConfig,
    TLSConfig,
    resolve_credentials,
    validate_config,
)
from edge.errors import ConfigError
from edge.liveview import LiveView

SECRET = "s3cret-Horse-42-battery"


# ------------------------------------------------------------------ no secret anywhere

@pytest.fixture
def auth_broker(tmp_path: Path):
    if MOSQUITTO is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs mosquitto and mosquitto_passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "camera", SECRET], check=True,
                   capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(tmp_path / "passwd"), "watcher", "watcher-pw"], check=True,
                   capture_output=True)
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
                      + f"password_file {tmp_path / 'passwd'}\n")
    b.start()
    yield b
    b.stop()


def test_the_broker_password_is_in_no_argv_process_list_log_or_message(auth_broker: Broker, tiny_bundle: Path,
                                                                       tmp_path: Path) -> None:
    import paho.mqtt.client as mqtt
    from reliability.test_soak import _clip

    pw = tmp_path / "mqtt_password"
    pw.write_text(SECRET + "\n")
    pw.chmod(0o600)
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(yaml.safe_dump({
        "camera": {"id": "cam1", "source": str(_clip(tmp_path / "loop.avi", seconds=3)), "options": {"realtime": True},
                   "on_end": "reopen"},
        "mqtt": {"url": auth_broker.url, "username": "camera", "password_file": str(pw), "stats_interval_s": 1},
        "model": {"bundle": str(tiny_bundle)},
        "log_level": "debug",
    }))
    seen: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.username_pw_set("watcher", "watcher-pw")
    sub.on_connect = lambda c, *_: c.subscribe("#", qos=1)
    sub.on_message = lambda c, u, m: seen.append(m.topic.encode() + b" " + m.payload)
    sub.connect("127.0.0.1", auth_broker.port)
    sub.loop_start()
    daemon = DaemonProc([sys.executable, "-m", "edge", "run", "--config", str(cfg)], tmp_path / "daemon.log")
    try:
        assert wait_for(lambda: any(b"/stats " in m for m in seen), 60), daemon.text()[-3000:]
        cmdline = Path(f"/proc/{daemon.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{daemon.pid}/environ").read_bytes()
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
        sub.loop_stop()
        sub.disconnect()
    log = daemon.text()
    assert "MQTT: connected" in log  # (log_level debug: the most talkative level)
    assert SECRET.encode() not in cmdline and SECRET.encode() not in environ
    assert SECRET not in ps
    assert SECRET not in log
    assert not [m for m in seen if SECRET.encode() in m]
    assert any(b"/events " in m for m in seen), "the daemon logged in with the password (events arrived)"


def test_a_password_file_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    cfg = MqttConfig(username="camera", password_file=pw)
    caplog.set_level(logging.WARNING, logger="edge.config")
    pw.chmod(0o600)
    resolve_credentials(cfg, environ={})
    assert not caplog.records
    pw.chmod(0o644)
    resolve_credentials(cfg, environ={})
    assert any("readable by other users" in r.getMessage() and "chmod 600" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text


def test_check_config_warns_about_a_readable_password_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    pw.chmod(0o644)
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(yaml.safe_dump({"camera": {"id": "c", "source": str(tmp_path)},
                                   "mqtt": {"username": "camera", "password_file": str(pw)}}))
    p = subprocess.run([sys.executable, "-m", "edge", "check-config", str(cfg), "--syntax-only"], capture_output=True,
                       text=True, check=False, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    r = subprocess.run([sys.executable, "-m", "edge", "check-config", str(cfg)], capture_output=True, text=True,
                       check=False, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert "readable by other users" in (p.stderr + r.stderr), (p.stderr, r.stderr)
    assert SECRET not in p.stdout + p.stderr + r.stdout + r.stderr


# ------------------------------------------------------------------ TLS

def test_tls_verifies_by_default() -> None:
    m = MqttConfig(url="mqtts://hub.local")
    assert m.use_tls and m.port == 8883
    assert TLSConfig().insecure is False
    # (tests/daemon/test_tls_auth.py: a handshake with an unknown CA fails against a real Mosquitto.)


# ------------------------------------------------------------------ live view

def test_live_view_is_off_and_on_loopback_by_default() -> None:
    cfg = validate_config({"camera": {"id": "c", "source": "/dev/video0"}})
    assert cfg.liveview.enabled is False and cfg.liveview.host == "127.0.0.1"


def test_live_view_off_loopback_needs_a_password(free_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMOTION_EDGE_LIVEVIEW_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"liveview.host '127.0.0.2' exposes the camera image.*password_file"):
        LiveView(LiveViewConfig(enabled=True, host="127.0.0.2", port=free_port)).start()


def test_live_view_off_loopback_asks_for_the_password(free_port: int, tmp_path: Path) -> None:
    pw = tmp_path / "lv"
    pw.write_text("view-pw\n")
    pw.chmod(0o600)
    lv = LiveView(LiveViewConfig(enabled=True, host="127.0.0.2", port=free_port, password_file=pw, max_fps=50))
    lv.start()
    stop = threading.Event()

    def feed() -> None:
        class R:
            faces: tuple = ()

        while not stop.is_set():
            lv.update(type("F", (), {"image": np.full((60, 80, 3), 50, np.uint8)})(), R())
            stop.wait(0.05)

    threading.Thread(target=feed, daemon=True).start()
    url = f"http://127.0.0.2:{free_port}/snapshot.jpg"

    def get(auth: str | None) -> int:
        req = urllib.request.Request(url)
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        assert get(None) == 401
        assert get("viewer:wrong") == 401
        assert get("admin:view-pw") == 401
        assert get("viewer:view-pw") == 200
    finally:
        stop.set()
        lv.close()


# ------------------------------------------------------------------ deploy

def test_deploy_ssh_uses_keys_and_checked_host_keys(tmp_path: Path) -> None:
    from edge.deploy.ssh import SshError, SshTarget

    argv = SshTarget("pi@cam1", known_hosts=tmp_path / "known_hosts").ssh_argv(["true"])
    opts = " ".join(argv)
    assert "StrictHostKeyChecking=yes" in opts and f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in opts
    assert "BatchMode=yes" in opts and "PasswordAuthentication=no" in opts
    # First-seen keys only when asked for (--accept-new-host-keys); a changed key is still refused by ssh.
    assert "StrictHostKeyChecking=accept-new" in " ".join(SshTarget("cam1", accept_new=True).ssh_argv(["true"]))
    for weak in ("StrictHostKeyChecking=no", "StrictHostKeyChecking no", "UserKnownHostsFile=/dev/null",
                 "PasswordAuthentication=yes"):
        with pytest.raises(SshError, match="refused"):
            SshTarget("cam1", extra_options=(weak,)).ssh_argv(["true"])


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
def test_an_ssh_config_cannot_turn_host_key_checking_off(tmp_path: Path) -> None:
    from edge.deploy.ssh import SshTarget

    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  PasswordAuthentication yes\n")
    argv = SshTarget("cam1", ssh_config=cfg, known_hosts=tmp_path / "kh").ssh_argv(["true"])
    # `ssh -G` prints the effective settings without connecting: the command line wins over the file.
    i = argv.index("cam1")
    effective = subprocess.run(["ssh", "-G", *argv[1:i], "cam1"], capture_output=True, text=True, check=True).stdout
    settings_ = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
    assert settings_["stricthostkeychecking"] == "true"
    assert settings_["userknownhostsfile"] == str(tmp_path / "kh")
    assert settings_["passwordauthentication"] == "no" and settings_["batchmode"] == "yes"
