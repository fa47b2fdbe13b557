"""The daemon's config: one YAML file, validated by pydantic models.

Loading goes in layers: read -> parse (YAML nodes keep their line numbers) ->
``${ENV}`` substitution -> validate. Unknown keys are errors; every error names
the key path, the line, the bad value and, for a typo'd key, the closest valid
key. Defaults are chosen so that a three-line file works::

    camera:
      id: porch
      source: rtsp://192.168.1.20:554/stream1

Secrets (the MQTT password) never go in the file itself: point
``mqtt.password_file`` at a file, or set ``EMOTION_EDGE_MQTT_PASSWORD``, or let
systemd pass a credential (``$CREDENTIALS_DIRECTORY/mqtt_password``).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

log = logging.getLogger(__name__)

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PASSWORD_ENV = "EMOTION_EDGE_MQTT_PASSWORD"
USERNAME_ENV = "EMOTION_EDGE_MQTT_USERNAME"
CREDENTIAL_PASSWORD = "mqtt_password"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CameraConfig(_Model):
    """The one camera this daemon instance serves."""

    id: str = Field(pattern=ID_PATTERN, description="camera id used in topics and Home Assistant ids: lower-case a-z, 0-9, _ and -")
    name: str | None = Field(None, description="friendly name shown in Home Assistant (default: the id)")
    source: str = Field(description="what edge.sources.open_source accepts: a device (/dev/video0), rtsp:// or http:// URL, "
                                    "picamera2, a video file or a folder of images")
    options: dict[str, Any] = Field(default_factory=dict, description="source options passed to open_source (width, height, fps, ...)")
    max_fps: float | None = Field(None, gt=0, description="process at most this many frames per second (default: as fast as frames come)")
    watchdog_s: float = Field(10.0, gt=0, description="no frame for this many seconds -> reopen the camera")
    reconnect_min_s: float = Field(1.0, gt=0, description="first delay before reopening a failed camera")
    reconnect_max_s: float = Field(60.0, gt=0, description="longest delay between camera reopen attempts (exponential backoff)")
    on_end: Literal["auto", "stop", "reopen"] = Field(
        "auto", description="when the source ends: stop the daemon, or reopen it; auto = stop for files and folders, "
                            "reopen for live cameras and streams"
    )
    every_frame: bool | None = Field(
        None, description="process every frame instead of only the newest (default: true for files and folders, "
                          "false for live cameras and streams)"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @property
    def stop_at_end(self) -> bool | None:
        """True/False when configured; None (auto) lets the source decide (files end the run, cameras reopen)."""
        return None if self.on_end == "auto" else self.on_end == "stop"


class TLSConfig(_Model):
    """TLS to the broker; certificate verification is always on unless ``insecure`` says otherwise."""

    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's certificate (default: system CAs)")
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="client private key (mutual TLS)")
    insecure: bool = Field(False, description="skip hostname verification (testing only; never in production)")

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self


class MqttConfig(_Model):
    """Broker connection and topic layout."""

    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host[:port] or mqtts://host[:port] (TLS, default port 8883)")
    prefix: str = Field("emotion_edge", pattern=r"^[^#+]+$", description="topic prefix: <prefix>/<camera>/events ...")
    client_id: str | None = Field(None, description="MQTT client id (default: emotion-edge-<camera id>)")
    username: str | None = Field(None, description="broker user name (or $EMOTION_EDGE_MQTT_USERNAME)")
    password_file: Path | None = Field(None, description="file holding the broker password (or $EMOTION_EDGE_MQTT_PASSWORD, "
                                                          "or systemd credential mqtt_password)")
    tls: TLSConfig | None = Field(None, description="TLS settings; presence (or mqtts://) turns TLS on")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive; the broker sends the Last Will after 1.5x this without traffic")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(60.0, gt=0, description="longest reconnect delay (exponential backoff)")
    connect_wait_s: float = Field(5.0, ge=0, description="at start, wait this long for the broker before opening the camera "
                                                          "(the daemon runs anyway, queueing events, if the broker is down)")
    queue_size: int = Field(1000, ge=10, description="QoS1 messages kept while the broker is away; overflow is counted in stats")
    stats_interval_s: float = Field(30.0, gt=0, description="seconds between stats messages")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise ValueError("expected mqtt://host[:port] or mqtts://host[:port]")
        if u.password:
            raise ValueError("do not put the password in the URL: use mqtt.password_file or $" + PASSWORD_ENV)
        return v

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def use_tls(self) -> bool:
        return self.tls is not None or urlparse(self.url).scheme in ("mqtts", "ssl")

    @property
    def port(self) -> int:
        return urlparse(self.url).port or (8883 if self.use_tls else 1883)

    @property
    def url_username(self) -> str | None:
        u = urlparse(self.url).username
        return unquote(u) if u else None


class ModelConfig(_Model):
    """The bundle and the per-frame path's tuning."""

    bundle: Path | None = Field(None, description="bundle directory or archive (default: the bundle shipped with the package)")
    threads: int = Field(1, ge=1, le=16, description="interpreter threads")
    score_threshold: float = Field(0.5, gt=0, lt=1, description="face detector score threshold")
    min_face_px: float = Field(20.0, ge=0, description="ignore faces smaller than this (pixels)")
    max_faces: int = Field(10, ge=1, description="classify at most this many faces per frame")
    classify_every: int = Field(1, ge=1, description="classify each tracked face every k-th frame (new faces always)")


class TrackerConfig(_Model):
    """Tracking and temporal smoothing (see edge.tracking)."""

    iou_match: float = Field(0.3, gt=0, lt=1)
    min_hits: int = Field(2, ge=1, description="frames before a face is announced (new event)")
    max_misses: int = Field(5, ge=0, description="frames without the face before it ends (end event)")
    ema_alpha: float = Field(0.4, gt=0, le=1, description="smoothing weight of the newest prediction")
    hysteresis: float = Field(0.15, ge=0, lt=1, description="lead another label needs before the label changes")


class HomeAssistantConfig(_Model):
    """Home Assistant MQTT device discovery."""

    discovery: bool = Field(True, description="publish homeassistant/device/<id>/config")
    prefix: str = Field("homeassistant", description="HA discovery prefix")


class LiveViewConfig(_Model):
    """Annotated MJPEG stream over HTTP (off by default; binds loopback unless told otherwise)."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback exposes the camera image")
    port: int = Field(8081, ge=1, le=65535)
    max_fps: float = Field(5.0, gt=0)
    quality: int = Field(80, ge=10, le=100, description="JPEG quality")
    username: str = Field("viewer", min_length=1, description="HTTP Basic user name (when a password is set)")
    password_file: Path | None = Field(None, description="file holding the live view password (or "
                                                         "$EMOTION_EDGE_LIVEVIEW_PASSWORD); required for a host "
                                                         "other than loopback")


class EdgeConfig(_Model):
    """The whole daemon config (``emotion-edge config-schema`` prints it as JSON Schema)."""

    camera: CameraConfig
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    liveview: LiveViewConfig = Field(default_factory=LiveViewConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


# ---------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> EdgeConfig:
    """Read, parse, substitute ``${ENV}`` and validate a YAML config file.

    ``overrides`` (dotted keys, e.g. ``{"camera.source": "x.mp4"}``) are applied
    after parsing, as command-line flags are. Raises ``ConfigError``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = text_line(path.read_bytes(), exc.start)
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
                          "save the config as UTF-8") from None
    return parse_config(text, str(path), overrides)


def text_line(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1


def parse_config(text: str, origin: str = "<config>", overrides: dict[str, Any] | None = None) -> EdgeConfig:
    """Like ``load_config`` for text already in memory."""
    data, lines = _parse_yaml(text, origin)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return validate_config(data, origin, lines)


def validate_config(data: Any, origin: str = "<config>", lines: dict[tuple, int] | None = None) -> EdgeConfig:
    """Validate parsed data; errors name the key, line (when known) and value."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections (camera:, mqtt:, ...), got {type(data).__name__}")
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin, lines, data)) from None


def config_from_options(overrides: dict[str, Any]) -> EdgeConfig:
    """A config built from command-line flags only (no file)."""
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        _set_dotted(data, key, value)
    return validate_config(data, "command line")


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    d = data
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def _parse_yaml(text: str, origin: str) -> tuple[Any, dict[tuple, int]]:
    try:
        loader = yaml.SafeLoader(text)  # the reader rejects control characters here already
    except yaml.YAMLError as exc:
        mark = getattr(exc, "position", None)
        where = f"{origin}:{text.count(chr(10), 0, mark) + 1}" if isinstance(mark, int) else origin
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'reason', None) or exc}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        lines: dict[tuple, int] = {}
        _walk(node, (), lines, origin)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else origin
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, lines


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int], origin: str) -> None:
    """Record the line of every key/item and substitute ${ENV} in scalars, in place."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            lines[path + (key,)] = k.start_mark.line + 1
            _walk(v, path + (key,), lines, origin)
            lines[path + (key,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), lines, origin)
    elif isinstance(node, yaml.ScalarNode) and "${" in node.value:
        node.value = _substitute(node.value, ".".join(map(str, path)), f"{origin}:{node.start_mark.line + 1}")
        if node.style is None:
            # Let "${PORT}" become an int again once substituted, as if it were written inline.
            node.tag = yaml.SafeLoader.resolve(yaml.SafeLoader, yaml.ScalarNode, node.value, (True, False))


def _substitute(value: str, key: str, where: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: {key}: environment variable ${{{name}}} is not set (set it, or write ${{{name}:-default}})")

    return _ENV.sub(repl, value)


def _format_errors(exc: ValidationError, origin: str, lines: dict[tuple, int], data: Any) -> str:
    msgs = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # The deepest located part of the path gives the line (a missing key points at its section).
        line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
        where = f"{origin}:{line}" if line else origin
        key = ".".join(map(str, loc)) or "(top level)"
        if err["type"] == "extra_forbidden":
            model = _model_at(loc[:-1])
            known = list(model.model_fields) if model else []
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else (f"; known keys: {', '.join(known)}" if known else "")
            msgs.append(f"{where}: {key}: unknown key{suggestion}")
        elif err["type"] == "missing":
            msgs.append(f"{where}: {key}: required key is missing")
        else:
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            msgs.append(f"{where}: {key}: {err['msg']}{shown}")
    head = "invalid config" if len(msgs) == 1 else f"invalid config ({len(msgs)} problems)"
    return head + ": " + "; ".join(msgs)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The config model that a key path points into (for 'did you mean')."""
    model: type[BaseModel] = EdgeConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    return model


def config_schema() -> dict[str, Any]:
    """JSON Schema of the config file."""
    schema = EdgeConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "emotion-edge daemon config"
    return schema


# ---------------------------------------------------------------- secrets


def resolve_credentials(cfg: MqttConfig, environ: dict[str, str] | None = None) -> tuple[str | None, SecretStr | None]:
    """Username and password from (in order) the config's file, the environment, systemd credentials.

    The password is a ``SecretStr`` so it never shows up in a repr or a log line.
    """
    env = os.environ if environ is None else environ
    username = cfg.username or cfg.url_username or env.get(USERNAME_ENV)
    candidates: list[Path] = []
    if cfg.password_file:
        candidates.append(cfg.password_file)
        warn_if_others_can_read(cfg.password_file, "mqtt.password_file")
    password = None
    for p in candidates:
        try:
            password = p.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise ConfigError(f"mqtt.password_file: cannot read {p}: {exc.strerror or exc}") from None
    if password is None and env.get(PASSWORD_ENV):
        password = env[PASSWORD_ENV]
    if password is None and env.get("CREDENTIALS_DIRECTORY"):
        cred = Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_PASSWORD
        if cred.is_file():
            # Empty = no password: the unit's LoadCredential= needs the file to exist even for brokers without auth.
            password = cred.read_text(encoding="utf-8").strip("\r\n") or None
    if password is not None and not username:
        raise ConfigError("an MQTT password is set but no user name: set mqtt.username (or $" + USERNAME_ENV + ")")
    return username, (SecretStr(password) if password is not None else None)


LIVEVIEW_PASSWORD_ENV = "EMOTION_EDGE_LIVEVIEW_PASSWORD"


def liveview_password(cfg: LiveViewConfig, environ: dict[str, str] | None = None) -> SecretStr | None:
    """The live view password from ``liveview.password_file`` or ``$EMOTION_EDGE_LIVEVIEW_PASSWORD``."""
    env = os.environ if environ is None else environ
    if cfg.password_file:
        warn_if_others_can_read(cfg.password_file, "liveview.password_file")
        try:
            text = Path(cfg.password_file).read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"liveview.password_file: cannot read {cfg.password_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if not text:
            raise ConfigError(f"liveview.password_file: {cfg.password_file} is empty")
        return SecretStr(text)
    if env.get(LIVEVIEW_PASSWORD_ENV):
        return SecretStr(env[LIVEVIEW_PASSWORD_ENV])
    return None


def warn_if_others_can_read(path: str | Path, key: str) -> bool:
    """Log a warning (and return True) when a file holding a secret is readable by other users."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return False  # reading it reports the problem
    if mode & 0o044:
        log.warning("%s: %s is readable by other users (mode %s): it holds a password; run `chmod 600 %s`",
                    key, path, oct(mode & 0o777), path)
        return True
    return False
