"""Fixtures for deploy tests: a real sshd and a real mosquitto on 127.0.0.1, and kits.

The sshd (Debian's openssh-server) stands in for the Pi: it runs on a free port
with a throwaway host key, accepts only a throwaway user key, and the tests'
known_hosts file holds its host key, so host-key checking stays on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import free_loopback_port as _free_port

SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/sbin/sshd") if os.path.exists(p)), None)
SFTP_SERVER = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                "/usr/lib/ssh/sftp-server") if os.path.exists(p)), None)
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class SshServer:
    """A running sshd and what a client needs to reach it with host-key checking on."""

    host: str            # user@127.0.0.1
    port: int
    identity: Path
    known_hosts: Path
    ssh_config: Path     # an empty client config: the tests ignore ~/.ssh/config

    def ssh(self, *remote: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on the server (for assertions)."""
        import shlex

        argv = ["ssh", "-F", str(self.ssh_config), "-p", str(self.port), "-i", str(self.identity),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", self.host, "--", shlex.join(remote)]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> SshServer:
    """Debian's openssh-server on a free loopback port, for the current user."""
    if SSHD is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    d.chmod(0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user_key")], check=True)
    shutil.copyfile(d / "user_key.pub", d / "authorized_keys")
    (d / "authorized_keys").chmod(0o600)
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "PrintMotd no\nAcceptEnv none\n" + (f"Subsystem sftp {SFTP_SERVER}\n" if SFTP_SERVER else "")
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir (root only)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_port(port, proc, "sshd")
        host_pub = (d / "host_key.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        (d / "ssh_config").write_text("")
        import getpass

        server = SshServer(f"{getpass.getuser()}@127.0.0.1", port, d / "user_key", d / "known_hosts", d / "ssh_config")
        server.ssh("true")  # fail here, clearly, if the login does not work
        yield server
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    """A mosquitto broker on a free loopback port (anonymous access)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    d = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    (d / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(d / "mosquitto.conf")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_port(port, proc, "mosquitto")
        yield Broker("127.0.0.1", port)
    finally:
        _stop(proc)
