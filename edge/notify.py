"""systemd readiness and watchdog notifications (sd_notify), a no-op outside systemd.

Speaks the datagram protocol directly (a few lines; no dependency): the
message goes to ``$NOTIFY_SOCKET`` (an ``@`` prefix is Linux's abstract
namespace). ``WatchdogSec=`` in the unit sets ``$WATCHDOG_USEC``; we ping at half
that period.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class SystemdNotifier:
    """``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1`` to systemd, if it is listening."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and watchdog_for_us else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def notify(self, message: str) -> bool:
        """Send one notification; False (and a debug log) when systemd is not there."""
        if not self._addr:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.setblocking(False)  # a full notify queue must never stall the frame loop
                s.connect(self._addr)
                s.sendall(message.encode())
            return True
        except OSError as exc:
            log.debug("sd_notify(%s) failed: %s", message, exc)
            return False

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Ping the watchdog if it is due (call from the frame loop: a stuck loop stops the pings)."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.notify("WATCHDOG=1")
