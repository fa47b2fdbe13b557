"""`emotion-edge deploy` end to end: a real sshd on 127.0.0.1 is the Pi, a real mosquitto the broker.

The kits are `--target host` kits; install.sh runs in its --prefix (no systemd)
mode, so the daemon is a background process with a pidfile under a temp dir.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from deploy_support import KIT_CACHE, ROOT, host_python

from edge.deploy.deploy import DeployOptions, deploy_all, format_table
from edge.deploy.inventory import hosts_from_flags, load_inventory
from edge.deploy.kit import KitOptions, build_kit

WORKSTATION_ONLY = "EMOTION_EDGE_TEST_WORKSTATION_ONLY"
needs_daemon = pytest.mark.skipif(importlib.util.find_spec("edge.commands.run") is None,
                                  reason="the daemon (`emotion-edge run`) is not in this checkout")


def _config(broker_url: str, frames: Path, stats_s: int, source: str | None = None) -> str:
    return f"""\
camera:
  id: ${{EMOTION_EDGE_CAMERA}}
  source: {source or frames}
  on_end: reopen
  max_fps: 4
mqtt:
  url: {broker_url}
  stats_interval_s: {stats_s}
homeassistant:
  discovery: false
model:
  bundle: ${{EMOTION_EDGE_HOME}}/current/bundle
"""


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    import cv2

    d = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(d / f"{i:03d}.png"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    return d


@pytest.fixture(scope="module")
def kits(tiny_bundle, mosquitto, frames, tmp_path_factory):
    """Three releases: v1, v2 (another config), and one whose config only works on the workstation."""
    d = tmp_path_factory.mktemp("kits")
    out = {}
    for name, stats_s, src in (("v1", 30, None), ("v2", 31, None), ("broken", 32, f"${{{WORKSTATION_ONLY}}}")):
        cfg = d / f"{name}.yaml"
        cfg.write_text(_config(mosquitto.url, frames, stats_s, src))
        # The variable is set while packaging (so the config validates) but not on the "Pi",
        # where the daemon then exits with a config error: a release that installs but never gets ready.
        os.environ[WORKSTATION_ONLY] = str(frames)
        try:
            out[name] = build_kit(KitOptions(out=d / f"{name}.tar.gz", target="host", bundle=tiny_bundle,
                                             config=cfg, cache=KIT_CACHE))
        finally:
            os.environ.pop(WORKSTATION_ONLY)
    return out


@pytest.fixture(scope="module")
def pi_root(tmp_path_factory, sshd):
    """Install prefixes on the "Pi"; every daemon started there is stopped at the end."""
    root = tmp_path_factory.mktemp("pi")
    yield root
    for ctl in root.glob("*/opt/emotion-edge/bin/emotion-edge-ctl"):
        for cam in subprocess.run([str(ctl), "cameras"], capture_output=True, text=True, check=False).stdout.split():
            subprocess.run([str(ctl), "stop", cam], capture_output=True, timeout=60, check=False)


def _opts(kit, sshd, mosquitto) -> DeployOptions:
    path, info = kit
    return DeployOptions(kit=path, info=info, known_hosts=sshd.known_hosts, ssh_config=sshd.ssh_config,
                         mqtt_url=mosquitto.url, ready_timeout=90, settle=2)


def _settings(sshd, **kw):
    return {"port": sshd.port, "identity_file": sshd.identity, "python": host_python(), **kw}


def _retained_availability(broker, camera: str) -> str | None:
    import paho.mqtt.client as mqtt

    got: list[str] = []
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_connect = lambda cl, *a: cl.subscribe(f"emotion_edge/{camera}/availability", 1)
    c.on_message = lambda cl, u, m: (got.append(m.payload.decode()), done.set())
    c.connect(broker.host, broker.port)
    c.loop_start()
    done.wait(5)
    c.disconnect()
    c.loop_stop()
    return got[0] if got else None


def _ctl(root: Path, *args: str) -> str:
    return subprocess.run([str(root / "opt/emotion-edge/bin/emotion-edge-ctl"), *args], capture_output=True,
                          text=True, check=False).stdout.strip()


@needs_daemon
def test_deploy_installs_upgrades_and_rolls_back(kits, sshd, mosquitto, pi_root, tmp_path, capsys):
    front, back = pi_root / "front", pi_root / "back"
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(f"hosts:\n  - {{host: {sshd.host}, camera: front, prefix: {front}}}\n"
                         f"  - {{host: {sshd.host}, camera: back, prefix: {back}}}\n")

    # 1. First install on two "hosts" in parallel: both come up and say online.
    v1 = kits["v1"][1].release
    results = deploy_all(load_inventory(inventory, _settings(sshd)), _opts(kits["v1"], sshd, mosquitto), parallel=2)
    table = format_table(results)
    with capsys.disabled():
        print("\n" + table)
    assert [(r.camera, r.status) for r in results] == [("front", "ok"), ("back", "ok")], table
    assert _ctl(front, "current") == v1 and _ctl(back, "current") == v1
    assert _retained_availability(mosquitto, "front") == "online"
    assert subprocess.run([str(front / "opt/emotion-edge/bin/emotion-edge-ctl"), "is-active", "front"], check=False).returncode == 0

    # 2. Upgrade one host: the symlink moves to v2, v1 becomes 'previous'.
    v2 = kits["v2"][1].release
    front_only = hosts_from_flags([sshd.host], _settings(sshd, camera="front", prefix=str(front)))
    [r] = deploy_all(front_only, _opts(kits["v2"], sshd, mosquitto))
    assert (r.status, r.previous, r.release) == ("ok", v1, v2), r.message
    assert _ctl(front, "current") == v2 and _ctl(front, "previous") == v1

    # 3. A release that installs but never gets ready is rolled back to v2, which runs again
    #    (through the command line this time: exit status 1 and the summary table).
    broken = kits["broken"][1].release
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "deploy", "--kit", str(kits["broken"][0]), "--host", sshd.host,
         "--camera", "front", "--prefix", str(front), "--port", str(sshd.port), "--identity", str(sshd.identity),
         "--known-hosts", str(sshd.known_hosts), "--ssh-config", str(sshd.ssh_config), "--python", host_python(),
         "--mqtt-url", mosquitto.url, "--timeout", "90", "--settle", "2"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    with capsys.disabled():
        print(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    row = proc.stdout.splitlines()[1]
    assert "rolled back" in row and f"{v2}  {broken}" in row, proc.stdout
    assert WORKSTATION_ONLY in row  # the daemon's own error, from its log
    assert _ctl(front, "current") == v2 and _ctl(front, "previous") == v1  # as before the failed deploy
    assert broken in _ctl(front, "releases")  # kept for inspection, not current
    assert _retained_availability(mosquitto, "front") == "online"
    assert _ctl(back, "current") == v1  # the other host was not touched


def test_deploy_refuses_an_unknown_host_key(kits, sshd, mosquitto, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    opts = _opts(kits["v1"], sshd, mosquitto)
    opts.known_hosts = empty
    [r] = deploy_all(hosts_from_flags([sshd.host], _settings(sshd, camera="x", prefix=str(tmp_path / "p"))), opts)
    assert r.status == "failed"
    assert "host key" in r.message and "ssh-keyscan" in r.message
    assert not (tmp_path / "p").exists()


def test_accept_new_trusts_a_first_seen_key_but_never_a_changed_one(sshd, tmp_path):
    from edge.deploy import ssh

    known = tmp_path / "known_hosts"
    known.write_text("")
    target = ssh.SshTarget(sshd.host, port=sshd.port, identity_file=sshd.identity, known_hosts=known,
                           accept_new=True, ssh_config=sshd.ssh_config)
    assert ssh.run(target, ["echo", "hello there"]).stdout == "hello there\n"
    assert f"[127.0.0.1]:{sshd.port}" in known.read_text()

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    with pytest.raises(ssh.SshError, match="unknown or changed"):
        ssh.run(target, ["true"])
