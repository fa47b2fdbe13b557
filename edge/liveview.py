"""Optional live view: the camera image with face boxes and labels, as MJPEG over HTTP.

Off by default, and bound to 127.0.0.1 unless the config says otherwise: the
image of a room should not leave the device by accident. Bound to anything else,
it refuses to start without a password (``liveview.password_file`` or
``$EMOTION_EDGE_LIVEVIEW_PASSWORD``), and then asks for it (HTTP Basic auth; put
it behind TLS, e.g. a reverse proxy, on an untrusted network). Frames are annotated
and JPEG-encoded only while a viewer is connected, at most ``max_fps`` times a
second, so the live view costs nothing when nobody watches.

    GET /              a page showing the stream
    GET /stream.mjpg   multipart/x-mixed-replace JPEG stream
    GET /snapshot.jpg  the newest frame
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import LiveViewConfig

log = logging.getLogger(__name__)

BOUNDARY = "emotionedgeframe"
COLORS = {"positive": (80, 200, 60), "neutral": (200, 200, 200), "negative": (60, 60, 230), "uncertain": (0, 200, 255)}
PAGE = b"""<!doctype html><html><head><title>emotion-edge live view</title>
<style>body{margin:0;background:#111;display:flex;justify-content:center;align-items:center;height:100vh}
img{max-width:100%;max-height:100%}</style></head><body><img src="/stream.mjpg" alt="live view"></body></html>"""


def annotate(image: Any, faces: list[Any]) -> Any:
    """A copy of the frame with each face's box, track id, label and score drawn on it."""
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    for f in faces:
        x, y, bw, bh = f.box
        p0, p1 = (int(x * w), int(y * h)), (int((x + bw) * w), int((y + bh) * h))
        color = COLORS.get(f.label, (255, 255, 255))
        cv2.rectangle(out, p0, p1, color, 2)
        text = f"#{f.track_id} {f.label} {f.score:.2f}"
        cv2.putText(out, text, (p0[0], max(12, p0[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    return out


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class LiveView:
    """An MJPEG server fed by ``update(frame, result)`` from the frame loop."""

    def __init__(self, config: LiveViewConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._viewers = 0
        self._last = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self.config.port

    def start(self) -> None:
        """Bind and serve in a background thread."""
        from .config import liveview_password
        from .errors import ConfigError

        view = self
        loopback = self.config.host in LOOPBACK
        password = liveview_password(self.config)
        if password is None and not loopback:
            raise ConfigError(f"liveview.host {self.config.host!r} exposes the camera image to the network: set "
                              "liveview.password_file (or $EMOTION_EDGE_LIVEVIEW_PASSWORD), or keep host 127.0.0.1 "
                              "and use an SSH tunnel")
        expected = None
        if password is not None:
            token = f"{self.config.username}:{password.get_secret_value()}".encode()
            expected = b"Basic " + base64.b64encode(token)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("liveview: " + fmt, *args)

            def do_GET(self) -> None:
                if expected is not None:
                    given = (self.headers.get("Authorization") or "").encode("latin-1", "replace")
                    if not hmac.compare_digest(given, expected):
                        self.send_response(HTTPStatus.UNAUTHORIZED)
                        self.send_header("WWW-Authenticate", 'Basic realm="emotion-edge", charset="UTF-8"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if self.path in ("/", "/index.html"):
                    self._send(PAGE, "text/html; charset=utf-8")
                elif self.path.startswith("/snapshot.jpg"):
                    jpeg = view.wait_frame(0, timeout=5.0, snapshot=True)
                    if jpeg is None:
                        self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                    else:
                        self._send(jpeg[1], "image/jpeg")
                elif self.path.startswith("/stream.mjpg"):
                    self._stream()
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seq = 0
                with view._cond:
                    view._viewers += 1
                try:
                    while view._server is not None:
                        got = view.wait_frame(seq, timeout=2.0)
                        if got is None:
                            continue
                        seq, jpeg = got
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                         .encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with view._cond:
                        view._viewers -= 1

        try:
            self._server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        except OSError as exc:
            raise ConfigError(f"liveview: cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc} "
                              "(choose another liveview.port)") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="liveview", daemon=True)
        self._thread.start()
        if not loopback:
            log.warning("liveview: serving camera images on %s:%d, reachable from other machines (password "
                        "required; plain HTTP: use TLS in front of it on an untrusted network)",
                        self.config.host, self.port)
        log.info("liveview: http://%s:%d/", self.config.host, self.port)

    def update(self, frame: Any, result: Any) -> None:
        """Called from the frame loop; encodes only when someone watches (or no snapshot exists yet)."""
        now = time.monotonic()
        if now - self._last < 1.0 / self.config.max_fps:
            return
        if self._viewers == 0 and self._jpeg is not None and now - self._last < 5.0:
            return  # keep a recent snapshot, but do no work for nobody
        import cv2

        image = getattr(frame, "image", frame)
        ok, buf = cv2.imencode(".jpg", annotate(image, result.faces), [cv2.IMWRITE_JPEG_QUALITY, self.config.quality])
        if not ok:
            return
        self._last = now
        with self._cond:
            self._jpeg = buf.tobytes()
            self._seq += 1
            self._cond.notify_all()

    def wait_frame(self, after: int, timeout: float, snapshot: bool = False) -> tuple[int, bytes] | None:
        """The newest JPEG newer than sequence ``after`` (or any, for a snapshot)."""
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None and (snapshot or self._seq > after), timeout=timeout)
            if self._jpeg is None or (not snapshot and self._seq <= after):
                return None
            return self._seq, self._jpeg

    def close(self) -> None:
        """Stop serving (safe to call twice)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._cond:
            self._cond.notify_all()
