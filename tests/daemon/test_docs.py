"""docs/mqtt.md publishes the event JSON Schema: it must be the one the code sends."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge.comms.schema import json_schemas

DOC = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"


def test_published_event_schema_matches_the_code() -> None:
    text = DOC.read_text()
    m = re.search(r"<!-- event-schema:start -->\s*```json\n(.*?)```\s*<!-- event-schema:end -->", text, re.DOTALL)
    assert m, "event schema block missing from docs/mqtt.md"
    assert json.loads(m.group(1)) == json_schemas()["events"], (
        "docs/mqtt.md is stale: regenerate it with `emotion-edge config-schema --wire` (the events entry)")


def test_examples_in_the_docs_parse_as_wire_models() -> None:
    from edge.comms.client import parse_payload

    text = DOC.read_text()
    blocks = re.findall(r"```json\n(\{.*?\})\n```", text, re.DOTALL)
    kinds = {"## Event": "events", "## State": "state", "## Stats": "stats"}
    parsed = 0
    for heading, kind in kinds.items():
        section = text.split(heading, 1)[1]
        block = next(b for b in blocks if b in section[:2000])
        assert parse_payload(kind, block.encode()) is not None, kind
        parsed += 1
    assert parsed == 3
