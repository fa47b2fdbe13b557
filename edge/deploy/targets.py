"""Kit targets: which CPU, Python and wheel platforms a kit is built for."""

from __future__ import annotations

import difflib
import platform
import sys
from dataclasses import dataclass

from ..errors import ConfigError

# Raspberry Pi OS (bookworm) ships glibc 2.36: any manylinux wheel up to that fits.
_PI_GLIBC_MAX = 36


@dataclass(frozen=True)
class KitTarget:
    """What a kit must match on the device."""

    name: str
    description: str
    machine: str                 # `uname -m` on the device
    python: str                  # "3.11": the device's python3
    platforms: tuple[str, ...]   # pip --platform values; () = this machine's own
    extra_requirements: tuple[str, ...] = ()

    @property
    def cp(self) -> str:
        """The CPython tag, e.g. ``cp311``."""
        return "cp" + self.python.replace(".", "")


TARGETS: dict[str, KitTarget] = {
    "pi": KitTarget(
        name="pi",
        description="64-bit Raspberry Pi OS bookworm (aarch64, Python 3.11)",
        machine="aarch64",
        python="3.11",
        platforms=("manylinux2014_aarch64",) + tuple(f"manylinux_2_{v}_aarch64" for v in range(17, _PI_GLIBC_MAX + 1)),
        # apt's python3-picamera2 imports apt's simplejpeg, which is built
        # against apt's numpy 1.24; the venv's numpy 2 shadows that numpy and
        # the import fails ("numpy.dtype size changed"). A simplejpeg wheel
        # built for numpy 2 in the venv shadows the apt one in turn.
        extra_requirements=("simplejpeg>=1.8",),
    ),
}


def host_target() -> KitTarget:
    """This machine: its CPU and Python, its own wheel platforms."""
    return KitTarget(
        name="host",
        description=f"this machine ({platform.machine()}, Python {sys.version_info.major}.{sys.version_info.minor})",
        machine=platform.machine(),
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        platforms=(),
    )


def get_target(name: str) -> KitTarget:
    """Look a target up by name (``pi``, ``host``); ``ConfigError`` with a suggestion otherwise."""
    if name == "host":
        return host_target()
    if name in TARGETS:
        return TARGETS[name]
    names = [*TARGETS, "host"]
    hint = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
    raise ConfigError(
        f"unknown kit target {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (known: {', '.join(names)})"
    )
