"""Per-host settings (source, broker): the inventory's fields, the Ansible inventory, the SSH engine's .env file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.deploy.ansible import host_aliases, inventory_for
from edge.deploy.deploy import DeployOptions, HostDeploy
from edge.deploy.inventory import load_inventory
from edge.deploy.kit import KitInfo
from edge.errors import ConfigError

INFO = KitInfo(version="0.1.0", release="0.1.0-abc", target="pi", machine="aarch64", python="3.11",
               platforms=["manylinux2014_aarch64"], created="2026-11-22T00:00:00+00:00", bundle_id="b",
               requirements=[], nodeps=[], wheels=[])


def _inventory(tmp_path: Path, text: str):
    f = tmp_path / "hosts.yaml"
    f.write_text(text)
    return load_inventory(f)


def test_hosts_yaml_becomes_an_ansible_inventory_with_the_per_host_settings(tmp_path):
    (tmp_path / "pw").write_text("secret")
    hosts = _inventory(tmp_path, f"""
defaults: {{user: pi, mqtt_password_file: {tmp_path / 'pw'}, python: /usr/bin/python3}}
hosts:
  - {{host: kitchen.local, camera: kitchen, source: picamera2}}
  - {{host: 10.0.0.12, port: 2222, camera: garage, source: "rtsp://cam/1", mqtt_url: "mqtt://10.0.0.2:1883"}}
  - {{host: 10.0.0.12, port: 2222, camera: door, prefix: /srv/ee}}
""")
    opts = DeployOptions(kit=tmp_path / "kit.tar.gz", info=INFO, known_hosts=tmp_path / "kh", ready_timeout=60, settle=2)
    inv = inventory_for(hosts, opts, tmp_path / "results")["emotion_edge"]
    assert list(inv["hosts"]) == ["kitchen.local", "10.0.0.12_garage", "10.0.0.12_door"]
    kitchen, garage, door = inv["hosts"].values()
    assert kitchen == {"ansible_host": "kitchen.local", "ansible_user": "pi", "emotion_edge_camera": "kitchen",
                       "emotion_edge_python": "/usr/bin/python3", "ansible_python_interpreter": "/usr/bin/python3",
                       "emotion_edge_mqtt_password_file": str(tmp_path / "pw"), "emotion_edge_source": "picamera2"}
    assert (garage["ansible_port"], garage["emotion_edge_mqtt_url"]) == (2222, "mqtt://10.0.0.2:1883")
    assert door["emotion_edge_prefix"] == "/srv/ee" and "emotion_edge_source" not in door
    v = inv["vars"]
    assert v["emotion_edge_release"] == "0.1.0-abc" and v["emotion_edge_ready_timeout"] == 60
    assert f"UserKnownHostsFile={tmp_path / 'kh'}" in v["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in v["ansible_ssh_common_args"]
    yaml.safe_dump(inv)  # what run_playbook writes


def test_the_same_host_and_camera_under_two_prefixes_get_distinct_names(tmp_path):
    hosts = _inventory(tmp_path, "hosts:\n  - {host: a, camera: c, prefix: /p1}\n  - {host: a, camera: c, prefix: /p2}\n")
    assert host_aliases(hosts) == ["a_c", "a_c_2"]


@pytest.mark.parametrize("value", ['rtsp://x/"y', "rtsp://$HOME/x", "a`b`", "a\\b", "a\nb"])
def test_values_that_would_need_quoting_are_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="source"):
        _inventory(tmp_path, yaml.safe_dump({"hosts": [{"host": "a", "camera": "c", "source": value}]}))


def test_ssh_engine_writes_the_env_file_and_restores_the_old_one(sshd, tmp_path):
    prefix = tmp_path / "pi"
    (prefix / "etc/emotion-edge").mkdir(parents=True)
    env = prefix / "etc/emotion-edge/front.env"
    hosts = _inventory(tmp_path, yaml.safe_dump({"hosts": [{
        "host": sshd.host, "port": sshd.port, "identity_file": str(sshd.identity), "camera": "front",
        "prefix": str(prefix), "source": "rtsp://cam:554/s 1", "mqtt_url": "mqtt://b:1883"}]}))
    d = HostDeploy(hosts[0], DeployOptions(kit=tmp_path / "k", info=INFO, known_hosts=sshd.known_hosts,
                                           ssh_config=sshd.ssh_config))
    # No file before: a rollback removes the new one.
    assert d._write_env()
    assert env.read_text().splitlines()[1:] == ['EMOTION_EDGE_SOURCE="rtsp://cam:554/s 1"',
                                                'EMOTION_EDGE_MQTT_URL="mqtt://b:1883"']
    assert env.stat().st_mode & 0o077 == 0
    d._restore_env()
    assert not env.exists()
    # A file before: a rollback puts it back.
    env.write_text('EMOTION_EDGE_SOURCE="old"\n')
    d._write_env()
    assert "s 1" in env.read_text()
    d._restore_env()
    assert env.read_text() == 'EMOTION_EDGE_SOURCE="old"\n'
