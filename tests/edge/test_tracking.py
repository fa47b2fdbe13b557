"""Tracker: stable ids, min hits / max misses, smoothing with hysteresis."""

from __future__ import annotations

import numpy as np

from edge.tracking import Tracker, TrackerOptions

POS = np.array([0.9, 0.05, 0.05])
NEG = np.array([0.05, 0.05, 0.9])
NEU = np.array([0.1, 0.8, 0.1])


def step(tr: Tracker, boxes, probs, t):
    tracks, events = tr.match(boxes, t)
    for track, p in zip(tracks, probs):
        ev = tr.observe(track, p, t)
        if ev:
            events.append(ev)
    return tracks, events


def test_two_faces_keep_their_ids_while_moving() -> None:
    tr = Tracker(TrackerOptions(min_hits=1))
    ids = []
    for i in range(10):
        a = (0.1 + 0.01 * i, 0.2, 0.2, 0.2)
        b = (0.6 - 0.01 * i, 0.3, 0.15, 0.15)
        order = [a, b] if i % 2 else [b, a]  # detection order must not matter
        tracks, _ = step(tr, order, [POS, NEG], i)
        by_x = sorted(tracks, key=lambda t: t.box[0])
        ids.append((by_x[0].id, by_x[1].id))
    assert len(set(ids)) == 1 and ids[0][0] != ids[0][1]


def test_new_needs_min_hits_and_end_after_max_misses() -> None:
    tr = Tracker(TrackerOptions(min_hits=3, max_misses=2))
    box = (0.3, 0.3, 0.2, 0.2)
    types = []
    for t in range(3):
        types += [e.type for e in step(tr, [box], [POS], t)[1]]
    assert types == ["new"]
    for t in range(3, 5):  # two misses: still open
        types += [e.type for e in step(tr, [], [], t)[1]]
    assert types == ["new"]
    ev = step(tr, [], [], 5)[1]
    assert [e.type for e in ev] == ["end"] and ev[0].track.end_time == 2


def test_unconfirmed_blip_ends_silently() -> None:
    tr = Tracker(TrackerOptions(min_hits=3))
    step(tr, [(0.1, 0.1, 0.1, 0.1)], [POS], 0)
    _, ev = step(tr, [], [], 1)
    _, ev2 = step(tr, [], [], 2)
    assert ev == [] and ev2 == [] and tr.tracks == []


def test_hysteresis_stops_flicker_but_follows_real_change() -> None:
    tr = Tracker(TrackerOptions(min_hits=1, ema_alpha=0.5, hysteresis=0.2))
    box = (0.3, 0.3, 0.2, 0.2)
    labels = []
    # Alternating near-ties must not flip the label every frame.
    near_pos, near_neg = np.array([0.5, 0.1, 0.4]), np.array([0.4, 0.1, 0.5])
    for t in range(10):
        tracks, _ = step(tr, [box], [near_pos if t % 2 == 0 else near_neg], t)
        labels.append(tracks[0].label)
    assert set(labels) == {"positive"}
    updates = []
    for t in range(10, 16):
        updates += [e.track.label for e in step(tr, [box], [NEG], t)[1] if e.type == "update"]
    assert updates == ["negative"]


def test_abstain_gives_uncertain() -> None:
    tr = Tracker(TrackerOptions(min_hits=1, abstain_threshold=0.6))
    tracks, ev = step(tr, [(0.3, 0.3, 0.2, 0.2)], [np.array([0.4, 0.35, 0.25])], 0)
    assert ev[0].type == "new" and tracks[0].label == "uncertain"


def test_flush_ends_confirmed_tracks_only() -> None:
    tr = Tracker(TrackerOptions(min_hits=2))
    step(tr, [(0.1, 0.1, 0.2, 0.2), (0.6, 0.6, 0.2, 0.2)], [POS, NEU], 0)
    step(tr, [(0.1, 0.1, 0.2, 0.2)], [POS], 1)
    ended = tr.flush(5.0)
    assert [(e.type, e.track.id, e.track.end_time) for e in ended] == [("end", 1, 5.0)]
