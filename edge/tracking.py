"""Face tracking across frames and temporal smoothing of labels.

Greedy IoU matching (a handful of faces per frame needs nothing heavier). A track
is confirmed after ``min_hits`` detections and ended after ``max_misses`` frames
without one. Valence probabilities are smoothed with an exponential moving
average; the published label changes only when another label leads the current
one by ``hysteresis``, so it does not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .bundle import VALENCES
from .classifier import UNCERTAIN

EventType = Literal["new", "update", "end"]


@dataclass(frozen=True)
class TrackerOptions:
    """Tuning for ``Tracker``."""

    iou_match: float = 0.3
    min_hits: int = 2
    max_misses: int = 5
    ema_alpha: float = 0.4
    hysteresis: float = 0.15
    abstain_threshold: float = 0.0


@dataclass
class Track:
    """One face over time. ``box`` is normalised (x, y, w, h)."""

    id: int
    box: tuple[float, float, float, float]
    start_time: float
    last_time: float
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    smoothed: np.ndarray | None = None  # valence probabilities (3,)
    label: str = UNCERTAIN
    score: float = 0.0
    frames_classified: int = 0
    detection_score: float = 0.0
    end_time: float | None = None
    classes: dict[str, float] = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        s = self.smoothed if self.smoothed is not None else np.zeros(3)
        return {v: round(float(p), 4) for v, p in zip(VALENCES, s)}


@dataclass(frozen=True)
class TrackEvent:
    """A change worth publishing: a track appeared, changed label, or ended."""

    type: EventType
    track: Track
    frame_time: float


def iou_xywh(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """Assigns stable ids to faces and emits new/update/end events."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []
        self._next_id = 1

    def match(self, boxes: list[tuple[float, float, float, float]], frame_time: float) -> tuple[list[Track], list[TrackEvent]]:
        """Associate this frame's normalised boxes with tracks.

        Returns the track for each box (same order) and the ``end`` events of
        tracks that ran out of misses. ``new`` events come from ``observe``.
        """
        o = self.options
        pairs = sorted(
            ((iou_xywh(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for score, ti, bi in pairs:
            if score < o.iou_match:
                break
            if ti in used_tracks or bi in assigned:
                continue
            used_tracks.add(ti)
            t = self.tracks[ti]
            t.box, t.hits, t.misses, t.last_time = boxes[bi], t.hits + 1, 0, frame_time
            assigned[bi] = t
        events: list[TrackEvent] = []
        kept: list[Track] = []
        for ti, t in enumerate(self.tracks):
            if ti not in used_tracks:
                t.misses += 1
                if t.misses > o.max_misses or not t.confirmed and t.misses > 1:
                    if t.confirmed:
                        t.end_time = t.last_time
                        events.append(TrackEvent("end", t, frame_time))
                    continue
            kept.append(t)
        for bi, b in enumerate(boxes):
            if bi not in assigned:
                t = Track(id=self._next_id, box=b, start_time=frame_time, last_time=frame_time)
                self._next_id += 1
                kept.append(t)
                assigned[bi] = t
        self.tracks = kept
        return [assigned[i] for i in range(len(boxes))], events

    def observe(self, track: Track, valence: np.ndarray | None, frame_time: float,
                classes: dict[str, float] | None = None) -> TrackEvent | None:
        """Fold a new valence distribution into a track; return ``new`` or ``update`` if due."""
        o = self.options
        if valence is not None:
            v = np.asarray(valence, np.float32)
            track.smoothed = v if track.smoothed is None else (1 - o.ema_alpha) * track.smoothed + o.ema_alpha * v
            track.frames_classified += 1
            if classes:
                track.classes = classes
        if track.smoothed is None:
            return None
        new_label, new_score = self._label(track)
        track.score = new_score
        if not track.confirmed:
            if track.hits >= o.min_hits:
                track.confirmed = True
                track.label = new_label
                return TrackEvent("new", track, frame_time)
            track.label = new_label
            return None
        if new_label != track.label:
            track.label = new_label
            return TrackEvent("update", track, frame_time)
        return None

    def _label(self, track: Track) -> tuple[str, float]:
        o = self.options
        s = track.smoothed
        if s is None:  # only called after a first prediction; never trust `assert` (gone under -O)
            raise RuntimeError(f"track {track.id} has no prediction yet")
        top = int(np.argmax(s))
        top_label, top_p = VALENCES[top], float(s[top])
        if top_p < o.abstain_threshold:
            return UNCERTAIN, top_p
        cur = track.label
        if track.confirmed and cur in VALENCES and cur != top_label:
            # Hysteresis: switch only when the challenger leads clearly.
            if top_p - float(s[VALENCES.index(cur)]) < o.hysteresis:
                return cur, float(s[VALENCES.index(cur)])
        return top_label, top_p

    def flush(self, frame_time: float) -> list[TrackEvent]:
        """End every confirmed track (used on shutdown)."""
        events = []
        for t in self.tracks:
            if t.confirmed:
                t.end_time = frame_time
                events.append(TrackEvent("end", t, frame_time))
        self.tracks = []
        return events
