"""A TCP proxy that can freeze its connections: a stream that stalls without closing.

A cheap camera's RTSP session sometimes just stops sending while the TCP connection stays up (and
the camera still answers a new connection). ``freeze()`` stops forwarding on every open connection
but keeps the sockets open; connections made afterwards are forwarded normally.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FreezeProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            frozen = threading.Event()
            with self._lock:
                self._conns.append((client, up, frozen))
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b, frozen), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, frozen: threading.Event) -> None:
        try:
            while True:
                data = src.recv(65536)
                if frozen.is_set():
                    self._closed.wait()  # hold the sockets open, forward nothing
                    return
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        if not frozen.is_set():
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> int:
        """Stall every open connection; returns how many."""
        with self._lock:
            for _, _, frozen in self._conns:
                frozen.set()
            return len(self._conns)

    def close(self) -> None:
        self._closed.set()
        self._listen.close()
        with self._lock:
            for c, u, _ in self._conns:
                for s in (c, u):
                    with contextlib.suppress(OSError):
                        s.close()
