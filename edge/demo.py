"""The zero-setup demo: a clip synthesised at run time, a local broker, the real daemon.

No dataset image is in the repository: the clip is made from face photos that
installed packages ship (matplotlib's ``grace_hopper.jpg``, scikit-image's
``astronaut.png``), found without importing those packages. The faces are
placed so their boxes coincide, and the clip cross-fades from one to the other:
the tracker sees one face whose expression changes (an ``update`` event when
the model labels the two photos differently), then the face leaves (``end``).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, SourceError

log = logging.getLogger(__name__)

# (package, path inside it): public-domain / freely licensed portraits that the wheels carry.
PACKAGED_PHOTOS = (
    ("skimage", "data/astronaut.png"),  # Eileen Collins, NASA (public domain)
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),  # Grace Hopper, US Navy (public domain)
)
PHOTO_HINT = ("the demo needs a face photo: `pip install matplotlib` or `pip install scikit-image` "
              "(both wheels ship a public-domain portrait), or pass --photo FILE")
FRAME_SIZE = (640, 480)
FPS = 15.0


def packaged_photos() -> list[Path]:
    """Face photos shipped inside installed packages (the packages are not imported)."""
    found = []
    for pkg, rel in PACKAGED_PHOTOS:
        spec = importlib.util.find_spec(pkg)
        for root in (spec.submodule_search_locations or []) if spec else []:
            p = Path(root) / rel
            if p.is_file():
                found.append(p)
                break
    return found


def _read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"{path}: not a readable image")
    return img


def _background(w: int, h: int) -> np.ndarray:
    y = np.linspace(70, 130, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 20, w, dtype=np.float32)[None, :]
    g = (y + x).astype(np.uint8)
    return np.dstack([g, g, np.clip(g.astype(np.int16) + 10, 0, 255).astype(np.uint8)])


def _placement(photo: np.ndarray, face: tuple[float, float, float, float], scale_face_w: float,
               center: tuple[float, float], zoom: float) -> np.ndarray:
    """Affine matrix that puts the photo's face box at ``center`` with width ``scale_face_w * zoom``."""
    fx, fy, fw, fh = face
    s = scale_face_w * zoom / fw
    cx, cy = fx + fw / 2, fy + fh / 2
    return np.array([[s, 0, center[0] - s * cx], [0, s, center[1] - s * cy]], np.float32)


@dataclass(frozen=True)
class Clip:
    frames: list[np.ndarray]
    fps: float
    description: str


def synthesise_clip(photos: list[np.ndarray], faces: list[tuple[float, float, float, float]], fps: float = FPS) -> Clip:
    """Empty scene -> face A (slow zoom) -> cross-fade to face B at the same place -> empty scene."""
    import cv2

    w, h = FRAME_SIZE
    bg = _background(w, h)
    if len(photos) == 1:
        photos, faces = photos * 2, faces * 2
    center, face_w = (w * 0.5, h * 0.45), w * 0.28

    def render(i: int, zoom: float) -> np.ndarray:
        m = _placement(photos[i], faces[i], face_w, center, zoom)
        return cv2.warpAffine(photos[i], m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(100, 100, 100))

    def n(seconds: float) -> int:
        return max(1, round(seconds * fps))

    frames = [bg.copy() for _ in range(n(0.6))]
    hold = n(3.0)
    for k in range(hold):
        frames.append(render(0, 1.0 + 0.08 * k / hold))
    fade = n(0.6)
    for k in range(fade):
        a = (k + 1) / (fade + 1)
        frames.append(cv2.addWeighted(render(0, 1.08), 1 - a, render(1, 1.08), a, 0))
    for k in range(hold):
        frames.append(render(1, 1.08 - 0.08 * k / hold))
    frames += [bg.copy() for _ in range(n(1.0))]
    return Clip(frames, fps, f"{len(frames)} frames at {fps:g} fps ({len(frames) / fps:.1f} s), {w}x{h}")


@dataclass
class _Frame:
    image: np.ndarray
    time: float
    index: int


class ClipSource:
    """Plays a clip in real time, like a camera would deliver it."""

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.i = 0
        self.t0 = time.monotonic()

    def read(self) -> _Frame | None:
        if self.i >= len(self.clip.frames):
            return None
        due = self.t0 + self.i / self.clip.fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        f = _Frame(self.clip.frames[self.i], time.time(), self.i)
        self.i += 1
        return f

    def close(self) -> None:
        self.i = len(self.clip.frames)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalBroker:
    """A throwaway Mosquitto on a free loopback port (config and logs in a temp dir)."""

    def __init__(self) -> None:
        exe = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)
        if exe is None:
            raise ConfigError("the demo starts a local MQTT broker but mosquitto is not installed: "
                              "`sudo apt-get install mosquitto` (or `brew install mosquitto`), "
                              "or point the demo at a broker with --mqtt mqtt://host:1883")
        self.exe = exe
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="emotion-edge-demo-")
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n")
        self._conf = conf
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalBroker:
        with open(Path(self._dir.name) / "mosquitto.log", "ab") as log_file:
            self.proc = subprocess.Popen([self.exe, "-c", str(self._conf)], stdout=log_file, stderr=log_file)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (Path(self._dir.name) / "mosquitto.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise ConfigError(f"mosquitto exited at start (code {self.proc.returncode}): {' '.join(tail)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise ConfigError("mosquitto did not start listening within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._dir.cleanup()


def face_boxes(detector, photos: list[np.ndarray], paths: list[Path]) -> list[tuple[float, float, float, float]]:
    """The largest face in each photo (pixels); an error names a photo without one."""
    boxes = []
    for img, p in zip(photos, paths):
        dets = detector.detect(img)
        if not dets:
            raise SourceError(f"{p}: no face found in the demo photo; pass another with --photo FILE")
        boxes.append(max(dets, key=lambda d: d.box[2] * d.box[3]).box)
    return boxes


def load_photos(paths: list[Path] | None) -> tuple[list[np.ndarray], list[Path]]:
    chosen = list(paths) if paths else packaged_photos()
    if not chosen:
        raise ConfigError(PHOTO_HINT)
    return [_read(p) for p in chosen[:2]], chosen[:2]

