"""The ``Publisher`` protocol and its MQTT implementation (paho-mqtt 2.x).

What ``MqttPublisher`` guarantees:

- it never blocks the frame loop: paho's network thread connects, reconnects
  with exponential backoff (a broker that is down at start is waited for) and
  sends;
- QoS1 messages wait in a bounded queue while the broker is away and are sent
  on reconnect; a message refused because the queue is full is counted
  (``dropped``), never lost silently;
- retained topics (availability, state, camera status, discovery) are
  remembered and republished on every (re)connect, newest value only;
- the Last Will sets availability to ``offline`` when the daemon dies.
"""

from __future__ import annotations

import collections
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

log = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]


class Publisher(Protocol):
    """What the daemon needs from a message bus (swap it in tests, or for another transport)."""

    def start(self) -> None: ...

    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False, key: object = None) -> bool:
        """Queue a message; ``key`` marks messages whose delivery is tracked (events). False if dropped."""

    def subscribe(self, topic: str, callback: MessageCallback) -> None: ...

    def stop(self, timeout: float = 1.0) -> None: ...


@dataclass
class PublisherCounters:
    """Delivery figures (for stats and tests)."""

    connects: int = 0
    disconnects: int = 0
    published: int = 0  # tracked (keyed) messages acknowledged by the broker
    dropped: int = 0  # keyed QoS1 messages refused because the queue was full
    replays: int = 0  # times the retained topics were republished after a connect
    acked_keys: list = field(default_factory=list)  # keys in ack order (bounded)

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


@dataclass(frozen=True)
class MqttOptions:
    """Connection settings for ``MqttPublisher`` (the daemon maps ``MqttConfig`` onto these)."""

    host: str
    port: int = 1883
    client_id: str = ""
    keepalive_s: int = 30
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    will_topic: str | None = None
    will_payload: str = "offline"
    queue_size: int = 1000
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_acked_keys: int = 100_000


class MqttPublisher:
    """``Publisher`` over paho-mqtt 2.x with a network thread, reconnects and retained replay."""

    def __init__(self, options: MqttOptions) -> None:
        import paho.mqtt.client as mqtt

        self.options = o = options
        self.counters = PublisherCounters()
        self._mqtt = mqtt
        self._lock = threading.Lock()
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._first_retained: str | None = None  # availability: sent inside on_connect, before anything else
        self._subs: dict[str, MessageCallback] = {}
        # QoS1 messages not yet acknowledged: mid -> key (None for untracked ones). paho's network
        # thread may ack a message before publish() has returned its mid, so acks are collected
        # lock-free in _acked and matched later (an ack can also come "early").
        self._pending: dict[int, object] = {}
        self._acked: collections.deque[int] = collections.deque()
        self._early: set[int] = set()
        self._connected = threading.Event()
        self._replay = threading.Event()
        self._stopping = threading.Event()
        self._last_drop_log = 0.0
        self._last_err_log = 0.0

        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=o.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        c.max_queued_messages_set(o.queue_size)
        c.max_inflight_messages_set(50)
        c.reconnect_delay_set(min_delay=o.reconnect_min_s, max_delay=o.reconnect_max_s)  # type: ignore[arg-type]
        if o.will_topic:
            c.will_set(o.will_topic, o.will_payload, qos=1, retain=True)
        if o.username:
            c.username_pw_set(o.username, o.password.get_secret_value() if o.password else None)
        if o.tls:
            c.tls_set(
                ca_certs=str(o.ca_file) if o.ca_file else None,
                certfile=str(o.cert_file) if o.cert_file else None,
                keyfile=str(o.key_file) if o.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            c.tls_insecure_set(o.tls_insecure)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        self._client = c
        self._replayer = threading.Thread(target=self._replay_loop, name="mqtt-replay", daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect in the background; returns at once (the broker may be down: it is retried)."""
        o = self.options
        log.info("MQTT: connecting to %s:%d as %r%s", o.host, o.port, o.client_id, " (TLS)" if o.tls else "")
        self._replayer.start()
        self._client.connect_async(o.host, o.port, keepalive=o.keepalive_s)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Flush QoS1 messages for up to ``timeout`` s, then disconnect cleanly (no Last Will)."""
        deadline = time.monotonic() + timeout
        while self._connected.is_set() and self.queue_depth() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        left = self.queue_depth()
        if left:
            log.warning("MQTT: %d message(s) not acknowledged by the broker at shutdown", left)
        self._stopping.set()
        self._replay.set()
        self._client.disconnect()
        # loop_stop() joins paho's thread, which can sit in a TCP connect to a black-holed broker for
        # seconds; it is a daemon thread, so bound the wait and let the process exit regardless.
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(timeout=max(0.2, deadline - time.monotonic() + 0.5))
        self._reconcile()

    # ------------------------------------------------------------ publishing

    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False, key: object = None) -> bool:
        """Send or queue one message. Retained messages are also remembered for replay on reconnect."""
        data = payload.encode() if isinstance(payload, str) else payload
        if retain:
            with self._lock:
                if self._first_retained is None:
                    self._first_retained = topic
                self._retained[topic] = (data, qos)
            if not self._connected.is_set():
                return True  # sent by the replay on connect, newest value only
        elif qos == 0 and not self._connected.is_set():
            return False  # stats and the like: no point queueing stale figures
        info = self._send(topic, data, qos, retain, key)
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            if key is not None:
                with self._lock:
                    self.counters.dropped += 1
                now = time.monotonic()
                if now - self._last_drop_log > 10:
                    self._last_drop_log = now
                    log.warning("MQTT: outgoing queue full (%d): dropping events (counted in stats)", self.options.queue_size)
            return False
        return True

    def _send(self, topic: str, data: bytes, qos: int, retain: bool, key: object = None):
        info = self._client.publish(topic, data, qos=qos, retain=retain)
        if qos > 0 and info.rc != self._mqtt.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self._pending[info.mid] = key
        return info

    def subscribe(self, topic: str, callback: MessageCallback) -> None:
        """Subscribe now and after every reconnect."""
        self._subs[topic] = callback
        if self._connected.is_set():
            self._client.subscribe(topic, qos=1)

    def queue_depth(self) -> int:
        """QoS1 messages not yet acknowledged by the broker (also updates the counters)."""
        self._reconcile()
        with self._lock:
            return len(self._pending)

    def _reconcile(self) -> None:
        with self._lock:
            while self._acked:
                self._early.add(self._acked.popleft())
            for mid in [m for m in self._early if m in self._pending]:
                self._early.discard(mid)
                key = self._pending.pop(mid)
                if key is not None:
                    self.counters.published += 1
                    if len(self.counters.acked_keys) < self.options.max_acked_keys:
                        self.counters.acked_keys.append(key)

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            now = time.monotonic()
            if now - self._last_err_log > 30:
                self._last_err_log = now
                log.error("MQTT: broker %s:%d refused the connection: %s (retrying)", self.options.host,
                          self.options.port, reason_code)
            return
        self.counters.connects += 1
        log.info("MQTT: connected to %s:%d%s", self.options.host, self.options.port,
                 f" (reconnect {self.counters.reconnects})" if self.counters.reconnects else "")
        self._connected.set()
        # Availability first, from inside on_connect, so it precedes the queued events paho resends next.
        with self._lock:
            first = self._first_retained
            item = self._retained.get(first) if first else None
        if item:
            self._send(first, item[0], item[1], True)
        for topic in list(self._subs):
            client.subscribe(topic, qos=1)
        self._replay.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acked.append(mid)  # matched to its key in _reconcile (no lock in paho's thread)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            self.counters.disconnects += 1
            if not self._stopping.is_set():
                log.warning("MQTT: lost the broker (%s); reconnecting with backoff", reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        import paho.mqtt.client as mqtt

        for pattern, cb in list(self._subs.items()):
            if mqtt.topic_matches_sub(pattern, msg.topic):
                try:
                    cb(msg.topic, msg.payload)
                except Exception:  # a bad handler must not kill the network thread
                    log.exception("MQTT: handler for %s failed", msg.topic)

    def _replay_loop(self) -> None:
        # Runs outside the network thread so that paho's resend of queued messages (right after
        # on_connect) goes first and the newest retained values land last.
        while True:
            self._replay.wait()
            self._replay.clear()
            if self._stopping.is_set():
                return
            time.sleep(0.05)
            with self._lock:
                items = [(t, v) for t, v in self._retained.items() if t != self._first_retained]
            for topic, (data, qos) in items:
                if not self._connected.is_set():
                    break
                self._send(topic, data, qos, True)
            else:
                self.counters.replays += 1


def make_client_id(camera: str) -> str:
    """Default client id: stable per camera so the broker replaces a stale session of the same daemon."""
    return f"emotion-edge-{camera}"
