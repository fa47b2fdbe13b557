"""A small subscriber that yields typed messages from one camera or all of them.

    from edge.comms.client import EventClient

    with EventClient("mqtt://127.0.0.1:1883") as client:
        for msg in client.messages(timeout=60):
            if msg.kind == "events":
                print(msg.camera, msg.payload.type, msg.payload.label)

Payloads are parsed into the wire models of ``edge.comms.schema`` (unknown
keys ignored); a malformed payload is dropped with a warning, never raised.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pydantic import ValidationError

from .schema import WIRE_MODELS, CameraStatus, Event, State, Stats
from .topics import parse_topic, subscription

log = logging.getLogger(__name__)

KINDS = ("events", "state", "stats", "camera", "availability")


@dataclass(frozen=True)
class Message:
    """One received message: ``payload`` is an ``Event``/``State``/``Stats``/``CameraStatus`` or, for availability, a str."""

    camera: str
    kind: str
    payload: Event | State | Stats | CameraStatus | str
    topic: str
    retained: bool
    received_at: float


class EventClient:
    """Subscribe to a daemon's topics; iterate ``messages()`` or ``events()``."""

    def __init__(self, url: str = "mqtt://127.0.0.1:1883", *, camera: str | None = None, prefix: str = "emotion_edge",
                 kinds: tuple[str, ...] = KINDS, username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, client_id: str | None = None, max_queue: int = 10_000) -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(url)
        self.host, self.prefix = u.hostname or "127.0.0.1", prefix
        tls = u.scheme in ("mqtts", "ssl") or ca_file is not None
        self.port = u.port or (8883 if tls else 1883)
        self._filters = [subscription(prefix, k, camera) for k in kinds]
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=max_queue)  # 0: unbounded
        self.dropped = 0
        self._connected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"emotion-edge-sub-{uuid.uuid4().hex[:8]}")
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set(ca_certs=str(ca_file) if ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        self._client = c

    def __enter__(self) -> EventClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """True once subscribed (retained messages then arrive first)."""
        return self._connected.wait(timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def messages(self, timeout: float | None = None) -> Iterator[Message]:
        """Yield messages as they come; stop after ``timeout`` s without one (None: never)."""
        while True:
            try:
                yield self._queue.get(timeout=timeout)
            except queue.Empty:
                return

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Only the events (new / update / end)."""
        for m in self.messages(timeout):
            if isinstance(m.payload, Event):
                yield m.payload

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("subscribe: broker refused the connection: %s", reason_code)
            return
        for f in self._filters:
            client.subscribe(f, qos=1)
        self._connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        where = parse_topic(self.prefix, msg.topic)
        if where is None:
            return
        camera, kind = where
        payload = parse_payload(kind, msg.payload)
        if payload is None:
            return
        m = Message(camera, kind, payload, msg.topic, bool(msg.retain), time.time())
        try:
            self._queue.put_nowait(m)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("subscribe: consumer too slow; %d message(s) dropped", self.dropped)


def parse_payload(kind: str, data: bytes) -> Event | State | Stats | CameraStatus | str | None:
    """Parse one payload by topic leaf; None (and a warning) when malformed."""
    if kind == "availability":
        return data.decode("utf-8", "replace")
    model = WIRE_MODELS.get(kind)
    if model is None:
        return None
    try:
        return model.model_validate(json.loads(data))  # type: ignore[return-value]
    except (ValueError, ValidationError) as exc:
        log.warning("dropping a malformed %s message: %s", kind, str(exc).splitlines()[0])
        return None
