"""Every topic string the daemon publishes or subscribes to, built in one place."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """Topics of one camera: ``<prefix>/<camera>/...`` plus Home Assistant discovery."""

    prefix: str
    camera: str
    discovery_prefix: str = "homeassistant"

    def _t(self, leaf: str) -> str:
        return f"{self.prefix}/{self.camera}/{leaf}"

    @property
    def availability(self) -> str:
        """Retained ``online`` / ``offline`` (the Last Will)."""
        return self._t("availability")

    @property
    def events(self) -> str:
        """QoS1 per-face events: new / update / end."""
        return self._t("events")

    @property
    def state(self) -> str:
        """Retained: the dominant label of faces in view and the face count."""
        return self._t("state")

    @property
    def stats(self) -> str:
        """Periodic QoS0 health figures."""
        return self._t("stats")

    @property
    def camera_status(self) -> str:
        """Retained camera status: ok / reconnecting / ended."""
        return self._t("camera")

    @property
    def ha_config(self) -> str:
        """Home Assistant device discovery."""
        return f"{self.discovery_prefix}/device/{self.camera}/config"

    @property
    def ha_status(self) -> str:
        """Home Assistant announces ``online`` here after it starts."""
        return f"{self.discovery_prefix}/status"


def subscription(prefix: str, leaf: str, camera: str | None = None) -> str:
    """A subscription filter for one camera or, with ``camera=None``, all of them."""
    return f"{prefix}/{camera or '+'}/{leaf}"


def parse_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``<prefix>/<camera>/<leaf>`` -> ``(camera, leaf)``; None for other topics."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else None
