"""The Pi kit's runtime on an emulated Raspberry Pi 4 CPU (qemu-user, Cortex-A72, Debian's aarch64 Python 3.11).

Slow (a minimal arm64 Debian root is fetched once into .cache/, and emulation is slow):
run with `pytest -m slow tests/deploy/test_pi_kit_qemu.py`.
"""

from __future__ import annotations

import pytest
from deploy_support import KIT_CACHE, load_script

from edge.deploy.kit import KitOptions, build_kit

pytestmark = pytest.mark.slow


def test_pi_kit_runs_the_per_frame_path_on_a_cortex_a72(tiny_bundle, tmp_path):
    script = load_script("check_pi_kit_qemu")
    if script.tools_missing():
        pytest.skip(f"needs {', '.join(script.tools_missing())} (apt-get install qemu-user-static debootstrap)")
    kit, _ = build_kit(KitOptions(out=tmp_path / "pi.tar.gz", target="pi", bundle=tiny_bundle, cache=KIT_CACHE))
    summary = script.run_smoke(kit)
    print(summary)
    assert summary.startswith("aarch64 Python 3.11")
