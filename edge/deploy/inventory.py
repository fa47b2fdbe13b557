"""Which hosts to deploy to: ``--host`` flags or an inventory file.

``hosts.yaml``::

    defaults:                 # every host gets these unless it says otherwise
      user: pi
      camera: front
      identity_file: ~/.ssh/id_ed25519
    hosts:
      - kitchen.local         # a bare name takes every default
      - host: door.local
        camera: door
        source: rtsp://192.168.1.20:554/stream1    # per-host ${EMOTION_EDGE_SOURCE}
        mqtt_url: mqtt://10.0.0.2:1883             # per-host ${EMOTION_EDGE_MQTT_URL}
        mqtt_password_file: secrets/door-mqtt-password
      - host: admin@10.0.0.12
        port: 2222
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError, field_path

CAMERA_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SAFE_VALUE = r'^[^"$`\\\n]*$'


class HostSettings(BaseModel):
    """Per-host settings; each may come from ``defaults``."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, description="SSH user (or write user@host)")
    port: int | None = Field(None, ge=1, le=65535)
    identity_file: Path | None = None
    camera: str | None = Field(None, pattern=CAMERA_PATTERN, description="camera instance: emotion-edge@<camera>")
    mqtt_password_file: Path | None = Field(None, description="installed as the camera's MQTT password credential")
    prefix: str | None = Field(None, description="install under this directory (implies systemd: false)")
    systemd: bool | None = Field(None, description="false: run the daemon as a pidfile process (no unit)")
    python: str | None = Field(None, description="Python interpreter on the host for the venv (default python3)")
    # Reach the daemon's config as ${EMOTION_EDGE_SOURCE} / ${EMOTION_EDGE_MQTT_URL} through
    # /etc/emotion-edge/<camera>.env (KEY="value" for systemd and sh: no quoting characters).
    source: str | None = Field(None, pattern=SAFE_VALUE, description="camera source on this host ($EMOTION_EDGE_SOURCE)")
    mqtt_url: str | None = Field(None, pattern=SAFE_VALUE,
                                 description="broker the daemon on this host uses ($EMOTION_EDGE_MQTT_URL)")


class HostSpec(HostSettings):
    """One host of the inventory, defaults applied."""

    host: str = Field(min_length=1)

    @field_validator("host")
    @classmethod
    def _no_options(cls, v: str) -> str:
        # Never let a host name turn into an ssh option.
        if v.startswith("-") or re.search(r"\s", v):
            raise ValueError("a host is [user@]name, without spaces or a leading '-'")
        return v

    @property
    def destination(self) -> str:
        return self.host if "@" in self.host or not self.user else f"{self.user}@{self.host}"


class Inventory(BaseModel):
    """``hosts.yaml``."""

    model_config = ConfigDict(extra="forbid")

    defaults: HostSettings = Field(default_factory=HostSettings)
    hosts: list[HostSpec | str] = Field(min_length=1)

    def resolved(self, overrides: dict[str, Any] | None = None) -> list[HostSpec]:
        """Hosts with ``defaults``, then command-line ``overrides``, then their own settings applied."""
        out = []
        base = self.defaults.model_dump(exclude_none=True)
        for h in self.hosts:
            own = {"host": h} if isinstance(h, str) else h.model_dump(exclude_none=True)
            # Command-line settings beat the file's defaults, not what a host says for itself.
            merged = {**base, **(overrides or {}), **own}
            out.append(HostSpec.model_validate(merged))
        # One host may run several cameras (or installs under different prefixes), not the same one twice.
        keys = [(h.destination, h.camera, h.prefix) for h in out]
        dupes = sorted({k[0] for k in keys if keys.count(k) > 1})
        if dupes:
            raise ConfigError(f"inventory lists {', '.join(dupes)} more than once with the same camera")
        return out


def load_inventory(path: Path, overrides: dict[str, Any] | None = None) -> list[HostSpec]:
    """Read and validate an inventory file; ``ConfigError`` names the key and fix."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read inventory {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if isinstance(data, list):
        data = {"hosts": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected `hosts:` (a list) and optional `defaults:`")
    try:
        return Inventory.model_validate(data).resolved(overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = field_path(err["loc"])
        raise ConfigError(f"{path}: {loc}: {err['msg']} ({exc.error_count()} problem(s))") from None


def hosts_from_flags(hosts: list[str], settings: dict[str, Any]) -> list[HostSpec]:
    """``--host`` flags with the command line's settings."""
    try:
        return Inventory(hosts=[{"host": h} for h in hosts]).resolved(settings)  # type: ignore[list-item]
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--host: {err['msg']}") from None
