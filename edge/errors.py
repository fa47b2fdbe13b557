"""Error types. User-fixable problems carry a message that says what to do."""

from __future__ import annotations


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
