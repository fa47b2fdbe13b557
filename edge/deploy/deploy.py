"""``emotion-edge deploy``: put a kit on hosts over SSH, switch atomically, roll back on failure.

Per host, in order:

1. connect (host key checked), learn the user, CPU and the release now running;
2. copy the kit to a private temp directory and run its ``install.sh --no-activate``:
   the manifest is verified and the new release is built next to the old one,
   smoke-tested, and nothing running is touched yet;
3. ``emotion-edge-ctl activate`` switches the ``current`` symlink in one rename,
   then the camera's service restarts;
4. wait until the service is ready: systemd reports it active (``Type=notify``:
   the daemon said READY=1) and it stays up for a settle time, and, when a broker
   is given, the camera's availability topic says ``online``;
5. not ready in time: switch back to the previous release and restart it.

Hosts run in parallel; each gets a ``HostResult`` for the summary table.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import EmotionEdgeError
from . import ssh
from .inventory import HostSpec
from .kit import KitInfo
from .ready import AvailabilityWatcher, availability_topic

log = logging.getLogger(__name__)

Status = Literal["ok", "unchanged", "rolled back", "failed"]
INSTALL_BASE = "/opt/emotion-edge"


@dataclass
class DeployOptions:
    """What every host gets (per-host settings come from ``HostSpec``)."""

    kit: Path
    info: KitInfo
    known_hosts: Path | None = None
    accept_new_host_keys: bool = False
    ssh_config: Path | None = None
    mqtt_url: str | None = None
    mqtt_prefix: str = "emotion_edge"
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    ready_timeout: float = 120.0
    settle: float = 5.0
    keep: int = 3
    install_timeout: float = 1200.0


@dataclass
class HostResult:
    """How one host went."""

    host: str
    camera: str | None
    status: Status
    previous: str | None = None
    release: str | None = None
    seconds: float = 0.0
    message: str = ""


class _Failed(EmotionEdgeError):
    pass


class HostDeploy:
    """One host's deploy; ``run()`` never raises, it returns a ``HostResult``."""

    def __init__(self, spec: HostSpec, opts: DeployOptions) -> None:
        self.spec = spec
        self.opts = opts
        self.systemd = spec.systemd if spec.systemd is not None else spec.prefix is None
        self.base = (spec.prefix.rstrip("/") if spec.prefix else "") + INSTALL_BASE
        self.ctl = f"{self.base}/bin/emotion-edge-ctl"
        self.target = ssh.SshTarget(
            host=spec.destination, port=spec.port,
            identity_file=Path(spec.identity_file).expanduser() if spec.identity_file else None,
            known_hosts=opts.known_hosts, accept_new=opts.accept_new_host_keys, ssh_config=opts.ssh_config,
        )
        self.become: list[str] = []
        self.camera = spec.camera or opts.info.camera

    # -- remote helpers
    def _run(self, argv: list[str], *, sudo: bool = False, **kw) -> str:
        return ssh.run(self.target, (self.become if sudo else []) + argv, **kw).stdout

    def _ctl(self, *args: str, check: bool = True, timeout: float = 300) -> tuple[int, str]:
        proc = ssh.run(self.target, self.become + [self.ctl, *args], check=check, timeout=timeout,
                       what=f"emotion-edge-ctl {args[0]}")
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    def run(self) -> HostResult:
        t0 = time.monotonic()
        res = HostResult(host=self.spec.destination, camera=self.camera, status="failed", release=self.opts.info.release)
        try:
            if not self.camera:
                raise _Failed("no camera given (--camera, or camera: in the inventory)")
            self._deploy(res)
        except EmotionEdgeError as exc:
            res.status = "failed"
            res.message = res.message or str(exc)
        except Exception as exc:  # one host's surprise must not stop the others
            log.exception("%s: unexpected error", self.spec.destination)
            res.message = f"unexpected error: {exc!r}"
            res.status = "failed"
        res.seconds = time.monotonic() - t0
        return res

    def _deploy(self, res: HostResult) -> None:
        info = self.opts.info
        # 1. who and what is there
        # One marked line: a chatty shell profile on the host cannot confuse the parse.
        script = ('cur=; prev=; if [ -x "$1" ]; then cur=$("$1" current); prev=$("$1" previous); fi; '
                  'echo "emotion-edge-probe $(id -u) $(uname -m) $(getconf LONG_BIT) ${cur:--} ${prev:--}"')
        out = self._run(["sh", "-c", script, "probe", self.ctl])
        line = next((ln for ln in out.splitlines() if ln.startswith("emotion-edge-probe ")), "")
        fields = line.split()[1:]
        if len(fields) != 5:
            raise _Failed(f"unexpected answer from {self.spec.destination}: {out.strip()[-200:]!r}")
        uid, machine, bits, previous, older = [None if f == "-" else f for f in fields]
        res.previous = previous
        # 32-bit Raspberry Pi OS on a Pi 4/5 runs a 64-bit kernel: uname says aarch64, the userland is 32-bit.
        if machine.startswith("armv") or (bits == "32" and info.machine in ("aarch64", "x86_64")):
            raise _Failed(f"the host runs a 32-bit OS ({machine}, {bits}-bit userland); install 64-bit Raspberry Pi OS "
                          "(LiteRT has no 32-bit ARM wheels)")
        if machine != info.machine:
            raise _Failed(f"the kit is for {info.machine} but the host is {machine}; build one with --target for it")
        if self.systemd and uid != "0":
            self.become = ["sudo", "-n"]
        if previous == info.release and self._active():
            res.status = "unchanged"
            res.message = "already running this release"
            return

        # 2. stage + install next to the running release
        tmp = self._run(["mktemp", "-d", "/var/tmp/emotion-edge-kit.XXXXXX"]).strip().splitlines()[-1]
        try:
            ssh.copy(self.target, self.opts.kit, f"{tmp}/kit.tar.gz")
            install = [f"{tmp}/{info.top_dir}/install.sh", "--no-activate", "--camera", self.camera]
            if self.spec.mqtt_password_file:
                ssh.copy(self.target, Path(self.spec.mqtt_password_file).expanduser(), f"{tmp}/mqtt_password")
                install += ["--mqtt-password-file", f"{tmp}/mqtt_password"]
            if self.spec.prefix:
                install += ["--prefix", self.spec.prefix]
            if not self.systemd:
                install.append("--no-systemd")
            if self.spec.python:
                install += ["--python", self.spec.python]
            self._run(["tar", "-xzf", f"{tmp}/kit.tar.gz", "-C", tmp], what="unpacking the kit")
            self._run(install, sudo=True, timeout=self.opts.install_timeout, what="install.sh")
        finally:
            ssh.run(self.target, ["rm", "-rf", tmp], check=False, timeout=60)

        # 3.-4. switch, restart, wait
        ok, why = self._switch_and_wait(info.release)
        if ok:
            res.status = "ok"
            self._ctl("prune", str(self.opts.keep), check=False)
            return
        # 5. roll back
        logs = self._ctl("logs", self.camera, "15", check=False)[1]
        # The pidfile mode's log marks each start: keep only the new release's lines.
        marker = f"emotion-edge-ctl: starting release {info.release}"
        if marker in logs:
            logs = logs.rpartition(marker)[2].partition("\n")[2]
        if not previous or previous == info.release:
            self._ctl("stop", self.camera, check=False)
            res.message = f"{why}; no previous release to roll back to, service stopped. Last log lines: {_oneline(logs)}"
            return
        back, why_back = self._switch_and_wait(previous)
        # As if the deploy never happened: 'previous' is again what it was, not the failed release.
        self._ctl("set-previous", *([older] if older else []), check=False)
        res.status = "rolled back" if back else "failed"
        res.message = (f"{why}; rolled back to {previous}" + ("" if back else f", which is not ready either: {why_back}")
                       + f". Last log lines of the new release: {_oneline(logs)}")

    def _active(self) -> bool:
        return self._ctl("is-active", self.camera, check=False)[0] == 0

    def _switch_and_wait(self, release: str) -> tuple[bool, str]:
        """Activate ``release``, restart the camera, wait for readiness; (ready, why not)."""
        watcher = None
        if self.opts.mqtt_url:
            watcher = AvailabilityWatcher(self.opts.mqtt_url, availability_topic(self.opts.mqtt_prefix, self.camera),
                                          self.opts.mqtt_username, self.opts.mqtt_password)
            watcher.start()
        try:
            self._ctl("activate", release)
            t_restart = time.monotonic()
            rc, out = self._ctl("restart", self.camera, check=False, timeout=self.opts.ready_timeout + 30)
            if rc != 0:
                return False, f"restart failed: {_oneline(out)}"
            deadline = t_restart + self.opts.ready_timeout
            # Ready = (online on MQTT, when watched) and then still active after the settle time.
            while watcher is not None and not watcher.online:
                if not self._active():
                    return False, "the daemon exited before it was ready"
                if time.monotonic() > deadline:
                    return False, f"no 'online' on {watcher.topic} within {self.opts.ready_timeout:.0f} s"
                watcher.wait_online(min(2.0, max(0.1, deadline - time.monotonic())))
            settle_end = time.monotonic() + self.opts.settle
            while True:
                if not self._active():
                    return False, "the service stopped right after starting"
                if time.monotonic() >= settle_end:
                    return True, ""
                time.sleep(min(1.0, max(0.0, settle_end - time.monotonic())))
        finally:
            if watcher is not None:
                watcher.close()


def _oneline(text: str, limit: int = 400) -> str:
    flat = " | ".join(ln.strip() for ln in text.strip().splitlines() if ln.strip())
    return (flat[-limit:] if len(flat) > limit else flat) or "(none)"


def deploy_all(hosts: list[HostSpec], opts: DeployOptions, parallel: int = 8,
               on_done: Callable[[HostResult], None] | None = None) -> list[HostResult]:
    """Deploy to every host, ``parallel`` at a time; results in the hosts' order."""
    def one(spec: HostSpec) -> HostResult:
        r = HostDeploy(spec, opts).run()
        if on_done is not None:
            on_done(r)
        return r

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def format_table(results: list[HostResult]) -> str:
    """The per-host summary as an aligned text table."""
    rows = [("HOST", "CAMERA", "STATUS", "FROM", "TO", "TIME", "DETAIL")]
    for r in results:
        rows.append((r.host, r.camera or "-", r.status, r.previous or "-", r.release or "-", f"{r.seconds:.0f}s",
                     r.message or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:6], widths)) + ("  " + row[6] if row[6] else ""))
    return "\n".join(line.rstrip() for line in lines)


def mqtt_password_from_env() -> str | None:
    """The deploy watcher's broker password: ``$EMOTION_EDGE_MQTT_PASSWORD`` (never a flag: flags show in ps)."""
    return os.environ.get("EMOTION_EDGE_MQTT_PASSWORD") or None

