"""Run commands on and copy files to a host with the OpenSSH client.

Host keys are always checked (``StrictHostKeyChecking=yes``) against a known-hosts
file; ``accept_new=True`` (``--accept-new-host-keys``) trusts the key of a host
seen for the first time and still refuses a changed one. Remote commands are
argument lists, quoted here for the remote shell: nothing is ever passed through
a local shell.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EmotionEdgeError

log = logging.getLogger(__name__)

# ssh's own failures exit 255; remote commands' codes come through unchanged.
SSH_FAILED = 255
_HOSTKEY_PROBLEMS = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "No ED25519 host key is known",
    "No RSA host key is known",
    "No ECDSA host key is known",
)


class SshError(EmotionEdgeError):
    """A remote command or copy failed; ``message`` says which and how."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class SshTarget:
    """One host and how to reach it."""

    host: str                      # host or user@host
    port: int | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    accept_new: bool = False
    ssh_config: Path | None = None
    connect_timeout: int = 10
    extra_options: tuple[str, ...] = field(default=())

    @property
    def user(self) -> str | None:
        return self.host.split("@", 1)[0] if "@" in self.host else None

    def options(self) -> list[str]:
        """``-o`` options shared by ssh and scp."""
        opts: list[str] = []
        if self.ssh_config is not None:
            opts += ["-F", str(self.ssh_config)]
        opts += [
            "-o", "BatchMode=yes",  # never prompt: a deploy to fifty hosts cannot answer questions
            "-o", "PasswordAuthentication=no",  # key auth only (BatchMode already forbids the prompt; say it)
            "-o", "KbdInteractiveAuthentication=no",
            "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new else 'yes'}",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
        ]
        if self.known_hosts is not None:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity_file is not None:
            opts += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        for o in self.extra_options:
            _refuse_weakening(o)
            opts += ["-o", o]
        return opts

    def ssh_argv(self, remote_argv: list[str]) -> list[str]:
        """The local argv running ``remote_argv`` on the host (quoted for its shell)."""
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *self.options(), *port, self.host, "--", shlex.join(remote_argv)]

    def scp_argv(self, local: Path, remote_path: str) -> list[str]:
        port = ["-P", str(self.port)] if self.port else []
        return ["scp", "-q", *self.options(), *port, str(local), f"{_scp_host(self.host)}:{remote_path}"]


# Options that would turn host-key checking off or password logins on. The -o options above come first and
# so win anyway (ssh keeps the first value), but a setting that silently does nothing is refused instead.
_WEAKENING = {
    "stricthostkeychecking": {"no", "off", "false"},
    "userknownhostsfile": {"/dev/null", "none"},
    "globalknownhostsfile": {"/dev/null", "none"},
    "passwordauthentication": {"yes", "true"},
    "kbdinteractiveauthentication": {"yes", "true"},
}


def _refuse_weakening(option: str) -> None:
    key, value = (re.split(r"\s*=\s*|\s+", option.strip(), maxsplit=1) + [""])[:2]
    if value.strip().strip('"').lower() in _WEAKENING.get(key.lower(), ()):
        raise SshError(f"ssh option {option!r} would weaken host-key checking or allow password logins: refused "
                       "(add the host key to known_hosts, or use --accept-new-host-keys for first-seen hosts)")


def _scp_host(host: str) -> str:
    user, _, name = host.rpartition("@")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # IPv6 literal
    return f"{user}@{name}" if user else name


def _explain(target: SshTarget, stderr: str) -> str:
    if any(p in stderr for p in _HOSTKEY_PROBLEMS):
        where = target.known_hosts or "~/.ssh/known_hosts"
        port = f" -p {target.port}" if target.port else ""
        return (
            f"host key of {target.host} is unknown or changed (checked against {where}). Verify the key "
            f"fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it with "
            f"`ssh-keyscan{port} HOST >> {where}` or connect once by hand; for freshly flashed hosts, "
            "--accept-new-host-keys trusts first-seen keys (a changed key is still refused)"
        )
    if "Permission denied" in stderr:
        return f"{target.host} refused the login (Permission denied): check the user and that your key is in its authorized_keys"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
    return f"cannot reach {target.host}: {last}"


def run(target: SshTarget, remote_argv: list[str], *, timeout: float | None = 600, check: bool = True,
        what: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command on the host; raises ``SshError`` on failure when ``check``."""
    argv = target.ssh_argv(remote_argv)
    log.debug("%s: %s", target.host, shlex.join(remote_argv))
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=check)
    except subprocess.TimeoutExpired:
        raise SshError(f"{what or remote_argv[0]} on {target.host} did not finish within {timeout:.0f} s") from None
    except subprocess.CalledProcessError as exc:
        if exc.returncode == SSH_FAILED:
            raise SshError(_explain(target, exc.stderr), exc.returncode, exc.stderr) from None
        detail = _tail(exc.stderr or exc.stdout)
        raise SshError(f"{what or remote_argv[0]} failed on {target.host} (exit {exc.returncode}): {detail}",
                       exc.returncode, exc.stderr) from None


def copy(target: SshTarget, local: Path, remote_path: str, *, timeout: float | None = 1800) -> None:
    """Copy one file to the host (scp with the same host-key checking)."""
    try:
        subprocess.run(target.scp_argv(local, remote_path), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, check=True)
    except subprocess.TimeoutExpired:
        raise SshError(f"copying {local.name} to {target.host} did not finish within {timeout:.0f} s") from None
    except subprocess.CalledProcessError as exc:
        if any(p in exc.stderr for p in _HOSTKEY_PROBLEMS) or "Permission denied (publickey" in exc.stderr:
            raise SshError(_explain(target, exc.stderr), exc.returncode, exc.stderr) from None
        raise SshError(f"copying {local.name} to {target.host}:{remote_path} failed: {_tail(exc.stderr)}",
                       exc.returncode, exc.stderr) from None


def _tail(text: str, lines: int = 3) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return re.sub(r"\s+", " ", " | ".join(kept)) or "no error output"
