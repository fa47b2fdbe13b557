"""Home Assistant MQTT device discovery (one retained ``homeassistant/device/<camera>/config``).

The device-based format (HA 2024.11+): ``dev`` describes the device, ``o`` the
software that publishes it, ``cmps`` its entities (each with ``p``, the
platform, and a ``unique_id``); options shared by all entities (availability,
QoS) sit at the top level. Entities read the daemon's own topics through
templates, so the daemon publishes one contract for every consumer.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .topics import OFFLINE, ONLINE, Topics

ORIGIN_URL = "https://github.com/emotion-edge/emotion-edge"
EVENT_TYPES = ["positive", "neutral", "negative"]
MOOD_OPTIONS = ["positive", "neutral", "negative", "uncertain", "none"]

# Fire the HA event on new/update with a definite label; other events render empty and HA ignores them.
_EVENT_TEMPLATE = (
    "{% if value_json.type != 'end' and value_json.label in ['positive', 'neutral', 'negative'] %}"
    "{{ {'event_type': value_json.label, 'track_id': value_json.id, 'score': value_json.score, "
    "'change': value_json.type} | tojson }}{% endif %}"
)


def discovery_payload(topics: Topics, name: str | None = None, model: str = "unknown") -> dict[str, Any]:
    """The device discovery payload for one camera."""
    cam = topics.camera
    uid = f"emotion_edge_{cam}"
    cmps: dict[str, dict[str, Any]] = {
        f"{uid}_expression": {
            "p": "event",
            "name": "Expression",
            "unique_id": f"{uid}_expression",
            "state_topic": topics.events,
            "event_types": EVENT_TYPES,
            "value_template": _EVENT_TEMPLATE,
            "icon": "mdi:emoticon-outline",
        },
        f"{uid}_mood": {
            "p": "sensor",
            "name": "Mood",
            "unique_id": f"{uid}_mood",
            "state_topic": topics.state,
            "device_class": "enum",
            "options": MOOD_OPTIONS,
            "value_template": "{{ value_json.label }}",
            "icon": "mdi:emoticon-happy-outline",
        },
        f"{uid}_presence": {
            "p": "binary_sensor",
            "name": "Face present",
            "unique_id": f"{uid}_presence",
            "state_topic": topics.state,
            "device_class": "occupancy",
            "value_template": "{{ 'ON' if value_json.faces > 0 else 'OFF' }}",
        },
        f"{uid}_faces": {
            "p": "sensor",
            "name": "Faces",
            "unique_id": f"{uid}_faces",
            "state_topic": topics.state,
            "state_class": "measurement",
            "value_template": "{{ value_json.faces }}",
            "icon": "mdi:account-multiple",
        },
        f"{uid}_confidence": {
            "p": "sensor",
            "name": "Confidence",
            "unique_id": f"{uid}_confidence",
            "state_topic": topics.state,
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "value_template": "{{ (value_json.score * 100) | round(1) }}",
            "icon": "mdi:gauge",
        },
        f"{uid}_fps": {
            "p": "sensor",
            "name": "Processed fps",
            "unique_id": f"{uid}_fps",
            "state_topic": topics.stats,
            "entity_category": "diagnostic",
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "value_template": "{{ value_json.processed_fps }}",
            "icon": "mdi:speedometer",
        },
        f"{uid}_camera_fps": {
            "p": "sensor",
            "name": "Camera fps",
            "unique_id": f"{uid}_camera_fps",
            "state_topic": topics.stats,
            "entity_category": "diagnostic",
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "value_template": "{{ value_json.camera_fps }}",
            "icon": "mdi:camera",
        },
        f"{uid}_latency": {
            "p": "sensor",
            "name": "Frame latency",
            "unique_id": f"{uid}_latency",
            "state_topic": topics.stats,
            "entity_category": "diagnostic",
            "device_class": "duration",
            "unit_of_measurement": "ms",
            "state_class": "measurement",
            "value_template": "{{ value_json.frame_ms }}",
        },
    }
    return {
        "dev": {
            "ids": [uid],
            "name": name or f"Emotion edge {cam}",
            "mf": "emotion-edge",
            "mdl": f"valence camera ({model})",
            "sw": __version__,
        },
        "o": {"name": "emotion-edge", "sw": __version__, "url": ORIGIN_URL},
        "cmps": cmps,
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": 1,
    }
