"""Camera watchdog: a camera that fails to open, stalls or ends is reopened with backoff; the daemon lives on."""

from __future__ import annotations

import json
import threading

from daemon.brokers import Broker, Recorder, wait_for
from daemon.scripted import Frame, frame_for, scripted_pipeline

from edge.camera import CameraOptions, CameraSupervisor
from edge.config import validate_config
from edge.daemon import Daemon
from edge.errors import SourceError


class FlakyCamera:
    """Fails to open the first time; each opened camera gives ``frames`` frames, then hangs in read()."""

    opens = 0

    def __init__(self, frames: int = 5) -> None:
        type(self).opens += 1
        if type(self).opens == 1:
            raise SourceError("camera unplugged")
        self.left = frames
        self.closed = threading.Event()

    def read(self) -> Frame | None:
        if self.left <= 0:
            self.closed.wait()  # a stalled RTSP stream: read() blocks until the source is closed
            return None
        self.left -= 1
        return Frame(frame_for(True), 0.0, self.left)

    def close(self) -> None:
        self.closed.set()


def test_supervisor_reopens_after_open_failure_and_stall() -> None:
    FlakyCamera.opens = 0
    statuses: list[tuple[str, str | None]] = []
    sup = CameraSupervisor(FlakyCamera, CameraOptions(watchdog_s=0.3, reconnect_min_s=0.05, reconnect_max_s=0.2),
                           on_status=lambda s, e: statuses.append((s, e)))
    sup.start()
    try:
        while FlakyCamera.opens < 4:
            sup.get(timeout=0.5)
        assert not sup.ended  # a live camera never "ends": it is reopened
    finally:
        sup.close()
    assert sup.frames >= 10  # frames from the 2nd and 3rd camera (taken or replaced by newer ones)
    assert statuses[0] == ("reconnecting", "cannot open: camera unplugged")
    assert ("ok", None) in statuses
    assert any(s == "reconnecting" and e and "no frame for 0.3 s" in e for s, e in statuses)
    assert sup.reconnects >= 3


def test_finite_source_end_stops_and_live_source_end_reopens() -> None:
    class Short:
        live = True

        def __init__(self) -> None:
            self.n = 3

        def read(self):
            self.n -= 1
            return Frame(frame_for(True), 0.0, self.n) if self.n >= 0 else None

        def close(self) -> None:
            pass

    class File(Short):
        live = False  # what edge.sources says of a file or folder

    sup = CameraSupervisor(File, CameraOptions())  # auto: a file ends the run and every frame is kept
    sup.start()
    frames = []
    while not sup.ended:
        g = sup.get(timeout=0.2)
        if g:
            frames.append(g)
    sup.close()
    assert len(frames) == 3 and sup.status == "ended"

    live = CameraSupervisor(Short, CameraOptions(every_frame=True, reconnect_min_s=0.01))  # auto: a stream is reopened
    live.start()
    n = 0
    while n < 7:
        n += live.get(timeout=1) is not None
    assert not live.ended
    live.close()
    assert live.reconnects >= 2


def test_daemon_publishes_camera_status_and_survives_a_dead_camera(broker: Broker) -> None:
    FlakyCamera.opens = 0
    cfg = validate_config({"camera": {"id": "cam1", "source": "scripted", "watchdog_s": 0.5, "reconnect_min_s": 0.05,
                                      "reconnect_max_s": 0.2},
                           "mqtt": {"url": broker.url}})
    rec = Recorder(broker.port, ["emotion_edge/cam1/camera"])
    stop = threading.Event()
    d = Daemon(cfg, pipeline=scripted_pipeline(), stop=stop, source_factory=FlakyCamera)
    th = threading.Thread(target=d.run)
    th.start()
    try:
        assert wait_for(lambda: FlakyCamera.opens >= 3)
        assert th.is_alive()
    finally:
        stop.set()
        th.join(timeout=10)
    statuses = [json.loads(p) for p in rec.payloads("/camera")]
    seq = [s["status"] for s in statuses]
    assert "reconnecting" in seq and "ok" in seq
    assert any("cannot open: camera unplugged" in (s["error"] or "") for s in statuses)
    assert d.stats().camera_reconnects >= 2
    rec.close()
