"""A minimal in-process MQTT 3.1.1 broker, so ``emotion-edge demo`` runs where Mosquitto is not installed.

For the demo only: loopback, one process, no authentication, no persistence,
no QoS 2 (granted as QoS 1), no retry of unacknowledged QoS 1 deliveries. It
does what the daemon's contract needs a broker to do: QoS 0/1 publish with
PUBACK, subscriptions with ``+``/``#`` wildcards, retained messages (an empty
payload clears one), the Last Will on an unclean disconnect, and PINGREQ.
Use Mosquitto (or any real broker) for anything else.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 10, 11, 12, 13, 14


def topic_matches(sub: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); ``$`` topics only match explicit filters."""
    s, t = sub.split("/"), topic.split("/")
    if topic.startswith("$") and not sub.startswith("$"):
        return False
    for i, part in enumerate(s):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(s) == len(t)


def _encode_len(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(b: bytes, i: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("!H", b, i)
    return b[i + 2 : i + 2 + n].decode("utf-8"), i + 2 + n


def _bin(b: bytes, i: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("!H", b, i)
    return b[i + 2 : i + 2 + n], i + 2 + n


def _publish_packet(topic: str, payload: bytes, qos: int, retain: bool, pid: int) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", pid) if qos else b"") + payload
    return bytes([(PUBLISH << 4) | (qos << 1) | int(retain)]) + _encode_len(len(body)) + body


@dataclass(eq=False)  # identity: sessions live in a set
class _Session:
    sock: socket.socket
    client_id: str = ""
    subs: dict[str, int] = field(default_factory=dict)
    will: tuple[str, bytes, int, bool] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_pid: int = 0

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the reader notices the dead socket and cleans up

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self.lock:
            self.next_pid = self.next_pid % 65535 + 1
            pid = self.next_pid
        self.send(_publish_packet(topic, payload, qos, retain, pid))


class MiniBroker:
    """Start with ``with MiniBroker() as b: ... b.url``; serves on 127.0.0.1 on a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sessions: set[_Session] = set()
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._lock = threading.Lock()
        broker = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                broker._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="minibroker", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def __enter__(self) -> MiniBroker:
        self._thread.start()
        log.info("embedded MQTT broker on %s", self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ------------------------------------------------------------ protocol

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small packets: no Nagle delay
        session = _Session(sock)
        clean = False
        try:
            while True:
                packet = self._read_packet(sock)
                if packet is None:
                    break
                ptype, flags, body = packet
                if ptype == CONNECT:
                    self._on_connect(session, body)
                elif ptype == PUBLISH:
                    self._on_publish(session, flags, body)
                elif ptype == SUBSCRIBE:
                    self._on_subscribe(session, body)
                elif ptype == UNSUBSCRIBE:
                    self._on_unsubscribe(session, body)
                elif ptype == PINGREQ:
                    session.send(bytes([PINGRESP << 4, 0]))
                elif ptype == DISCONNECT:
                    clean = True
                    break
                # PUBACK from subscribers: nothing to do (no redelivery in a demo broker)
        except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
            log.debug("minibroker: client %r: %s", session.client_id, exc)
        finally:
            with self._lock:
                self._sessions.discard(session)
            if not clean and session.will is not None:
                self._route(*session.will)

    @staticmethod
    def _read_exact(sock: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_packet(self, sock: socket.socket) -> tuple[int, int, bytes] | None:
        head = self._read_exact(sock, 1)
        if head is None:
            return None
        length, mult = 0, 1
        for _ in range(4):
            b = self._read_exact(sock, 1)
            if b is None:
                return None
            length += (b[0] & 0x7F) * mult
            mult *= 128
            if not b[0] & 0x80:
                break
        body = self._read_exact(sock, length) if length else b""
        if body is None:
            return None
        return head[0] >> 4, head[0] & 0x0F, body

    def _on_connect(self, s: _Session, body: bytes) -> None:
        _, i = _str(body, 0)  # protocol name
        i += 1  # level
        flags = body[i]
        i += 3  # flags + keepalive
        s.client_id, i = _str(body, i)
        if flags & 0x04:
            topic, i = _str(body, i)
            msg, i = _bin(body, i)
            s.will = (topic, msg, (flags >> 3) & 0x03, bool(flags & 0x20))
        with self._lock:
            # A client id seen again replaces the old connection, as MQTT requires.
            for old in [o for o in self._sessions if o.client_id == s.client_id and s.client_id]:
                self._sessions.discard(old)
                old.will = None
                try:
                    old.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sessions.add(s)
        s.send(bytes([CONNACK << 4, 2, 0, 0]))

    def _on_publish(self, s: _Session, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 0x03, bool(flags & 0x01)
        topic, i = _str(body, 0)
        if qos:
            (pid,) = struct.unpack_from("!H", body, i)
            i += 2
            s.send(bytes([PUBACK << 4, 2]) + struct.pack("!H", pid))
        self._route(topic, body[i:], min(qos, 1), retain)

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self._lock:
            if retain:
                if payload:
                    self._retained[topic] = (payload, qos)
                else:
                    self._retained.pop(topic, None)
            targets = [(sess, max((q for f, q in sess.subs.items() if topic_matches(f, topic)), default=-1))
                       for sess in self._sessions]
        for sess, sub_qos in targets:
            if sub_qos >= 0:
                sess.deliver(topic, payload, min(qos, sub_qos), False)

    def _on_subscribe(self, s: _Session, body: bytes) -> None:
        (pid,) = struct.unpack_from("!H", body, 0)
        i, granted, filters = 2, [], []
        while i < len(body):
            f, i = _str(body, i)
            q = min(body[i] & 0x03, 1)
            i += 1
            s.subs[f] = q
            granted.append(q)
            filters.append((f, q))
        s.send(bytes([SUBACK << 4]) + _encode_len(2 + len(granted)) + struct.pack("!H", pid) + bytes(granted))
        with self._lock:
            retained = list(self._retained.items())
        for topic, (payload, qos) in retained:
            for f, q in filters:
                if topic_matches(f, topic):
                    s.deliver(topic, payload, min(qos, q), True)
                    break

    def _on_unsubscribe(self, s: _Session, body: bytes) -> None:
        (pid,) = struct.unpack_from("!H", body, 0)
        i = 2
        while i < len(body):
            f, i = _str(body, i)
            s.subs.pop(f, None)
        s.send(bytes([UNSUBACK << 4, 2]) + struct.pack("!H", pid))
