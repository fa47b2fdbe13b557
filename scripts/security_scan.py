#!/usr/bin/env python3
"""Security checks for CI: ruff's bandit rules (S) on the code, pip-audit on the installed packages.

    python scripts/security_scan.py               # both
    python scripts/security_scan.py --no-audit    # code only (no network)

Exit 1 on a finding (a code issue, or a known vulnerability in an installed package). A vulnerability
service that cannot be reached (no network, a registry mirror without the audit API) is a warning, not a
failure: the code scan still gates the build.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ["edge", "convert", "calibration", "scripts"]
# S603/S607: every subprocess call with an argv list (no shell) is flagged; shell use is still caught by
# S602/S604/S605. S101 stays on: `assert` is stripped under -O, so library code must not rely on it.
IGNORE = ["S603", "S607"]
# Reviewed findings (kept here, not as noqa comments the everyday lint would call unused):
ACCEPTED = {
    "edge/config.py": ["S105"],  # names of environment variables and credentials, not passwords
    "edge/bundle.py": ["S202"],  # tar: filter="data" refuses traversal, links, devices; zip drops abs/.. paths
}


def code_scan() -> int:
    accepted = ", ".join(f'"{f}" = {json.dumps(codes)}' for f, codes in ACCEPTED.items())
    cmd = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "S", "--ignore", ",".join(IGNORE),
           "--config", f"lint.per-file-ignores = {{ {accepted} }}",
           "--output-format", "concise", *[c for c in CODE if (ROOT / c).exists()]]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode not in (0, 1):
        print(f"security: ruff failed to run: {r.stderr.strip()[-500:]}", file=sys.stderr)
        return 1
    print(r.stdout.strip() or "security: ruff S rules: no findings")
    return r.returncode


def audit(extra: list[str]) -> int:
    exe = shutil.which("pip-audit") or str(Path(sys.executable).with_name("pip-audit"))
    if not Path(exe).exists():
        print("security: pip-audit is not installed (pip install pip-audit): skipped", file=sys.stderr)
        return 0
    r = subprocess.run([exe, "-f", "json", "--progress-spinner", "off", *extra], capture_output=True, text=True,
                       check=False, timeout=600)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"security: WARNING: pip-audit could not reach a vulnerability service ({tail}): not audited",
              file=sys.stderr)
        return 0
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for d in vulnerable:
        for v in d["vulns"]:
            fixes = ", ".join(v.get("fix_versions") or []) or "no fix yet"
            print(f"security: {d['name']} {d['version']}: {v['id']} (fixed in {fixes})")
    if not audited:
        print(f"security: WARNING: pip-audit audited none of {len(deps)} packages (the index gave no vulnerability "
              "data: offline or a mirror): not audited", file=sys.stderr)
        return 0
    print(f"security: pip-audit: {len(audited)} packages audited, {len(vulnerable)} with known vulnerabilities"
          + (f", {len(deps) - len(audited)} skipped" if len(deps) > len(audited) else ""))
    return 1 if vulnerable else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-audit", action="store_true", help="skip pip-audit (no network)")
    ap.add_argument("audit_args", nargs="*", help="extra pip-audit arguments (after --)")
    args = ap.parse_args()
    rc = code_scan()
    if not args.no_audit:
        rc = max(rc, audit(args.audit_args))
    return rc


if __name__ == "__main__":
    sys.exit(main())
