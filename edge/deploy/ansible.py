"""Hand a fleet deploy to Ansible: ``emotion-edge deploy --inventory`` with ``ansible-playbook`` installed.

The inventory (``hosts.yaml``, the same file the SSH engine reads) becomes an
Ansible inventory; the repository's ``ansible/playbook.yml`` and its
``emotion_edge`` role do the work (the same steps as ``deploy.py``: stage,
``install.sh --no-activate``, per-host settings, switch, wait, roll back). Each
host's role run drops a JSON result on the controller, read back here into the
``HostResult`` rows of the summary table.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ..errors import ConfigError
from .deploy import DeployOptions, HostResult
from .inventory import HostSpec
from .kit import find_project_root

log = logging.getLogger(__name__)

PLAYBOOK = Path("ansible") / "playbook.yml"


def ansible_playbook() -> str | None:
    """The ``ansible-playbook`` to run: on PATH, or beside this Python (a venv's bin/, not always on PATH)."""
    found = shutil.which("ansible-playbook")
    if found:
        return found
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def host_aliases(hosts: list[HostSpec]) -> list[str]:
    """Unique Ansible inventory names: the host, or host_camera where one host runs several cameras."""
    names = [h.host.rpartition("@")[2] for h in hosts]
    out: list[str] = []
    for h, name in zip(hosts, names):
        alias = name if names.count(name) == 1 else f"{name}_{h.camera or 'default'}"
        # One host and camera under several prefixes (test installs): number them.
        n, base = 2, alias
        while alias in out:
            alias, n = f"{base}_{n}", n + 1
        out.append(alias)
    return out


def inventory_for(hosts: list[HostSpec], opts: DeployOptions, results_dir: Path) -> dict:
    """The Ansible inventory (YAML-ready) for ``hosts``: connection + ``emotion_edge_*`` variables."""
    ssh_args = ["-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if opts.accept_new_host_keys else 'yes'}"]
    if opts.known_hosts is not None:
        ssh_args += ["-o", f"UserKnownHostsFile={Path(opts.known_hosts).resolve()}"]
    if opts.ssh_config is not None:
        ssh_args += ["-F", str(Path(opts.ssh_config).resolve())]
    group_vars = {
        "ansible_ssh_common_args": shlex.join(ssh_args),
        "emotion_edge_kit": str(Path(opts.kit).resolve()),
        "emotion_edge_release": opts.info.release,
        "emotion_edge_results_dir": str(results_dir),
        "emotion_edge_ready_timeout": int(opts.ready_timeout),
        "emotion_edge_settle": round(opts.settle),
        "emotion_edge_keep": opts.keep,
    }
    entries = {}
    for alias, h in zip(host_aliases(hosts), hosts):
        user, _, name = h.destination.rpartition("@")
        v: dict = {"ansible_host": name, "emotion_edge_camera": h.camera or opts.info.camera}
        if user:
            v["ansible_user"] = user
        if h.port:
            v["ansible_port"] = h.port
        if h.identity_file:
            v["ansible_ssh_private_key_file"] = str(Path(h.identity_file).expanduser().resolve())
        if h.prefix:
            v["emotion_edge_prefix"] = h.prefix
        if h.systemd is not None:
            v["emotion_edge_systemd"] = h.systemd
        if h.python:
            v["emotion_edge_python"] = h.python
            if h.python.startswith("/"):
                v["ansible_python_interpreter"] = h.python  # the one Python we know is there
        if h.mqtt_password_file:
            v["emotion_edge_mqtt_password_file"] = str(Path(h.mqtt_password_file).expanduser().resolve())
        if h.source is not None:
            v["emotion_edge_source"] = h.source
        if h.mqtt_url is not None:
            v["emotion_edge_mqtt_url"] = h.mqtt_url
        entries[alias] = v
    return {"emotion_edge": {"vars": group_vars, "hosts": entries}}


def run_playbook(hosts: list[HostSpec], opts: DeployOptions, parallel: int = 8,
                 playbook: Path | None = None, output=None) -> list[HostResult]:
    """Run the playbook on ``hosts``; Ansible's own output goes to ``output`` (default stderr)."""
    exe = ansible_playbook()
    if exe is None:
        raise ConfigError("ansible-playbook is not installed (pip install ansible-core), or use --engine ssh")
    book = playbook or find_project_root() / PLAYBOOK
    if not book.is_file():
        raise ConfigError(f"{book}: the emotion-edge playbook is missing from this checkout")
    for h in hosts:
        if not (h.camera or opts.info.camera):
            raise ConfigError(f"{h.destination}: no camera given (camera: in the inventory, or --camera)")
    with tempfile.TemporaryDirectory(prefix="emotion-edge-ansible-") as tmp:
        tmpdir = Path(tmp)
        results = tmpdir / "results"
        results.mkdir()
        inv = tmpdir / "inventory.yml"
        inv.write_text(yaml.safe_dump(inventory_for(hosts, opts, results), sort_keys=False))
        env = {**os.environ,
               "ANSIBLE_HOST_KEY_CHECKING": "True",
               "ANSIBLE_RETRY_FILES_ENABLED": "False",
               "ANSIBLE_LOCAL_TEMP": str(tmpdir / "local"),
               "ANSIBLE_PYTHON_INTERPRETER": os.environ.get("ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
               # Shared connections end soon after the run instead of lingering for a minute.
               "ANSIBLE_SSH_ARGS": os.environ.get("ANSIBLE_SSH_ARGS", "-C -o ControlMaster=auto -o ControlPersist=10s"),
               "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_NOCOLOR": "1"}
        if "utf" not in (env.get("LC_ALL") or env.get("LANG") or "").lower():
            env["LC_ALL"] = "C.UTF-8"  # ansible-core refuses to start without a UTF-8 locale
        argv = [exe, "-i", str(inv), "--forks", str(max(1, parallel)), str(book)]
        log.info("running %s", shlex.join(argv))
        proc = subprocess.run(argv, env=env, stdout=output or sys.stderr, stderr=subprocess.STDOUT, check=False,
                              stdin=subprocess.DEVNULL)
        log.info("ansible-playbook exited with %d", proc.returncode)
        return _collect(hosts, opts, results)


def _collect(hosts: list[HostSpec], opts: DeployOptions, results: Path) -> list[HostResult]:
    out = []
    for alias, h in zip(host_aliases(hosts), hosts):
        f = results / f"{alias}.json"
        camera = h.camera or opts.info.camera
        if not f.is_file():
            # The role never reached its end: unreachable, or it failed before its block.
            out.append(HostResult(host=h.destination, camera=camera, status="failed", release=opts.info.release,
                                  message="no result from Ansible (unreachable? see its output above)"))
            continue
        r = json.loads(f.read_text())
        out.append(HostResult(host=h.destination, camera=camera, status=r.get("status", "failed"),
                              previous=r.get("previous") or None, release=r.get("release"),
                              seconds=float(r.get("seconds") or 0.0),
                              message=" ".join(str(r.get("message") or "").split())))
    return out
