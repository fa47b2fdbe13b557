"""sd_notify: READY, WATCHDOG and STOPPING reach a real notify socket (as systemd would receive them)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from daemon.brokers import Broker
from daemon.scripted import SEQUENCE, ListSource, scripted_pipeline

from edge.config import validate_config
from edge.daemon import Daemon
from edge.notify import SystemdNotifier


def test_daemon_notifies_ready_watchdog_and_stopping(broker: Broker, tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(1.0)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
        assert notifier.enabled and notifier.watchdog_interval == 0.1
        cfg = validate_config({"camera": {"id": "cam1", "source": "scripted", "on_end": "stop", "every_frame": True},
                               "mqtt": {"url": broker.url}})
        got: list[str] = []

        def receive() -> None:  # as systemd does, read as messages come
            try:
                while True:
                    got.append(sock.recv(4096).decode())
            except OSError:
                pass

        rx = threading.Thread(target=receive)
        rx.start()
        th = threading.Thread(target=Daemon(cfg, pipeline=scripted_pipeline(), notifier=notifier,
                                            source_factory=lambda: ListSource(SEQUENCE, fps=20)).run)
        th.start()
        th.join(timeout=30)
        assert not th.is_alive()
        rx.join(timeout=10)
    assert got[0].startswith("READY=1")
    assert "WATCHDOG=1" in got
    assert got[-1] == "STOPPING=1"


def test_notifier_is_a_no_op_outside_systemd() -> None:
    n = SystemdNotifier({})
    assert not n.enabled and n.watchdog_interval is None
    assert n.notify("READY=1") is False
    n.watchdog()


def test_watchdog_for_another_pid_is_ignored() -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval is None
