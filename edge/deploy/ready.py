"""Watch a camera's MQTT availability topic to tell that a restarted daemon is up.

The watcher subscribes *before* the restart. The broker hands a new subscriber
the retained value with the retain flag set; a value published while we are
subscribed arrives with the flag clear. So a retained ``online`` left by the
old daemon is ignored, and only an ``online`` published after the restart
counts.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)


def availability_topic(prefix: str, camera: str) -> str:
    """``<prefix>/<camera>/availability`` (design: MQTT contract)."""
    return f"{prefix}/{camera}/availability"


class AvailabilityWatcher:
    """Subscribe to one availability topic; ``wait_online`` after the restart."""

    def __init__(self, url: str, topic: str, username: str | None = None, password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise ConfigError(f"--mqtt-url {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        tls = u.scheme in ("mqtts", "ssl")
        self.topic = topic
        self._online = threading.Event()
        self._subscribed = threading.Event()
        self.last: str | None = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"emotion-edge-deploy-{uuid.uuid4().hex[:8]}")
        if username:
            self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self._client.on_message = self._on_message
        self._host, self._port = u.hostname, u.port or (8883 if tls else 1883)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        payload = msg.payload.decode("utf-8", "replace").strip()
        log.debug("%s = %s (retained=%s)", msg.topic, payload, msg.retain)
        if msg.retain:
            return  # the value from before we subscribed
        self.last = payload
        if payload == "online":
            self._online.set()

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; ``ConfigError`` when the broker cannot be reached."""
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise ConfigError(f"cannot reach the MQTT broker {self._host}:{self._port} to watch {self.topic}: {exc}") from None
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise ConfigError(f"the MQTT broker {self._host}:{self._port} did not accept a subscription to {self.topic}")

    def wait_online(self, timeout: float) -> bool:
        """True once ``online`` was published after ``start``."""
        return self._online.wait(timeout)

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
