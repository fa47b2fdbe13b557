"""Check a kit the way a device would, without installing it (`emotion-edge package --check`)."""

from __future__ import annotations

import re
import tarfile
import tempfile
import zipfile
from pathlib import Path

from ..bundle import load_bundle, sha256_file
from ..errors import BundleError
from .kit import KitInfo, read_kit_info
from .targets import get_target
from .wheels import WheelName, tag_problems


def _project_requirements(project_wheel: Path, extra: str = "edge") -> list[str]:
    """Names of the distributions the project wheel requires with ``extra`` (and always)."""
    with zipfile.ZipFile(project_wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = z.read(meta_name).decode()
    names = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        marker = spec.split(";", 1)[1] if ";" in spec else ""
        extras = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extras and extra not in extras:
            continue
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
        if m:
            names.append(re.sub(r"[-_.]+", "-", m.group(0)).lower())
    return names


def check_kit(kit: Path) -> tuple[KitInfo, list[str]]:
    """Unpack a kit and check it the way a device would: manifest, wheel tags, [edge] coverage.

    Returns the kit's info and a list of problems (empty: the kit is good).
    """
    info = read_kit_info(kit)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="emotion-edge-check-") as tmp:
        with tarfile.open(kit) as tar:
            tar.extractall(tmp, filter="data")
        top = Path(tmp) / info.top_dir
        problems += verify_manifest(top)
        wheels = sorted((top / "wheels").glob("*.whl"))
        target = get_target(info.target)
        problems += tag_problems(wheels, target)
        have = {WheelName.parse(w.name).requirement_name for w in wheels}
        project = [w for w in wheels if w.name.startswith("emotion_edge-")]
        if len(project) != 1:
            problems.append("the kit must hold exactly one emotion_edge wheel")
        else:
            for name in _project_requirements(project[0]):
                if name not in have:
                    problems.append(f"[edge] dependency {name} has no wheel in the kit")
        for req in (*info.nodeps, *target.extra_requirements):
            name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", req).group(0)).lower()  # type: ignore[union-attr]
            if name not in have:
                problems.append(f"{req} has no wheel in the kit")
        try:
            load_bundle(top / "bundle")
        except BundleError as exc:
            problems.append(f"bundle: {exc}")
        if not (top / "bundle" / "detector.tflite").is_file():
            problems.append("bundle: detector.tflite is not in the kit")
    return info, problems


def verify_manifest(top: Path) -> list[str]:
    """Check ``SHA256SUMS`` against the files (both ways); problems, or empty."""
    sums = top / "SHA256SUMS"
    if not sums.is_file():
        return ["SHA256SUMS is missing"]
    problems = []
    listed = {}
    for line in sums.read_text().splitlines():
        sha, _, rel = line.partition("  ")
        listed[rel] = sha
    present = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    for rel in sorted(present - listed.keys()):
        problems.append(f"{rel}: not in SHA256SUMS")
    for rel, sha in sorted(listed.items()):
        if rel not in present:
            problems.append(f"{rel}: listed in SHA256SUMS but missing")
        elif sha256_file(top / rel) != sha:
            problems.append(f"{rel}: sha256 mismatch")
    return problems
