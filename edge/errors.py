"""Error types. User-fixable problems carry a message that says what to do."""

from __future__ import annotations

from collections.abc import Iterable


class EmotionEdgeError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""

    exit_code = 1


class ConfigError(EmotionEdgeError):
    """A config file or option is wrong; the message names the key and a fix."""

    exit_code = 2


class BundleError(EmotionEdgeError):
    """A model bundle is missing, corrupt, tampered with or of an unknown schema."""

    exit_code = 3


class SourceError(EmotionEdgeError):
    """A frame source (file, stream, camera) cannot be opened or read."""

    exit_code = 4


class RuntimeUnavailableError(EmotionEdgeError):
    """No TFLite interpreter package is installed."""

    exit_code = 5


def field_path(loc: Iterable[object]) -> str:
    """A pydantic error location as ``a.b.0.c`` (validator-function entries left out), for messages."""
    return ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(top level)"
