"""`emotion-edge deploy --inventory` handed over to Ansible: three sshd "Pis" on loopback ports.

Each "Pi" is its own sshd (own port and host key) with its own install prefix
(install.sh --prefix, no systemd: the daemon is a pidfile process). The fleet
gets v1, then v2 with a typo in one host's broker URL: that host's daemon exits
on its config, the role rolls it back to v1 (and to its old per-host settings),
and the other two finish on v2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from deploy_support import KIT_CACHE, ROOT, host_python

from edge.deploy.ansible import ansible_playbook
from edge.deploy.kit import KitOptions, build_kit

pytestmark = pytest.mark.skipif(ansible_playbook() is None, reason="ansible-core is not installed (pip install ansible-core)")

CONFIG = """\
camera:
  id: ${{EMOTION_EDGE_CAMERA}}
  source: ${{EMOTION_EDGE_SOURCE:-/no/source/configured}}
  on_end: reopen
  max_fps: 2
mqtt:
  url: ${{EMOTION_EDGE_MQTT_URL:-mqtt://127.0.0.1:1}}
  stats_interval_s: {stats}
homeassistant:
  discovery: false
model:
  bundle: ${{EMOTION_EDGE_HOME}}/current/bundle
"""


@pytest.fixture(scope="module")
def fleet_kits(tiny_bundle, tmp_path_factory):
    """v1 and v2 (another config, same wheels): one build each, shared by the three hosts."""
    d = tmp_path_factory.mktemp("fleet-kits")
    out = {}
    for name, stats in (("v1", 30), ("v2", 31)):
        cfg = d / f"{name}.yaml"
        cfg.write_text(CONFIG.format(stats=stats))
        out[name] = build_kit(KitOptions(out=d / f"{name}.tar.gz", target="host", bundle=tiny_bundle, config=cfg,
                                         cache=KIT_CACHE))
    return out


@pytest.fixture(scope="module")
def fleet_root(tmp_path_factory, sshd_fleet):
    """The three install prefixes; every daemon started there is stopped at the end."""
    import cv2

    root = tmp_path_factory.mktemp("fleet-pis")
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    yield root
    for ctl in root.glob("pi*/opt/emotion-edge/bin/emotion-edge-ctl"):
        for cam in subprocess.run([str(ctl), "cameras"], capture_output=True, text=True, check=False).stdout.split():
            subprocess.run([str(ctl), "stop", cam], capture_output=True, timeout=60, check=False)


def _ctl(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(prefix / "opt/emotion-edge/bin/emotion-edge-ctl"), *args], capture_output=True,
                          text=True, check=False)


def _deploy(kit: Path, inventory: Path, known_hosts: Path, ssh_config: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "deploy", "--kit", str(kit), "--inventory", str(inventory),
         "--known-hosts", str(known_hosts), "--ssh-config", str(ssh_config), "--timeout", "10", "--settle", "3",
         "--parallel", "3"],
        capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    # Ansible's own output (long), kept beside the inventory for a failing run.
    (inventory.parent / f"ansible-{kit.stem}.log").write_text(proc.stderr)
    return proc


def test_ansible_deploys_a_fleet_and_rolls_back_the_host_that_fails(fleet_kits, sshd_fleet, mosquitto, fleet_root,
                                                                    tmp_path, capsys):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(s.known_hosts.read_text() for s in sshd_fleet))
    prefixes = [fleet_root / f"pi{i}" for i in range(3)]
    hosts = [{"host": s.host, "port": s.port, "camera": f"cam{i}", "prefix": str(prefixes[i]),
              "source": str(fleet_root / "frames"), "mqtt_url": mosquitto.url} for i, s in enumerate(sshd_fleet)]
    inventory = tmp_path / "hosts.yaml"

    def write_inventory() -> None:
        inventory.write_text(yaml.safe_dump({
            "defaults": {"identity_file": str(sshd_fleet[0].identity), "python": host_python()},
            "hosts": hosts}))

    # 1. v1 on the whole fleet.
    write_inventory()
    v1_kit, v1 = fleet_kits["v1"]
    proc = _deploy(v1_kit, inventory, known_hosts, sshd_fleet[0].ssh_config)
    with capsys.disabled():
        print("\n" + proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "handing over to" in proc.stderr and "PLAY RECAP" in proc.stderr  # Ansible did it, not the SSH engine
    rows = proc.stdout.splitlines()[1:]
    assert [r.split()[2] for r in rows] == ["ok", "ok", "ok"], proc.stdout
    for i, p in enumerate(prefixes):
        assert _ctl(p, "current").stdout.strip() == v1.release
        assert _ctl(p, "is-active", f"cam{i}").returncode == 0
        env = (p / f"etc/emotion-edge/cam{i}.env").read_text()
        assert f'EMOTION_EDGE_MQTT_URL="{mosquitto.url}"' in env

    # 2. v2, with a typo in pi2's broker URL: its daemon exits on the config, so it is rolled back.
    hosts[2]["mqtt_url"] = "mqtt:/typo"
    write_inventory()
    v2_kit, v2 = fleet_kits["v2"]
    proc = _deploy(v2_kit, inventory, known_hosts, sshd_fleet[0].ssh_config)
    with capsys.disabled():
        print(proc.stdout)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    rows = proc.stdout.splitlines()[1:]
    assert [r.split()[2] for r in rows[:2]] == ["ok", "ok"], proc.stdout
    assert "rolled back" in rows[2] and f"{v1.release}  {v2.release}" in rows[2], proc.stdout
    assert "mqtt.url" in rows[2]  # the daemon's own complaint, from the new release's log
    for i in (0, 1):
        assert _ctl(prefixes[i], "current").stdout.strip() == v2.release
        assert _ctl(prefixes[i], "previous").stdout.strip() == v1.release
        assert _ctl(prefixes[i], "is-active", f"cam{i}").returncode == 0
    assert _ctl(prefixes[2], "current").stdout.strip() == v1.release
    assert _ctl(prefixes[2], "is-active", "cam2").returncode == 0  # v1 runs again, with its old settings
    assert mosquitto.url in (prefixes[2] / "etc/emotion-edge/cam2.env").read_text()
    assert v2.release in _ctl(prefixes[2], "releases").stdout  # kept for inspection
