"""Which plugin opens which source spec; factories are imported only when used.

Each entry says how to recognise a spec (URL schemes, prefixes, or a predicate)
and where its factory lives (``"module:function"``). ``open_source`` walks the
table in order: core code never names a plugin, and adding a source type is one
``register_source`` call.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import SourceError
from .base import FrameSource

DEFAULT_CONFIG_KEY = "camera.source"


@dataclass(frozen=True)
class SourceType:
    """One kind of source: how to recognise its spec and where its factory is.

    The factory is called as ``factory(spec, config_key=..., **options)``.
    """

    name: str
    factory: str  # "package.module:function"
    prefixes: tuple[str, ...] = ()  # case-insensitive spec prefixes, e.g. "rtsp://"
    matches: Callable[[str], bool] | None = None
    example: str = ""
    options: tuple[str, ...] = field(default=())

    def accepts(self, spec: str) -> bool:
        low = spec.lower()
        if any(low.startswith(p) for p in self.prefixes):
            return True
        return bool(self.matches and self.matches(spec))

    def load(self) -> Callable[..., FrameSource]:
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


# /dev/v4l/by-id/... names stay the same across reboots and USB ports.
_V4L2_RE = re.compile(r"^(/dev/video\d+|/dev/v4l/.+|\d+|v4l2:.+)$")
_REGISTRY: list[SourceType] = [
    SourceType(
        "stream",
        "edge.sources.stream:open_stream",
        prefixes=("rtsp://", "rtsps://", "http://", "https://"),
        example="rtsp://user:pass@192.168.1.20:554/stream1",
    ),
    SourceType(
        "picamera2",
        "edge.sources.picamera:open_picamera2",
        prefixes=("picam:", "picamera2:"),
        matches=lambda s: s.lower() in ("picam", "picamera2"),
        example="picamera2:0",
    ),
    SourceType(
        "v4l2",
        "edge.sources.v4l2:open_v4l2",
        matches=lambda s: bool(_V4L2_RE.match(s.strip())),
        example="/dev/video0",
    ),
    # Last: anything else is a path (video file, image, folder of images).
    SourceType(
        "file",
        "edge.sources.files:open_path",
        prefixes=("file://",),
        matches=lambda s: "://" not in s,
        example="clip.mp4, photo.jpg or a folder of images",
    ),
]


def register_source(kind: SourceType, first: bool = True) -> None:
    """Add a source type (tried before the built-in ones unless ``first=False``)."""
    global _REGISTRY
    others = [k for k in _REGISTRY if k.name != kind.name]
    _REGISTRY = [kind, *others] if first else [*others, kind]


def source_types() -> list[SourceType]:
    """The table ``open_source`` walks, in order."""
    return list(_REGISTRY)


def open_source(spec: str | int, *, config_key: str = DEFAULT_CONFIG_KEY, **options: Any) -> FrameSource:
    """Open a frame source from a spec: a path, a URL, ``/dev/videoN``, a camera
    index or ``picamera2:N``. ``options`` go to that source's factory.

    Raises ``SourceError`` when nothing accepts the spec, when an option is
    unknown, or when the source cannot be opened; ``config_key`` names the
    setting the spec came from, for messages a user can act on.
    """
    text = str(spec).strip()
    if not text:
        raise SourceError(f"{config_key} is empty; give a file, folder, URL, /dev/videoN or picamera2:0")
    for kind in _REGISTRY:
        if kind.accepts(text):
            factory = kind.load()
            _check_options(kind.name, factory, options, config_key)
            return factory(text, config_key=config_key, **options)
    examples = "; ".join(f"{k.name}: {k.example}" for k in _REGISTRY if k.example)
    raise SourceError(f"{config_key}: no source type accepts {text!r}; examples: {examples}")


def _check_options(name: str, factory: Callable[..., Any], options: dict[str, Any], config_key: str) -> None:
    params = inspect.signature(factory).parameters
    allowed = sorted(p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY and p != "config_key")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SourceError(
            f"{config_key}: unknown option(s) {', '.join(unknown)} for a {name} source; "
            f"it takes: {', '.join(allowed) or 'no options'}"
        )


def import_optional(package: str, config_key: str, install: str) -> Any:
    """Import an optional package or raise ``SourceError`` naming it and the key that wanted it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise SourceError(
            f"{config_key} needs the Python package {package!r}, which is not importable ({exc}); {install}"
        ) from None
