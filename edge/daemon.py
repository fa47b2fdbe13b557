"""The daemon loop: camera -> pipeline -> MQTT.

``CameraSupervisor`` (newest frame, watchdog) -> ``Pipeline.process`` ->
``EventPublisher`` (wire models on the MQTT contract) -> ``Publisher``.
One stop event ends the loop (SIGTERM/SIGINT set it): open tracks get their
``end`` events, availability goes ``offline``, and ``run`` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import __version__
from .camera import CameraOptions, CameraSupervisor, SourceLike
from .comms.discovery import discovery_payload
from .comms.publisher import MqttOptions, MqttPublisher, Publisher, make_client_id
from .comms.schema import Box, CameraStatus, Event, Scores, State, Stats, TrackState
from .comms.topics import OFFLINE, ONLINE, Topics
from .config import EdgeConfig, resolve_credentials
from .notify import SystemdNotifier

log = logging.getLogger(__name__)


class PipelineLike(Protocol):
    bundle_id: str

    def process(self, frame: Any, frame_time: float | None = None) -> Any: ...

    def flush(self, frame_time: float | None = None) -> list: ...

    def close(self) -> None: ...


@dataclass
class DaemonCounters:
    """Loop figures, reset per stats interval where noted."""

    processed: int = 0
    frame_errors: int = 0
    events: int = 0
    interval_processed: int = 0
    interval_frames_start: int = 0
    interval_start: float = field(default_factory=time.monotonic)
    stage_ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    frame_ms: float = 0.0
    total_frame_ms: float = 0.0  # since start (for benchmarks)


class EventPublisher:
    """Turns pipeline output into the MQTT contract: events, retained state, camera status, stats."""

    def __init__(self, publisher: Publisher, topics: Topics, model: str) -> None:
        self.publisher = publisher
        self.topics = topics
        self.model = model
        self.seq = 0
        # Announced tracks (new sent, end not yet): the state is about these, so it agrees with the events.
        self.open_tracks: dict[int, TrackState] = {}
        self._last_state_key: tuple | None = None
        self.last_state: State | None = None

    def event(self, ev: Any) -> Event:
        """Publish one ``TrackEvent`` as an ``Event`` (QoS1); returns what was sent."""
        t = ev.track
        self.seq += 1
        prev = self.open_tracks[t.id].label if t.id in self.open_tracks else None
        x, y, w, h = (min(1.0, max(0.0, float(v))) for v in t.box)
        msg = Event(
            type=ev.type,
            id=t.id,
            seq=self.seq,
            camera=self.topics.camera,
            label=t.label,
            previous_label=prev if ev.type == "update" else None,
            score=round(float(t.score), 4),
            scores=Scores(**t.scores),
            box=Box(x=x, y=y, w=w, h=h),
            start_time=t.start_time,
            end_time=t.end_time if ev.type == "end" else None,
            frame_time=ev.frame_time,
            model=self.model,
        )
        if ev.type == "end":
            self.open_tracks.pop(t.id, None)
        else:
            self.open_tracks[t.id] = TrackState(id=t.id, label=t.label, score=msg.score)
        self.publisher.publish(self.topics.events, msg.to_json(), qos=1, key=self.seq)
        return msg

    def state(self, faces: list[Any], now: float, force: bool = False) -> State | None:
        """Publish the retained state when the announced tracks or their labels changed."""
        for f in faces:
            if f.track_id in self.open_tracks:
                self.open_tracks[f.track_id] = TrackState(id=f.track_id, label=f.label, score=f.score)
        shown = sorted(self.open_tracks.values(), key=lambda t: t.id)
        label, score = dominant(shown)
        # Coarse scores in the key: the confidence follows without a message per frame.
        key = (label, tuple((t.id, t.label, round(t.score, 1)) for t in shown))
        if key == self._last_state_key and not force:
            return None
        self._last_state_key = key
        st = State(
            camera=self.topics.camera,
            label=label,
            faces=len(shown),
            score=score,
            tracks=shown,
            time=now,
        )
        self.last_state = st
        self.publisher.publish(self.topics.state, st.to_json(), qos=1, retain=True)
        return st

    def camera_status(self, status: str, error: str | None, reconnects: int) -> None:
        cs = CameraStatus(camera=self.topics.camera, status=status, error=error, reconnects=reconnects, time=time.time())  # type: ignore[arg-type]
        self.publisher.publish(self.topics.camera_status, cs.to_json(), qos=1, retain=True)

    def availability(self, online: bool) -> None:
        self.publisher.publish(self.topics.availability, ONLINE if online else OFFLINE, qos=1, retain=True)


def dominant(faces: list[Any]) -> tuple[str, float]:
    """Most common label among faces (ties: higher mean score); ``none`` when no face."""
    if not faces:
        return "none", 0.0
    counts = Counter(f.label for f in faces)
    sums: dict[str, float] = defaultdict(float)
    for f in faces:
        sums[f.label] += f.score
    label = max(counts, key=lambda k: (counts[k], sums[k] / counts[k]))
    return label, round(sums[label] / counts[label], 4)


def build_publisher(cfg: EdgeConfig) -> MqttPublisher:
    """An ``MqttPublisher`` for the config, credentials resolved from file/env/systemd."""
    m = cfg.mqtt
    username, password = resolve_credentials(m)
    topics = topics_for(cfg)
    return MqttPublisher(
        MqttOptions(
            host=m.host,
            port=m.port,
            client_id=m.client_id or make_client_id(cfg.camera.id),
            keepalive_s=m.keepalive_s,
            username=username,
            password=password,
            tls=m.use_tls,
            ca_file=m.tls.ca_file if m.tls else None,
            cert_file=m.tls.cert_file if m.tls else None,
            key_file=m.tls.key_file if m.tls else None,
            tls_insecure=m.tls.insecure if m.tls else False,
            will_topic=topics.availability,
            will_payload=OFFLINE,
            queue_size=m.queue_size,
            reconnect_min_s=m.reconnect_min_s,
            reconnect_max_s=m.reconnect_max_s,
        )
    )


def topics_for(cfg: EdgeConfig) -> Topics:
    return Topics(cfg.mqtt.prefix, cfg.camera.id, cfg.homeassistant.prefix)


def build_pipeline(cfg: EdgeConfig) -> PipelineLike:
    """The real pipeline from the config's bundle (default: the shipped one)."""
    from .pipeline import Pipeline, PipelineOptions
    from .tracking import TrackerOptions

    t = cfg.tracker
    m = cfg.model
    opts = PipelineOptions(
        num_threads=m.threads,
        score_threshold=m.score_threshold,
        min_face_px=m.min_face_px,
        max_faces=m.max_faces,
        classify_every=m.classify_every,
        tracker=TrackerOptions(iou_match=t.iou_match, min_hits=t.min_hits, max_misses=t.max_misses,
                               ema_alpha=t.ema_alpha, hysteresis=t.hysteresis),
    )
    return Pipeline.from_bundle(m.bundle, opts)


def check_source(cfg: EdgeConfig) -> None:
    """Fail at start on what no retry can fix: a spec no source type accepts, an unknown option, a missing file.

    A camera that is merely unreachable is not an error here: the watchdog retries it forever.
    """
    import inspect
    from pathlib import Path

    from .errors import ConfigError
    from .sources import source_types

    spec = cfg.camera.source.strip()
    kind = next((k for k in source_types() if k.accepts(spec)), None)
    if kind is None:
        examples = "; ".join(f"{k.name}: {k.example}" for k in source_types() if k.example)
        raise ConfigError(f"camera.source: no source type accepts {spec!r}; examples: {examples}")
    params = inspect.signature(kind.load()).parameters
    allowed = sorted(p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY and p != "config_key")
    unknown = sorted(set(cfg.camera.options) - set(allowed))
    if unknown:
        raise ConfigError(f"camera.options: unknown option(s) {', '.join(unknown)} for a {kind.name} source; "
                          f"it takes: {', '.join(allowed) or 'no options'}")
    if kind.name == "file":
        path = Path(spec.removeprefix("file://"))
        if not path.exists():
            raise ConfigError(f"camera.source: no such file or folder: {path}")


def source_factory_for(cfg: EdgeConfig) -> Callable[[], SourceLike]:
    """Opens the configured source through ``edge.sources.open_source`` (imported lazily)."""

    def factory() -> SourceLike:
        from .sources import open_source

        return open_source(cfg.camera.source, **cfg.camera.options)

    return factory


class Daemon:
    """One camera's loop. ``run()`` blocks until ``stop`` is set or a finite source ends."""

    def __init__(
        self,
        cfg: EdgeConfig,
        *,
        pipeline: PipelineLike | None = None,
        publisher: Publisher | None = None,
        source_factory: Callable[[], SourceLike] | None = None,
        stop: threading.Event | None = None,
        notifier: SystemdNotifier | None = None,
        on_frame: Callable[[Any, Any], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.topics = topics_for(cfg)
        if source_factory is None:
            check_source(cfg)  # before loading the model: config mistakes surface first
        self.pipeline = pipeline if pipeline is not None else build_pipeline(cfg)
        self.publisher = publisher if publisher is not None else build_publisher(cfg)
        self.out = EventPublisher(self.publisher, self.topics, self.pipeline.bundle_id)
        self.notifier = notifier or SystemdNotifier()
        self.counters = DaemonCounters()
        self.on_frame = on_frame
        self.started = time.monotonic()
        c = cfg.camera
        self.camera = CameraSupervisor(
            source_factory or source_factory_for(cfg),
            CameraOptions(watchdog_s=c.watchdog_s, reconnect_min_s=c.reconnect_min_s, reconnect_max_s=c.reconnect_max_s,
                          stop_at_end=c.stop_at_end, every_frame=c.every_frame),
            on_status=self._camera_status,
        )
        self._last_error_log = 0.0
        self._last_stats = time.monotonic()
        self._faces_now = 0

    # ------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Run until stopped; returns the process exit code (0 on a clean stop or the end of a file)."""
        cfg = self.cfg
        self.out.availability(True)  # first retained topic: republished first on every reconnect
        self.out.camera_status("starting", None, 0)
        self.out.state([], time.time(), force=True)
        if cfg.homeassistant.discovery:
            self._send_discovery()
            self.publisher.subscribe(self.topics.ha_status, self._on_ha_status)
        self.publisher.start()
        wait = getattr(self.publisher, "wait_connected", None)
        if wait is not None and cfg.mqtt.connect_wait_s:
            deadline = time.monotonic() + cfg.mqtt.connect_wait_s
            while not wait(0.1) and time.monotonic() < deadline and not self.stop.is_set():
                pass
            if not wait(0):
                log.warning("daemon: broker %s not reachable yet; running anyway (events are queued)", cfg.mqtt.url)
        self.camera.start()
        self.notifier.ready(f"camera {cfg.camera.id}: running")
        log.info("daemon: camera %s running (model %s)", cfg.camera.id, self.pipeline.bundle_id)
        min_dt = 1.0 / cfg.camera.max_fps if cfg.camera.max_fps else 0.0
        last_processed = 0.0
        try:
            while not self.stop.is_set():
                self.notifier.watchdog()
                self._maybe_stats()
                g = self.camera.get(timeout=0.25)
                if g is None:
                    if self.camera.ended:
                        log.info("daemon: the source ended")
                        break
                    continue
                if min_dt and g.grabbed_at - last_processed < min_dt:
                    continue
                last_processed = g.grabbed_at
                self._process(g)
        finally:
            self._shutdown()
        return 0

    def _process(self, g: Any) -> None:
        frame = g.frame
        ft = float(frame.time) if getattr(frame, "time", 0) and frame.time > 1e9 else g.grabbed_at
        t0 = time.perf_counter()
        try:
            result = self.pipeline.process(frame.image, ft)
        except Exception as exc:  # per-frame faults are counted, not fatal
            self.counters.frame_errors += 1
            now = time.monotonic()
            if now - self._last_error_log > 10:
                self._last_error_log = now
                log.error("daemon: frame %s failed: %s (%d so far)", getattr(frame, "index", "?"), exc,
                          self.counters.frame_errors)
            return
        c = self.counters
        dt_ms = (time.perf_counter() - t0) * 1e3
        c.frame_ms += dt_ms
        c.total_frame_ms += dt_ms
        for k, v in result.timings.items():
            c.stage_ms[k] += v
        c.processed += 1
        c.interval_processed += 1
        for ev in result.events:
            self.out.event(ev)
            c.events += 1
        self.out.state(result.faces, ft)
        self._faces_now = len(self.out.open_tracks)
        if self.on_frame is not None:
            self.on_frame(frame, result)

    def _shutdown(self) -> None:
        now = time.time()
        try:
            for ev in self.pipeline.flush(now):
                self.out.event(ev)
                self.counters.events += 1
            self.out.state([], now)  # every track ended: none
        except Exception:
            log.exception("daemon: flushing tracks failed")
        self.notifier.stopping()
        # Release the camera promptly (a restarted service needs the device) but never wait long for a stuck
        # driver: its threads are daemon threads, and the stop budget is 2 s.
        self.camera.close(timeout=0.3)
        self._publish_stats()
        self.out.availability(False)
        self.publisher.stop(timeout=1.0)
        self.pipeline.close()
        log.info("daemon: stopped (%d frames, %d events)", self.counters.processed, self.counters.events)

    # ------------------------------------------------------------ helpers

    def _camera_status(self, status: str, error: str | None) -> None:
        if error:
            log.warning("camera %s: %s: %s", self.cfg.camera.id, status, error)
        self.out.camera_status(status, error, self.camera.reconnects)

    def _send_discovery(self) -> None:
        payload = discovery_payload(self.topics, self.cfg.camera.name, self.pipeline.bundle_id)
        import json

        self.publisher.publish(self.topics.ha_config, json.dumps(payload), qos=1, retain=True)

    def _on_ha_status(self, topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            log.info("Home Assistant came online: re-sending discovery")
            self._send_discovery()

    def _maybe_stats(self) -> None:
        if time.monotonic() - self._last_stats >= self.cfg.mqtt.stats_interval_s:
            self._publish_stats()

    def stats(self) -> Stats:
        """Figures since the last stats message (rates) and since start (counts)."""
        c = self.counters
        now = time.monotonic()
        dt = max(1e-6, now - c.interval_start)
        n = max(1, c.interval_processed)
        pc = getattr(self.publisher, "counters", None)
        depth = self.publisher.queue_depth() if hasattr(self.publisher, "queue_depth") else 0
        return Stats(
            camera=self.cfg.camera.id,
            version=__version__,
            model=self.pipeline.bundle_id,
            uptime_s=round(now - self.started, 1),
            camera_fps=round((self.camera.frames - c.interval_frames_start) / dt, 2),
            processed_fps=round(c.interval_processed / dt, 2),
            skipped_frames=self.camera.dropped,
            stage_ms={k: round(v / n, 3) for k, v in c.stage_ms.items()},
            frame_ms=round(c.frame_ms / n, 3),
            faces=self._faces_now,
            camera_status=self.camera.status,
            camera_reconnects=self.camera.reconnects,
            mqtt_reconnects=pc.reconnects if pc else 0,
            events_published=pc.published if pc else 0,
            events_dropped=pc.dropped if pc else 0,
            queue_depth=depth,
            frame_errors=c.frame_errors,
            time=time.time(),
        )

    def _publish_stats(self) -> None:
        st = self.stats()
        self.publisher.publish(self.topics.stats, st.to_json(), qos=0)
        c = self.counters
        c.interval_start = time.monotonic()
        c.interval_frames_start = self.camera.frames
        c.interval_processed = 0
        c.stage_ms = defaultdict(float)
        c.frame_ms = 0.0
        self._last_stats = time.monotonic()
