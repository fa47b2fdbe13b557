"""The systemd unit: `systemd-analyze verify` clean and exposure score <= 3.0 (printed)."""

from __future__ import annotations

import re
import shutil

import pytest
from deploy_support import ROOT, load_script

UNIT = ROOT / "systemd" / "emotion-edge@.service"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not found (apt-get install systemd)")


@needs_analyze
def test_unit_verifies_clean():
    assert load_script("check_units").verify() == ""


@needs_analyze
def test_verify_catches_a_bad_key(tmp_path):
    bad = tmp_path / "emotion-edge@.service"
    bad.write_text(UNIT.read_text().replace("WatchdogSec=30", "WatchdogSec=30\nWatchDogSec=30"))
    assert "Unknown key" in load_script("check_units").verify(bad)


@needs_analyze
def test_exposure_score_is_at_most_3(capsys):
    score, report = load_script("check_units").exposure()
    with capsys.disabled():
        print(f"\nsystemd-analyze security --offline=yes emotion-edge@.service: exposure {score:.1f}")
    assert score <= 3.0, report


def test_unit_has_the_required_settings():
    text = UNIT.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert settings["User"] == "emotion-edge" and "video" in settings["SupplementaryGroups"]
    assert settings["ProtectSystem"] == "strict" and settings["CapabilityBoundingSet"] == ""
    assert settings["LoadCredential"].startswith("mqtt_password:")
    for key in ("WatchdogSec", "StartLimitBurst", "MemoryMax", "DevicePolicy", "RestrictAddressFamilies",
                "SystemCallFilter", "NoNewPrivileges", "ProtectHome", "PrivateTmp", "StateDirectory"):
        assert key in settings, key


def test_an_empty_credential_file_means_no_password(tmp_path):
    # install.sh creates an empty mqtt_password so LoadCredential= can start the unit without one.
    from edge.config import parse_config, resolve_credentials

    (tmp_path / "mqtt_password").write_text("")
    cfg = parse_config("camera: {id: cam, source: x}\n")
    assert resolve_credentials(cfg.mqtt, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == (None, None)
