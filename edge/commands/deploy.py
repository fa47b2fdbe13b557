"""``emotion-edge deploy``: install a kit on one or many hosts over SSH, with rollback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kit", type=Path, required=True, help="kit archive from `emotion-edge package`")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", action="append", metavar="[USER@]HOST", help="host to deploy to (repeat for more)")
    where.add_argument("--inventory", type=Path, metavar="HOSTS.yaml", help="inventory file (hosts + per-host settings)")
    parser.add_argument("--camera", help="camera instance emotion-edge@CAMERA (default: the kit's, or the inventory's)")
    ssh = parser.add_argument_group("ssh")
    ssh.add_argument("--user", help="SSH user for hosts given without one")
    ssh.add_argument("--port", type=int, help="SSH port")
    ssh.add_argument("--identity", type=Path, help="SSH private key")
    ssh.add_argument("--known-hosts", type=Path, help="known-hosts file to check host keys against (default: ssh's)")
    ssh.add_argument("--accept-new-host-keys", action="store_true",
                     help="trust the host key of hosts never seen before (changed keys are still refused)")
    ssh.add_argument("--ssh-config", type=Path, help="ssh config file (ssh -F)")
    dev = parser.add_argument_group("on the host")
    dev.add_argument("--mqtt-password-file", type=Path, help="install this file as the camera's MQTT password")
    dev.add_argument("--prefix", help="install under this directory without systemd (tests, non-root installs)")
    dev.add_argument("--no-systemd", action="store_true", help="run the daemon as a pidfile process instead of a unit")
    dev.add_argument("--python", help="Python interpreter on the host for the venv (default: python3)")
    dev.add_argument("--keep", type=int, default=3, help="releases to keep on each host (default: 3)")
    ready = parser.add_argument_group("readiness")
    ready.add_argument("--mqtt-url", help="also wait for `online` on <prefix>/<camera>/availability at this broker "
                                          "(mqtt://host:port; password from $EMOTION_EDGE_MQTT_PASSWORD)")
    ready.add_argument("--mqtt-prefix", default="emotion_edge", help="topic prefix (default: emotion_edge)")
    ready.add_argument("--mqtt-username", help="broker user for the watcher")
    ready.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (default: 120)")
    ready.add_argument("--settle", type=float, default=5.0,
                       help="seconds the service must stay up after it is ready (default: 5)")
    parser.add_argument("--parallel", type=int, default=8, help="hosts at a time (default: 8)")


def run(args: argparse.Namespace) -> int:
    from edge.deploy.deploy import DeployOptions, deploy_all, format_table, mqtt_password_from_env
    from edge.deploy.inventory import hosts_from_flags, load_inventory
    from edge.deploy.kit import read_kit_info
    from edge.errors import ConfigError

    info = read_kit_info(args.kit)
    settings = {k: v for k, v in {
        "user": args.user, "port": args.port, "identity_file": args.identity, "camera": args.camera,
        "mqtt_password_file": args.mqtt_password_file, "prefix": args.prefix,
        "systemd": False if args.no_systemd else None, "python": args.python,
    }.items() if v is not None}
    hosts = load_inventory(args.inventory, settings) if args.inventory else hosts_from_flags(args.host, settings)
    for h in hosts:
        if h.mqtt_password_file and not Path(h.mqtt_password_file).expanduser().is_file():
            raise ConfigError(f"{h.destination}: mqtt_password_file {h.mqtt_password_file} does not exist")
    opts = DeployOptions(
        kit=args.kit, info=info, known_hosts=args.known_hosts, accept_new_host_keys=args.accept_new_host_keys,
        ssh_config=args.ssh_config, mqtt_url=args.mqtt_url, mqtt_prefix=args.mqtt_prefix,
        mqtt_username=args.mqtt_username, mqtt_password=mqtt_password_from_env(),
        ready_timeout=args.timeout, settle=args.settle, keep=args.keep,
    )
    print(f"deploying release {info.release} ({info.target}) to {len(hosts)} host(s)", file=sys.stderr)

    def progress(r) -> None:
        print(f"  {r.host}: {r.status} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)

    results = deploy_all(hosts, opts, parallel=args.parallel, on_done=progress)
    print(format_table(results))
    return 0 if all(r.status in ("ok", "unchanged") for r in results) else 1
