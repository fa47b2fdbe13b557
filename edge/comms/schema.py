"""The wire format: every JSON payload the daemon publishes, as pydantic models.

One source per schema: the daemon builds these, ``edge.comms.client`` parses
them, and ``docs/mqtt.md`` publishes their JSON Schema
(``emotion-edge config-schema --wire`` prints it). Consumers must ignore keys they do
not know (new keys may appear without a schema version bump); a change that
breaks consumers bumps ``schema_version``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
Label = Literal["positive", "neutral", "negative", "uncertain"]
EventType = Literal["new", "update", "end"]


class _Wire(BaseModel):
    # Tolerant when parsing what others (older/newer daemons) send: unknown keys are ignored.
    # Every key is always sent (null when empty), so the published schema marks them all required.
    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_serialization_defaults_required=True)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False)


class Scores(_Wire):
    """Smoothed valence probabilities (sum to 1)."""

    positive: float
    neutral: float
    negative: float


class Box(_Wire):
    """Face box as fractions of the frame: left, top, width, height."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(ge=0, le=1)
    h: float = Field(ge=0, le=1)


class Event(_Wire):
    """One tracked face changed: it appeared (``new``), its smoothed label changed (``update``), it left (``end``)."""

    schema_version: int = SCHEMA_VERSION
    type: EventType
    id: int = Field(description="track id, stable while the face stays in view")
    seq: int = Field(description="per-daemon-run sequence number of events; gaps mean lost events, repeats are QoS1 redeliveries")
    camera: str
    label: Label = Field(description="smoothed label; uncertain when the model abstains")
    previous_label: Label | None = Field(None, description="on update: the label before the change")
    score: float = Field(description="smoothed probability of label")
    scores: Scores
    box: Box
    start_time: float = Field(description="unix time the face was first seen")
    end_time: float | None = Field(None, description="unix time the face was last seen (end events)")
    frame_time: float = Field(description="unix time the frame that caused this event was captured")
    model: str = Field(description="bundle id")


class TrackState(_Wire):
    """One face now in view, as summarised in ``State``."""

    id: int
    label: Label
    score: float


class State(_Wire):
    """What the camera sees now (retained; published when it changes)."""

    schema_version: int = SCHEMA_VERSION
    camera: str
    label: Label | Literal["none"] = Field(description="dominant label of the faces in view, or none")
    faces: int = Field(ge=0, description="confirmed faces in view")
    score: float = Field(0.0, description="mean score of the faces with the dominant label")
    tracks: list[TrackState] = Field(default_factory=list)
    time: float


class CameraStatus(_Wire):
    """The camera's health (retained)."""

    schema_version: int = SCHEMA_VERSION
    camera: str
    status: Literal["starting", "ok", "reconnecting", "ended"]
    error: str | None = None
    reconnects: int = 0
    time: float


class Stats(_Wire):
    """Periodic health figures (QoS0)."""

    schema_version: int = SCHEMA_VERSION
    camera: str
    version: str
    model: str
    uptime_s: float
    camera_fps: float = Field(description="frames/s delivered by the camera")
    processed_fps: float = Field(description="frames/s run through the pipeline")
    skipped_frames: int = Field(description="frames dropped because a newer one arrived first (since start)")
    stage_ms: dict[str, float] = Field(description="mean ms per pipeline stage over the last interval")
    frame_ms: float = Field(description="mean ms of the whole per-frame path over the last interval")
    faces: int
    camera_status: str
    camera_reconnects: int
    mqtt_reconnects: int = Field(description="broker connections after the first")
    events_published: int = Field(description="events the broker acknowledged (QoS1)")
    events_dropped: int = Field(description="events dropped because the outgoing queue was full")
    queue_depth: int = Field(description="QoS1 events waiting for the broker's acknowledgement")
    frame_errors: int = Field(0, description="frames the pipeline failed on (since start)")
    time: float


WIRE_MODELS: dict[str, type[_Wire]] = {"events": Event, "state": State, "stats": Stats, "camera": CameraStatus}


def json_schemas() -> dict[str, dict]:
    """JSON Schema of each payload, keyed by topic leaf."""
    return {leaf: model.model_json_schema(mode="serialization") for leaf, model in WIRE_MODELS.items()}

