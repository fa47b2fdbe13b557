"""TLS with verification, mutual TLS and a password from a file, against a real Mosquitto."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from daemon.brokers import MOSQUITTO, Broker, wait_for
from daemon.scripted import ListSource, cycling_frames, scripted_pipeline

from edge.config import validate_config
from edge.daemon import Daemon

PASSWORD = "correct-horse-battery"

pytestmark = pytest.mark.skipif(not (MOSQUITTO and shutil.which("openssl") and shutil.which("mosquitto_passwd")),
                                reason="needs mosquitto, mosquitto_passwd and openssl")


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_broker(tmp_path: Path):
    d = tmp_path
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca", "-keyout", "ca.key",
         "-out", "ca.crt", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", cwd=d)
        _ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.ext", "-out", f"{name}.crt", cwd=d)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "camera", PASSWORD], check=True, capture_output=True)
    b = Broker(d)
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", "allow_anonymous false") + "\n".join([
        f"cafile {d / 'ca.crt'}", f"certfile {d / 'server.crt'}", f"keyfile {d / 'server.key'}",
        "require_certificate true", f"password_file {d / 'passwd'}"]) + "\n")
    b.start()
    yield b, d
    b.stop()


def _run(cfg_mqtt: dict, port: int):
    cfg = validate_config({"camera": {"id": "tlscam", "source": "scripted", "every_frame": True},
                           "mqtt": {"url": f"mqtts://127.0.0.1:{port}", "connect_wait_s": 0, "reconnect_min_s": 0.2,
                                    "reconnect_max_s": 1, **cfg_mqtt}})
    stop = threading.Event()
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop,
               source_factory=lambda: ListSource(cycling_frames(3), fps=100, loop=True))
    th = threading.Thread(target=d.run)
    th.start()
    return d, stop, th


def test_mutual_tls_with_password_file_delivers_events(tls_broker, tmp_path: Path, caplog) -> None:
    b, certs = tls_broker
    pw = tmp_path / "mqtt_password"
    pw.write_text(PASSWORD + "\n")
    caplog.set_level(logging.DEBUG)
    d, stop, th = _run({"username": "camera", "password_file": str(pw),
                        "tls": {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "client.crt"),
                                "key_file": str(certs / "client.key")}}, b.port)
    try:
        assert d.publisher.wait_connected(15)
        assert wait_for(lambda: d.publisher.queue_depth() == 0 and d.publisher.counters.published >= 5)
    finally:
        stop.set()
        th.join(timeout=10)
    assert PASSWORD not in caplog.text


def test_tls_verification_is_on_and_bad_credentials_are_not_fatal(tls_broker, tmp_path: Path) -> None:
    b, certs = tls_broker
    # No CA given: the system CAs do not know the test CA, so the handshake must fail.
    d, stop, th = _run({"username": "camera", "tls": {"cert_file": str(certs / "client.crt"),
                                                      "key_file": str(certs / "client.key")}}, b.port)
    try:
        assert not d.publisher.wait_connected(2.0)
        assert th.is_alive()  # still running, still retrying
    finally:
        stop.set()
        th.join(timeout=10)
    assert not th.is_alive()
    # Right CA, wrong password: refused by the broker, retried, never fatal.
    pw = tmp_path / "wrong"
    pw.write_text("nope")
    d2, stop2, th2 = _run({"username": "camera", "password_file": str(pw),
                           "tls": {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "client.crt"),
                                   "key_file": str(certs / "client.key")}}, b.port)
    try:
        assert not d2.publisher.wait_connected(2.0)
        assert th2.is_alive()
    finally:
        stop2.set()
        th2.join(timeout=10)
