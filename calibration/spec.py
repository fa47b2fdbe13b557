"""Parse the target input spec (``--for``): a bundle, a JSON file, or ``key=value`` pairs."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from edge.errors import ConfigError, field_path
from edge.preprocess import PreprocessSpec

_ALIASES = {"size": "input_size", "input-size": "input_size", "colour": "color"}
_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parse_spec(text: str) -> PreprocessSpec:
    """``PreprocessSpec`` from a bundle dir / bundle.json, a spec JSON file, or ``size=48,color=gray,margin=0.1``."""
    p = Path(text).expanduser()
    if p.is_dir() and (p / "bundle.json").is_file():
        p = p / "bundle.json"
    if p.is_file():
        try:
            raw = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--for {p}: not valid JSON ({exc})") from None
        if isinstance(raw, dict) and "preprocess" in raw:
            raw = raw["preprocess"]
        return _validate(raw, str(p))
    if "=" not in text:
        raise ConfigError(
            f"--for {text!r}: give a bundle directory, a spec .json file, or key=value pairs such as "
            "'size=48,color=gray,scale=zero_one,margin=0.1'"
        )
    raw: dict[str, object] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"--for: {part!r} is not key=value")
        key = _ALIASES.get(key.strip(), key.strip().replace("-", "_"))
        v = value.strip()
        raw[key] = _BOOL.get(v.lower(), v) if key == "align" else v
    return _validate(raw, "--for")


def _validate(raw: object, origin: str) -> PreprocessSpec:
    try:
        return PreprocessSpec.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = field_path(e["loc"])
        raise ConfigError(f"{origin}: {where}: {e['msg']}; fields: {', '.join(PreprocessSpec.model_fields)}") from None
