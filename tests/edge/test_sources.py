"""Frame sources: files and folders, the registry, LatestFrameReader, V4L2 and a fake picamera2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import (
    Frame,
    FrameSource,
    LatestFrameReader,
    SourceStats,
    SourceType,
    open_source,
    register_source,
    registry,
)
from edge.sources.base import BaseSource
from edge.sources.capture import Backoff
from edge.sources.stream import ffmpeg_options, redact
from edge.sources.v4l2 import parse_device


def _png(path: Path, value: int, size: tuple[int, int] = (24, 32)) -> Path:
    img = np.full((*size, 3), value, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


# --- files and folders -----------------------------------------------------------


def test_folder_is_read_in_natural_name_order_and_non_images_are_ignored(tmp_path: Path) -> None:
    for name, v in (("img10.png", 10), ("img2.png", 2), ("IMG1.png", 1), ("b.jpg", 30)):
        _png(tmp_path / name, v)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path)) as src:
        assert src.live is False
        frames = []
        while (f := src.read()) is not None:
            frames.append((src.current.name, f.index, int(f.image[0, 0, 0])))
    assert [n for n, _, _ in frames] == ["b.jpg", "IMG1.png", "img2.png", "img10.png"]
    assert [i for _, i, _ in frames] == [0, 1, 2, 3]
    assert frames[1][2] == 1 and frames[3][2] == 10
    assert src.stats().read_errors == 0


def test_unreadable_and_zero_byte_images_are_skipped_and_counted(tmp_path: Path, caplog) -> None:
    _png(tmp_path / "a.png", 1)
    (tmp_path / "b.jpg").write_bytes(b"")  # zero bytes
    (tmp_path / "c.png").write_bytes(b"\x89PNG this is not really a png")
    _png(tmp_path / "d.png", 4)
    with open_source(str(tmp_path)) as src:
        values = []
        while (f := src.read()) is not None:
            values.append(int(f.image[0, 0, 0]))
        stats = src.stats()
    assert values == [1, 4]
    assert stats.read_errors == 2 and stats.frames_read == 2
    assert sum("skipping" in r.message for r in caplog.records) == 2


def test_single_image_gray_becomes_bgr_and_empty_folder_is_an_error(tmp_path: Path) -> None:
    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), np.full((10, 12), 77, np.uint8))
    with open_source(str(gray)) as src:
        f = src.read()
        assert f.image.shape == (10, 12, 3) and src.read() is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "missing.mp4"))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-frames:v", "12", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def test_video_file_gives_every_frame_with_positions_then_none(video: Path) -> None:
    src = open_source(str(video))
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert src.read() is None
    assert len(frames) == 12
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and pts[-1] == pytest.approx(1.1, abs=0.11)
    assert src.stats().frames_read == 12
    src.close()
    src.close()  # idempotent
    assert src.read() is None


def test_a_file_that_is_not_a_video_is_a_source_error(tmp_path: Path) -> None:
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot open .* as a video"):
        open_source(str(bogus))


# --- registry --------------------------------------------------------------------


def test_registry_rejects_unknown_options_and_schemes() -> None:
    with pytest.raises(SourceError, match="unknown option.*bogus.*stream source; it takes: .*reconnect"):
        open_source("rtsp://127.0.0.1:1/x", bogus=1)
    with pytest.raises(SourceError, match="no source type accepts 'ftp://cam'"):
        open_source("ftp://cam")
    with pytest.raises(SourceError, match="camera.source is empty"):
        open_source("  ")


def test_registered_plugin_is_imported_lazily_and_used(tmp_path: Path, monkeypatch) -> None:
    _png(tmp_path / "x.png", 9)
    monkeypatch.setattr(registry, "_REGISTRY", list(registry._REGISTRY))
    sys.modules.pop("fake_source_plugin", None)
    register_source(SourceType("pattern", "fake_source_plugin:open_pattern", prefixes=("pattern:",)))
    assert "fake_source_plugin" not in sys.modules  # nothing imported at registration
    with open_source("pattern:any", folder=tmp_path) as src:
        assert isinstance(src, FrameSource)
        assert int(src.read().image[0, 0, 0]) == 9
    assert "fake_source_plugin" in sys.modules


def test_picamera2_missing_names_the_package_and_the_config_key(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(SourceError) as err:
        open_source("picamera2:0", config_key="cameras.hall.source")
    assert "'picamera2'" in str(err.value) and "cameras.hall.source" in str(err.value)
    assert "python3-picamera2" in str(err.value)


def test_helpers_redact_passwords_and_merge_ffmpeg_options() -> None:
    assert redact("rtsp://admin:s3cr:et@cam/1") == "rtsp://admin:***@cam/1"
    assert redact("http://cam/1") == "http://cam/1"
    assert ffmpeg_options("rtsp://cam/1", "tcp", None) == "rtsp_transport;tcp"
    assert ffmpeg_options("http://cam/1", "tcp", None) == ""
    # What the user set in the environment wins.
    assert ffmpeg_options("rtsp://c", "tcp", "rtsp_transport;udp|stimeout;5") == "rtsp_transport;udp|stimeout;5"
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


def test_v4l2_specs_and_a_missing_device() -> None:
    assert parse_device("0") == 0 and parse_device("/dev/video2") == "/dev/video2"
    assert parse_device("v4l2:/dev/video1") == "/dev/video1"
    assert [k.name for k in registry.source_types() if k.accepts("/dev/video0")][0] == "v4l2"
    assert [k.name for k in registry.source_types() if k.accepts("3")][0] == "v4l2"
    by_id = "/dev/v4l/by-id/usb-Logitech_C920-video-index0"
    assert [k.name for k in registry.source_types() if k.accepts(by_id)][0] == "v4l2"
    with pytest.raises(SourceError, match="cannot open camera '/dev/video97'.*v4l2-ctl"):
        open_source("/dev/video97")
    with pytest.raises(SourceError, match="fourcc"):
        open_source("/dev/video97", fourcc="MJPEG")


# --- LatestFrameReader -----------------------------------------------------------


class CountingSource(BaseSource):
    """Frames 0..n-1 whose pixel value is their number; optional failures and gates."""

    live = True

    def __init__(self, n: int, fail_at: dict[int, Exception] | None = None, gate: threading.Event | None = None):
        super().__init__("counting")
        self.n, self.i = n, 0
        self.fail_at = dict(fail_at or {})
        self.gate = gate
        self.released = 0

    def _grab(self):
        if self.gate is not None:
            while not self.gate.wait(0.05):
                if self._stop.is_set():
                    return None
        if self.i in self.fail_at:
            raise self.fail_at.pop(self.i)
        if self.i >= self.n:
            return None
        self.i += 1
        return np.full((2, 2, 3), self.i - 1, np.uint8), None

    def _release(self):
        self.released += 1


def test_reader_hands_over_only_the_newest_frame_and_counts_the_dropped() -> None:
    src = CountingSource(10)
    reader = LatestFrameReader(src).start()
    reader._thread.join(5)  # the consumer was busy while all 10 frames arrived
    frame = reader.read(timeout=1)
    assert int(frame.image[0, 0, 0]) == 9 and frame.index == 9
    assert reader.read(timeout=1) is None and reader.ended
    stats = reader.stats()
    assert stats.frames_dropped == 9 and stats.frames_read == 10
    reader.close()
    reader.close()
    assert src.released == 1


def test_reader_never_returns_a_frame_twice_and_keep_all_drops_nothing() -> None:
    gate = threading.Event()
    reader = LatestFrameReader(CountingSource(3, gate=gate)).start()
    assert reader.read(timeout=0.2) is None  # nothing yet: a timeout, not a stale frame
    assert not reader.ended
    gate.set()
    with LatestFrameReader(CountingSource(50), keep_all=True) as all_frames:
        values = []
        while (f := all_frames.read(timeout=5)) is not None:
            values.append(int(f.image[0, 0, 0]))
        assert values == list(range(50)) and all_frames.stats().frames_dropped == 0
    seen = []
    while (f := reader.read(timeout=5)) is not None:
        seen.append(f.index)
    assert seen == sorted(set(seen)) and seen[-1] == 2
    reader.close()


def test_reader_counts_transient_errors_and_raises_a_source_error() -> None:
    src = CountingSource(3, fail_at={1: ValueError("glitch")})
    with LatestFrameReader(src, keep_all=True, error_pause=0.01) as reader:
        values = [int(f.image[0, 0, 0]) for f in iter(lambda: reader.read(timeout=5), None)]
        assert values == [0, 1, 2] and reader.stats().read_errors == 1
    fatal = CountingSource(5, fail_at={2: SourceError("camera unplugged")})
    with LatestFrameReader(fatal, keep_all=True) as reader:
        assert reader.read(timeout=5).index == 0 and reader.read(timeout=5).index == 1
        with pytest.raises(SourceError, match="unplugged"):
            reader.read(timeout=5)


def test_reader_stop_joins_a_thread_blocked_in_read() -> None:
    src = CountingSource(1, gate=threading.Event())  # never opens the gate
    reader = LatestFrameReader(src).start()
    reader.stop(timeout=5)
    assert not reader._thread.is_alive()
    assert src.released == 0  # stop() leaves the source open; close() closes it
    reader.close()
    assert src.released == 1


def test_stats_are_json_ready() -> None:
    s = SourceStats(frames_read=3, camera_fps=14.98765)
    assert s.as_dict() == {"frames_read": 3, "frames_dropped": 0, "read_errors": 0, "reconnects": 0,
                           "last_frame_time": None, "camera_fps": 14.99}
    assert isinstance(Frame(np.zeros((1, 1, 3), np.uint8), 0.0, 0), Frame)


# --- picamera2 (a fake module: no Pi camera exists here) ---------------------------


class FakePicamera2:
    """The slice of picamera2's API the source uses; class attributes record calls."""

    busy_left = 0
    instances: list["FakePicamera2"] = []

    def __init__(self, camera_num: int = 0) -> None:
        if FakePicamera2.busy_left > 0:
            FakePicamera2.busy_left -= 1
            try:
                raise RuntimeError("Failed to acquire camera: Device or resource busy")
            except RuntimeError as exc:
                raise RuntimeError("Camera __init__ sequence did not complete.") from exc
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config = None
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main, controls=None):
        return {"main": dict(main), "controls": dict(controls or {})}

    def configure(self, config):
        self.config = config
        self.calls.append("configure")

    def start(self):
        self.calls.append("start")

    def capture_array(self, stream="main"):
        w, h = self.config["main"]["size"]
        # libcamera's RGB888 is stored B, G, R: a pure red scene reads [0, 0, 255].
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 2] = 255
        return img

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    FakePicamera2.busy_left = 0
    FakePicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakePicamera2


def test_picamera2_frames_are_bgr_without_a_channel_swap(fake_picamera2) -> None:
    with open_source("picamera2:0", width=320, height=240, fps=15) as src:
        frame = src.read()
        cam = fake_picamera2.instances[0]
        assert cam.config == {"main": {"size": (320, 240), "format": "RGB888"}, "controls": {"FrameRate": 15.0}}
        assert cam.calls == ["configure", "start"]
    assert frame.image.shape == (240, 320, 3)
    assert frame.image[0, 0].tolist() == [0, 0, 255]  # red in BGR order
    assert src.live is True


def test_picamera2_retries_while_busy_and_closes_once(fake_picamera2) -> None:
    fake_picamera2.busy_left = 2
    src = open_source("picam:", backoff_initial=0.001, backoff_max=0.002)
    assert len(fake_picamera2.instances) == 1 and fake_picamera2.busy_left == 0
    src.close()
    src.close()
    assert fake_picamera2.instances[0].calls == ["configure", "start", "stop", "close"]


def test_picamera2_still_busy_after_retries_is_a_clear_error(fake_picamera2) -> None:
    fake_picamera2.busy_left = 10
    with pytest.raises(SourceError, match="another process holds the camera"):
        open_source("picamera2:1", busy_retries=2, backoff_initial=0.001, backoff_max=0.002)
    assert fake_picamera2.busy_left == 7  # 1 try + 2 retries
    with pytest.raises(SourceError, match="must be an integer"):
        open_source("picamera2:front")
