#!/usr/bin/env python3
"""Run a `--target pi` kit's runtime on an emulated Raspberry Pi 4 CPU (qemu-user, Cortex-A72).

    python scripts/check_pi_kit_qemu.py emotion-edge-pi.tar.gz [IMAGE]

What it proves without a Pi: the kit's aarch64 wheels install for Debian bookworm's
aarch64 Python 3.11 (the Python of 64-bit Raspberry Pi OS), import, and run the
whole per-frame path (BlazeFace + the int8 classifier through LiteRT, OpenCV,
simplejpeg) on the Pi 4's instruction set. What it does not: the camera, systemd,
speed (emulation is ~10-50x slower than a Pi).

Needs the apt packages qemu-user-static and debootstrap, and deb.debian.org once:
a minimal arm64 bookworm root (Python only, ~60 MB) is unpacked into
.cache/arm64-bookworm (no second stage, no binfmt_misc, no root-only mounts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTFS = ROOT / ".cache" / "arm64-bookworm"
MIRROR = "http://deb.debian.org/debian"
PY_DEBS = ("python3.11", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
           "libexpat1", "libffi8", "libssl3", "libsqlite3-0", "media-types", "libstdc++6", "libgcc-s1", "zlib1g")
QEMU_CPU = "cortex-a72"  # Raspberry Pi 4
PI4_CPUS = "0-3"

SMOKE = r"""
import sys, platform
sys.path.insert(0, sys.argv[1])
import numpy as np, cv2, simplejpeg, yaml, paho.mqtt, pydantic
from edge.pipeline import Pipeline
p = Pipeline.from_bundle(sys.argv[2])
img = cv2.imread(sys.argv[3]) if len(sys.argv) > 3 else np.zeros((480, 640, 3), np.uint8)
for i in range(3):
    r = p.process(img, float(i))
p.close()
simplejpeg.encode_jpeg(np.zeros((48, 64, 3), np.uint8))
print(f"{platform.machine()} Python {platform.python_version()}: numpy {np.__version__}, opencv {cv2.__version__}, "
      f"faces {[(f.label, round(f.score, 2)) for f in r.faces]}")
"""


def tools_missing() -> list[str]:
    return [t for t in ("qemu-aarch64-static", "debootstrap", "dpkg-deb") if shutil.which(t) is None]


def ensure_rootfs(rootfs: Path = ROOTFS) -> Path:
    """A minimal arm64 bookworm tree with python3.11 (first-stage debootstrap + unpacked debs)."""
    python = rootfs / "usr/bin/python3.11"
    if python.exists():
        return rootfs
    tmp = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    # python3.11's own dependencies (libmpdec3, ...) come along with --include.
    proc = subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
                           "--include=" + ",".join(PY_DEBS), "bookworm", str(tmp), MIRROR],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap failed: {(proc.stdout + proc.stderr).strip()[-1500:]}")
    # The first stage leaves --include packages as .debs: unpack them (no maintainer scripts needed).
    for deb in sorted((tmp / "var/cache/apt/archives").glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
        deb.unlink()
    loader = tmp / "lib/ld-linux-aarch64.so.1"
    if not loader.exists():
        loader.parent.mkdir(parents=True, exist_ok=True)
        loader.symlink_to("../usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
    # qemu-user shows the host's sysfs; LiteRT's cpuinfo crashes on an x86 CPU list. Give it a Pi 4's.
    cpu = tmp / "sys/devices/system/cpu"
    cpu.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpu / name).write_text(PI4_CPUS + "\n")
    os.replace(tmp, rootfs)
    return rootfs


def install_kit_wheels(kit_dir: Path, site: Path) -> None:
    """Install the kit's pinned wheels for aarch64 cp311 into ``site`` with this machine's pip."""
    info = (kit_dir / "kit.env").read_text()
    if "KIT_MACHINE=aarch64" not in info:
        raise SystemExit(f"{kit_dir}: not an aarch64 kit")
    plat: list[str] = ["--platform", "manylinux2014_aarch64"]
    for v in range(17, 37):
        plat += ["--platform", f"manylinux_2_{v}_aarch64"]
    common = [sys.executable, "-m", "pip", "install", "-q", "--no-warn-conflicts", "--no-index", "--find-links", str(kit_dir / "wheels"),
              "--target", str(site), "--only-binary=:all:", *plat, "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311"]
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    subprocess.run([*common, "-r", str(kit_dir / "requirements.txt")], check=True, env=env)
    subprocess.run([*common, "--no-deps", "-r", str(kit_dir / "requirements-nodeps.txt")], check=True, env=env)


def run_smoke(kit: Path, image: Path | None = None) -> str:
    """Unpack ``kit``, install its wheels, run the per-frame path under qemu; returns the summary line."""
    rootfs = ensure_rootfs()
    with tempfile.TemporaryDirectory(prefix="emotion-edge-qemu-") as tmp:
        with tarfile.open(kit) as tar:
            tar.extractall(tmp, filter="data")
        kit_dir = next(p for p in Path(tmp).iterdir() if p.is_dir())
        site = Path(tmp) / "site"
        install_kit_wheels(kit_dir, site)
        argv = ["qemu-aarch64-static", str(rootfs / "usr/bin/python3.11"), "-c", SMOKE, str(site),
                str(kit_dir / "bundle")] + ([str(image)] if image else [])
        env = {**os.environ, "QEMU_CPU": QEMU_CPU, "QEMU_LD_PREFIX": str(rootfs)}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"the kit's runtime failed under qemu (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc.stdout.strip().splitlines()[-1]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    missing = tools_missing()
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install qemu-user-static debootstrap)", file=sys.stderr)
        return 2
    image = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    print(f"{QEMU_CPU} (Raspberry Pi 4) under qemu-user: {run_smoke(Path(sys.argv[1]), image)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
