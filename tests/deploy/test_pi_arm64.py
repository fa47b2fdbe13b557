"""The Pi kit installed by its install.sh and run in an arm64 Debian bookworm root (qemu-user).

Release check, opt-in (root; 2-4 minutes with a cached root, about 8 the first time):
    sudo .venv/bin/python -m pytest -m slow tests/deploy/test_pi_arm64.py -s
"""

from __future__ import annotations

import os

import pytest
from deploy_support import KIT_CACHE, load_script

from edge.deploy.kit import KitOptions, build_kit

pytestmark = pytest.mark.slow


def test_pi_kit_installs_and_publishes_events_on_arm64_bookworm(tiny_bundle, tmp_path, capsys):
    script = load_script("check_pi_arm64")
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mounts)")
    if script.tools_missing():
        pytest.skip(f"needs {', '.join(script.tools_missing())} (apt-get install qemu-user-static binfmt-support debootstrap)")
    kit, _ = build_kit(KitOptions(out=tmp_path / "pi.tar.gz", target="pi", bundle=tiny_bundle, cache=KIT_CACHE))
    with capsys.disabled():
        rc = script.main(["--kit", str(kit)])
    assert rc == 0
