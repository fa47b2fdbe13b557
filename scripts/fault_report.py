#!/usr/bin/env python3
"""Write the fault table of docs/reliability.md from the JSON the reliability tests emit.

    python scripts/fault_report.py            # table from build/reliability/faults.json
    python scripts/fault_report.py --run      # run tests/reliability first (about 8 minutes), then the table

The table goes between the ``fault-table`` markers in docs/reliability.md and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "build" / "reliability" / "faults.json"
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- fault-table:start -->", "<!-- fault-table:end -->"
GROUP_ORDER = ["MQTT broker", "Camera", "Daemon", "Install", "Frames", "Bad input (fuzzing)", "Soak"]


def table(data: dict) -> str:
    """The markdown table, grouped as the tests name the groups."""
    rows = ["| fault | survived | recovery | events lost | notes |", "|---|---|---|---|---|"]
    faults = data.get("faults", {})
    def order(kv: tuple[str, dict]) -> tuple[int, str]:
        group = kv[1].get("group", "")
        return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), kv[0])

    for name, f in sorted(faults.items(), key=order):
        rec = "-" if f.get("recovery_s") is None else f"{f['recovery_s']:.1f} s"
        lost = "-" if f.get("lost") is None else str(f["lost"])
        group = f.get("group")
        label = f"{group}: {name}" if group else name
        rows.append(f"| {label} | {'yes' if f['survived'] else '**no**'} | {rec} | {lost} | {f.get('detail', '')} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=Path(os.environ.get("EMOTION_EDGE_FAULT_JSON", DEFAULT_JSON)))
    ap.add_argument("--run", action="store_true", help="run tests/reliability first (fresh JSON)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()
    if args.run:
        args.json.unlink(missing_ok=True)
        env = {**os.environ, "EMOTION_EDGE_FAULT_JSON": str(args.json)}
        rc = subprocess.call([sys.executable, "-m", "pytest", "tests/reliability", "-q"], cwd=ROOT, env=env)
        if rc not in (0, 1):
            return rc
    if not args.json.is_file():
        print(f"fault_report: {args.json} not found: run `python -m pytest tests/reliability` (or --run)", file=sys.stderr)
        return 2
    text = table(json.loads(args.json.read_text()))
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        if START not in doc or END not in doc:
            print(f"fault_report: markers {START} / {END} missing in {DOC}", file=sys.stderr)
            return 2
        head, rest = doc.split(START, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
