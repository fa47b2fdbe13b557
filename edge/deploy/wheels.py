"""Wheels for a kit: build the project wheel, download dependencies for the target, check tags.

pip can resolve and download for another platform (``--platform`` with
``--only-binary=:all:``), so an x86 workstation fills an aarch64 kit. Downloads
go through a cache directory; a build that the cache can satisfy does not touch
the network (``refresh=True`` asks the index again).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmotionEdgeError
from .targets import KitTarget

log = logging.getLogger(__name__)

_NO_MATCH = re.compile(r"No matching distribution found for ([^\s]+)")


class KitBuildError(EmotionEdgeError):
    """A kit cannot be built (a dependency has no wheel for the target, pip failed)."""


@dataclass(frozen=True)
class WheelName:
    """The parts of a wheel file name (PEP 427)."""

    name: str
    version: str
    pythons: frozenset[str]
    abis: frozenset[str]
    platforms: frozenset[str]

    @classmethod
    def parse(cls, filename: str) -> WheelName:
        stem = filename.removesuffix(".whl")
        parts = stem.split("-")
        if len(parts) not in (5, 6):
            raise ValueError(f"not a wheel file name: {filename}")
        name, version = parts[0], parts[1]
        py, abi, plat = parts[-3:]
        return cls(name, version, frozenset(py.split(".")), frozenset(abi.split(".")), frozenset(plat.split(".")))

    @property
    def requirement_name(self) -> str:
        return re.sub(r"[-_.]+", "-", self.name).lower()


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    log.debug("running %s", cmd)
    return subprocess.run(cmd, capture_output=True, text=True, check=False)  # callers read pip's stderr


def build_project_wheel(project_root: Path, out_dir: Path) -> Path:
    """Build the emotion-edge wheel from a source checkout (no dependencies)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emotion-edge-wheel-") as tmp:
        # --no-build-isolation: setuptools is already here; isolation would
        # fetch it from the index on every build.
        cmd = _pip("wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", tmp, str(project_root))
        proc = _run(cmd)
        if proc.returncode != 0:
            raise KitBuildError(f"building the emotion-edge wheel from {project_root} failed:\n{proc.stderr.strip()[-2000:]}")
        built = sorted(Path(tmp).glob("emotion_edge-*.whl"))
        if len(built) != 1:
            raise KitBuildError(f"expected one emotion_edge wheel from {project_root}, got {[p.name for p in built]}")
        dest = out_dir / built[0].name
        shutil.copyfile(built[0], dest)
    return dest


def _platform_args(target: KitTarget) -> list[str]:
    if not target.platforms:
        return []  # this machine: pip's own tags
    args: list[str] = []
    for p in target.platforms:
        args += ["--platform", p]
    return args + ["--python-version", target.python, "--implementation", "cp", "--abi", target.cp]


def _build_pure_wheel(requirement: str, dest: Path) -> Path:
    """A wheel for an sdist-only dependency; refuses anything that is not pure Python."""
    with tempfile.TemporaryDirectory(prefix="emotion-edge-sdist-") as tmp:
        proc = _run(_pip("wheel", "--no-deps", "--quiet", "--wheel-dir", tmp, requirement))
        built = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(built) != 1:
            raise KitBuildError(f"{requirement} has no wheel for the target and building one failed:\n{proc.stderr.strip()[-1500:]}")
        w = WheelName.parse(built[0].name)
        if w.abis != {"none"} or w.platforms != {"any"}:
            raise KitBuildError(
                f"{requirement} has no wheel for the target and is not pure Python ({built[0].name}); "
                "it cannot be cross-built here: pick a version with aarch64 wheels"
            )
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / built[0].name
        shutil.copyfile(built[0], out)
        log.info("built pure-Python wheel %s (no wheel on the index)", out.name)
        return out


def download(requirements: list[str], target: KitTarget, dest: Path, cache: Path,
             *, no_deps: bool = False, refresh: bool = False) -> list[Path]:
    """Resolve ``requirements`` for ``target`` and put exactly the resolved wheels in ``dest``.

    Tries the cache alone first (no network); then the index, keeping what it
    fetched in the cache. Sdist-only dependencies that are pure Python are
    built into wheels once (``cache/built``).
    """
    cache.mkdir(parents=True, exist_ok=True)
    built = cache / "built"
    dest.mkdir(parents=True, exist_ok=True)
    attempts = [True, False] if not refresh else [False]
    # Wheels given as local files (the project's own) are not cached: they change without a version bump.
    local = {Path(r.split("[")[0]).name for r in requirements if ".whl" in r}
    last_err = ""
    for offline in attempts:
        for _ in range(8):  # each round may build one more sdist-only wheel
            with tempfile.TemporaryDirectory(prefix="emotion-edge-dl-", dir=cache) as tmp:
                cmd = _pip("download", "--only-binary=:all:", "--dest", tmp, "--find-links", str(cache),
                           "--find-links", str(built), "--progress-bar", "off", *_platform_args(target))
                if offline:
                    cmd.append("--no-index")
                if no_deps:
                    cmd.append("--no-deps")
                proc = _run(cmd + list(requirements))
                if proc.returncode == 0:
                    files = sorted(Path(tmp).glob("*.whl"))
                    out = []
                    for f in files:
                        if f.name not in local and not (cache / f.name).exists() and not (built / f.name).exists():
                            shutil.copyfile(f, cache / f.name)
                        shutil.copyfile(f, dest / f.name)
                        out.append(dest / f.name)
                    log.info("%d wheels for %s (%s)", len(out), target.name, "from cache" if offline else "index")
                    return out
            last_err = proc.stderr
            m = _NO_MATCH.search(proc.stderr)
            if offline or m is None:
                break
            _build_pure_wheel(m.group(1), built)
    raise KitBuildError(
        f"pip could not get wheels of {', '.join(requirements)} for {target.description}:\n"
        + "\n".join(line for line in last_err.strip().splitlines() if "is ignored" not in line)[-2000:]
    )


def tag_problems(wheels: list[Path], target: KitTarget) -> list[str]:
    """Wheels that would not install on ``target``; empty when all fit.

    Only meaningful for cross targets (explicit platforms); for the host pip
    already picked this machine's tags.
    """
    problems = []
    allowed_plat = set(target.platforms) | {"any"}
    cp = target.cp
    minor = int(target.python.split(".")[1])
    ok_py = {cp, "py3", f"py{target.python.replace('.', '')}", "py2.py3"} | {f"cp3{m}" for m in range(2, minor + 1)}
    for w in wheels:
        try:
            t = WheelName.parse(w.name)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if target.platforms and not (t.platforms & allowed_plat):
            problems.append(f"{w.name}: platform {'.'.join(sorted(t.platforms))} is not for {target.machine}")
        if not (t.pythons & ok_py):
            problems.append(f"{w.name}: python tag {'.'.join(sorted(t.pythons))} does not fit {cp}")
        # An abi3 wheel from an older cp3x fits; cp3x-only ABIs must be this one.
        abi_ok = "none" in t.abis or "abi3" in t.abis or cp in t.abis
        if not abi_ok:
            problems.append(f"{w.name}: ABI {'.'.join(sorted(t.abis))} does not fit {cp}")
    return problems


def requirement_pins(wheels: list[Path]) -> dict[str, str]:
    """name -> version of downloaded wheels (normalised names)."""
    return {WheelName.parse(w.name).requirement_name: WheelName.parse(w.name).version for w in wheels}
