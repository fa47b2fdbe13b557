"""A real Mosquitto on a free loopback port (stoppable, restartable) and a recording subscriber."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise TimeoutError(f"mosquitto on port {port} did not come {'up' if up else 'down'}")


def wait_for(predicate, timeout: float = 15.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` s (a sync point, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


class Broker:
    """A mosquitto process we can stop and restart on the same port (optionally with persistence)."""

    def __init__(self, workdir: Path, persistence: bool = False) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice", "max_queued_messages 100000"]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to user "mosquitto", which cannot read pytest's private
            # temp dirs (password file, certificates, persistence).
            lines.append("user root")
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        try:
            _wait_port(self.port, up=True)
        except TimeoutError:
            raise TimeoutError((self.workdir / "mosquitto.log").read_text()[-2000:]) from None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        _wait_port(self.port, up=False)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class Recorder:
    """A paho subscriber recording (topic, payload, retain) in arrival order."""

    def __init__(self, port: int, topics: list[str], client_id: str | None = None, persistent: bool = False) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        self.topics = topics

        def on_connect(client, userdata, flags, rc, props):
            for t in topics:
                client.subscribe(t, qos=1)

        def on_subscribe(client, userdata, mid, rcs, props):
            self.subscribed.set()

        def on_message(client, userdata, msg):
            with self.lock:
                self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber did not connect"

    def payloads(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:
        return wait_for(predicate, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
