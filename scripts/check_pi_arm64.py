#!/usr/bin/env python3
"""Install and run a `--target pi` kit in a real arm64 Debian bookworm userland (qemu-user), end to end.

    sudo scripts/check_pi_arm64.py --bundle edge/models/default       # builds the kit
    sudo scripts/check_pi_arm64.py --kit emotion-edge-pi.tar.gz       # checks an existing kit

64-bit Raspberry Pi OS is Debian bookworm arm64 with Python 3.11. This check runs
that userland on an x86 machine: a debootstrapped arm64 root with apt's python3,
python3-venv and mosquitto, the kit's own install.sh (--prefix, no systemd), and
the daemon once on a short clip against the root's mosquitto. It passes when the
daemon's `new` and `end` events arrive (read from the host on 127.0.0.1).

It is a release check, not a CI step: the first run builds the root (~6 minutes,
~210 MB, cached in .cache/ under a hash of its recipe); later runs take the
install + run time only. Emulated inference is ~100x slower than a Pi: the
timings this prints are the check's, never the Pi's (bench on a Pi for those).

Needs root (chroot, mounts), apt packages qemu-user-static, binfmt-support and
debootstrap, and deb.debian.org for the first run. Everything runs in a private
mount namespace (unshare -m): /proc (with a Raspberry Pi 4 cpuinfo bound over
/proc/cpuinfo: LiteRT's cpuinfo crashes on an x86 one), /dev and a fake /sys
CPU list are mounted there and unmounted at the end; every process it starts
(mosquitto, the daemon) is stopped. Inside the root, commands run under
`env -i`: this machine's pip, proxy and locale settings do not leak in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
CAMERA = "pi4"
QEMU_CPU = "cortex-a72"  # Raspberry Pi 4 (BCM2711)
BINFMT = Path("/proc/sys/fs/binfmt_misc")

# Everything that decides the root's content: change any of it and the cache key changes.
RECIPE = {
    "recipe": 1,
    "suite": "bookworm",
    "arch": "arm64",
    "variant": "minbase",
    "mirror": "http://deb.debian.org/debian",
    "sources": [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ],
    "packages": ["python3", "python3-venv", "mosquitto", "ca-certificates"],
}
CHROOT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
              f"QEMU_CPU={QEMU_CPU}", "DEBIAN_FRONTEND=noninteractive"]

# /proc/cpuinfo of a Raspberry Pi 4 Model B (BCM2711, 4x Cortex-A72 r0p3) under 64-bit Raspberry Pi OS.
_CORE = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""
PI4_CPUINFO = "".join(_CORE.format(n=n) for n in range(4)) + (
    "Revision\t: c03114\nSerial\t\t: 10000000deadbeef\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")

# Runs inside the chroot (as /bin/sh, env -i): broker, install.sh, one daemon run.
INNER = r"""
set -eu
RUN=$1 PORT=$2 CAMERA=$3
PREFIX=$RUN/prefix
stop_broker() {
    [ -f "$RUN/mosquitto.pid" ] || return 0
    pid=$(cat "$RUN/mosquitto.pid")
    kill "$pid" 2>/dev/null || return 0
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
trap stop_broker EXIT
stamp() { echo "@@ $(date +%s.%N) $*"; }

stamp "install.sh"
echo "$(uname -m), $(python3 --version), $(. /etc/os-release; echo "$PRETTY_NAME"), $(grep -m1 Model /proc/cpuinfo | cut -d: -f2)"
"$RUN"/kit/*/install.sh --prefix "$PREFIX" --no-systemd --camera "$CAMERA" --no-start
# A local config file replaces the kit's link (install.sh keeps such a file): the clip and this broker.
rm -f "$PREFIX/etc/emotion-edge/$CAMERA.yaml"
cp "$RUN/config.yaml" "$PREFIX/etc/emotion-edge/$CAMERA.yaml"

stamp "mosquitto"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\npid_file %s\nuser root\n' \
    "$PORT" "$RUN/mosquitto.pid" > "$RUN/mosquitto.conf"
/usr/sbin/mosquitto -c "$RUN/mosquitto.conf" -d
touch "$RUN/broker-up"
i=0
while [ ! -e "$RUN/go" ]; do
    i=$((i + 1)); [ $i -lt 1200 ] || { echo "no subscriber came" >&2; exit 1; }
    sleep 0.1
done

stamp "daemon"
cd "$PREFIX/var/lib/emotion-edge/$CAMERA"
EMOTION_EDGE_CAMERA=$CAMERA EMOTION_EDGE_HOME=$PREFIX/opt/emotion-edge PYTHONUNBUFFERED=1 \
    "$PREFIX/opt/emotion-edge/current/venv/bin/emotion-edge" run --config "$PREFIX/etc/emotion-edge/$CAMERA.yaml"
stamp "done"
"""

# Runs on the host inside `unshare -m` (a private mount namespace): mounts, chroot, unmounts.
OUTER = r"""
set -eu
R=$1 HOSTRUN=$2
shift 2
cleanup() {
    # Every process still running inside the root (a daemonised broker, say) is ours: stop it.
    pids=$(for p in /proc/[0-9]*; do [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && echo "${p#/proc/}"; done || true)
    if [ -n "$pids" ]; then
        echo "stopping leftover processes in the root: $pids" >&2
        kill $pids 2>/dev/null || true
        sleep 2
        kill -9 $pids 2>/dev/null || true
    fi
    for m in "$R/sys" "$R/dev" "$R/proc/cpuinfo" "$R/proc"; do
        if mountpoint -q "$m"; then umount "$m"; fi
    done
}
trap cleanup EXIT
mount -t proc proc "$R/proc"
mount --bind "$HOSTRUN/cpuinfo" "$R/proc/cpuinfo"
mount --bind /dev "$R/dev"
mount --bind "$HOSTRUN/sys" "$R/sys"
chroot "$R" /usr/bin/env -i "$@"
"""


def log(msg: str) -> None:
    print(msg, flush=True)


def recipe_key() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]


def tools_missing() -> list[str]:
    return [t for t in ("debootstrap", "qemu-aarch64-static", "unshare", "chroot", "update-binfmts")
            if shutil.which(t) is None]


def ensure_binfmt() -> bool:
    """binfmt_misc mounted and qemu-aarch64 registered; True when this call mounted binfmt_misc."""
    mounted = False
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
        mounted = True
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
    if "F" not in next((ln for ln in entry.read_text().splitlines() if ln.startswith("flags:")), ""):
        raise SystemExit("qemu-aarch64 is registered without the F flag: install qemu-user-static (Debian's, "
                         "which registers it with F) so the interpreter works inside a chroot")
    return mounted


def in_namespace(rootfs: Path, hostrun: Path, argv_inside: list[str], timeout: float, logfile: Path) -> int:
    """Run ``argv_inside`` (after `env -i` + CHROOT_ENV) in the chroot, in a private mount namespace.

    Its output goes to ``logfile``; the tail is printed when it fails.
    """
    with open(logfile, "a") as out:
        rc = subprocess.run(_outer_argv(rootfs, hostrun, argv_inside), timeout=timeout, check=False,
                            stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-30:]
        log("\n".join(f"  | {ln}" for ln in tail))
    return rc


def _outer_argv(rootfs: Path, hostrun: Path, argv_inside: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", OUTER, "outer", str(rootfs), str(hostrun),
            *CHROOT_ENV, *argv_inside]


def build_rootfs(dest: Path) -> None:
    """debootstrap an arm64 bookworm root and apt-get install the recipe's packages into it."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    t0 = time.monotonic()
    dest.parent.mkdir(parents=True, exist_ok=True)
    build_log = dest.with_name(dest.name + ".build.log")
    build_log.write_text("")
    with open(build_log, "a") as out:
        rc = subprocess.run(["debootstrap", "--foreign", f"--arch={RECIPE['arch']}", f"--variant={RECIPE['variant']}",
                             RECIPE["suite"], str(partial), RECIPE["mirror"]], check=False, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"debootstrap failed (exit {rc}); see {build_log}")
    log(f"  debootstrap, first stage: {time.monotonic() - t0:.0f} s (output in {build_log})")
    with tempfile.TemporaryDirectory(prefix="ee-arm64-") as tmp:
        hostrun = _hostrun(Path(tmp))
        t1 = time.monotonic()
        rc = in_namespace(partial, hostrun, ["/debootstrap/debootstrap", "--second-stage"], 3600, build_log)
        if rc != 0:
            raise SystemExit(f"debootstrap --second-stage failed (exit {rc}); see {partial}/debootstrap/debootstrap.log")
        log(f"  debootstrap, second stage (emulated): {time.monotonic() - t1:.0f} s")
        (partial / "etc/apt/sources.list").write_text("\n".join(RECIPE["sources"]) + "\n")
        shutil.copyfile("/etc/resolv.conf", partial / "etc/resolv.conf")
        # Packages must not start services in a chroot.
        policy = partial / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        t2 = time.monotonic()
        apt = ("apt-get -q update && apt-get -q install -y --no-install-recommends "
               + " ".join(RECIPE["packages"]) + " && apt-get clean && rm -rf /var/lib/apt/lists/*")
        rc = in_namespace(partial, hostrun, ["/bin/sh", "-c", apt], 3600, build_log)
        if rc != 0:
            raise SystemExit(f"apt-get install in the arm64 root failed (exit {rc})")
        log(f"  apt-get install {' '.join(RECIPE['packages'])} (emulated): {time.monotonic() - t2:.0f} s")
    (partial / ".recipe.json").write_text(json.dumps(RECIPE, indent=2) + "\n")
    os.replace(partial, dest)


def _hostrun(tmp: Path) -> Path:
    """Host-side files the namespace mounts: the Pi 4 cpuinfo and a sysfs CPU list."""
    (tmp / "cpuinfo").write_text(PI4_CPUINFO)
    cpu = tmp / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    for name in ("possible", "present", "online"):
        (cpu / name).write_text("0-3\n")
    return tmp


def ensure_rootfs(cache: Path) -> tuple[Path, bool]:
    rootfs = cache / f"arm64-bookworm-{recipe_key()}"
    if (rootfs / ".recipe.json").is_file():
        return rootfs, False
    log(f"building the arm64 bookworm root in {rootfs} (first run: several minutes)")
    build_rootfs(rootfs)
    return rootfs, True


def make_clip(dest: Path, bundle: Path, fps: float = 4.0) -> int:
    """The demo clip (two packaged portraits, a face enters, changes, leaves) as numbered JPEGs."""
    import cv2

    from edge.demo import face_boxes, load_photos, synthesise_clip
    from edge.pipeline import Pipeline

    photos, paths = load_photos(None)
    pipeline = Pipeline.from_bundle(bundle)
    try:
        clip = synthesise_clip(photos, face_boxes(pipeline.detector, photos, paths), fps=fps)
    finally:
        pipeline.close()
    dest.mkdir(parents=True)
    # Empty frames after the face, more than the tracker's max_misses: `end` comes from the stream, not the stop.
    frames = clip.frames + [clip.frames[-1]] * 8
    for i, frame in enumerate(frames):
        cv2.imwrite(str(dest / f"{i:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return len(frames)


def build_pi_kit(bundle: Path | None, out: Path) -> Path:
    from edge.deploy.kit import KitOptions, build_kit

    path, info = build_kit(KitOptions(out=out, target="pi", bundle=bundle, cache=CACHE))
    log(f"built kit {path.name}: release {info.release}, bundle {info.bundle_id}")
    return path


class Collector:
    """Subscribes from the host to the chroot's broker; keeps every message under emotion_edge/<camera>/."""

    def __init__(self, port: int, camera: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="arm64-check")
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"emotion_edge/{camera}/#", 1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode("utf-8", "replace")))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def events(self) -> list[dict]:
        return [json.loads(p) for t, p in self.messages if t.endswith("/events")]


def run_check(rootfs: Path, kit: Path, timeout: float) -> int:
    port = _free_port()
    run_name = f"ee-check-{os.getpid()}"
    run_in = f"/tmp/{run_name}"
    run_dir = rootfs / "tmp" / run_name
    with tempfile.TemporaryDirectory(prefix="ee-arm64-") as tmp:
        hostrun = _hostrun(Path(tmp))
        try:
            run_dir.mkdir(parents=True)
            with tarfile.open(kit) as tar:
                tar.extractall(run_dir / "kit", filter="data")
            n = make_clip(run_dir / "clip", next((run_dir / "kit").glob("*/bundle")))
            log(f"clip: {n} frames (640x480) of the demo portraits, a face enters, changes and leaves")
            (run_dir / "config.yaml").write_text(
                f"camera:\n  id: ${{EMOTION_EDGE_CAMERA}}\n  source: {run_in}/clip\n  on_end: stop\n"
                f"mqtt:\n  url: mqtt://127.0.0.1:{port}\n  stats_interval_s: 5\nhomeassistant:\n  discovery: false\n"
                "model:\n  bundle: ${EMOTION_EDGE_HOME}/current/bundle\n")
            (run_dir / "inner.sh").write_text(INNER)
            proc = subprocess.Popen(
                _outer_argv(rootfs, hostrun, ["/bin/sh", f"{run_in}/inner.sh", run_in, str(port), CAMERA]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            collector = None
            lines: list[str] = []
            t_start = time.monotonic()
            stamps: dict[str, float] = {}

            def pump() -> None:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("@@ "):
                        stamps[line.split()[2]] = time.monotonic()
                        continue
                    lines.append(line.rstrip())

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            try:
                while proc.poll() is None and not (run_dir / "broker-up").exists():
                    if time.monotonic() - t_start > timeout:
                        raise TimeoutError("install.sh did not finish in time")
                    time.sleep(0.2)
                if (run_dir / "broker-up").exists():
                    collector = _connect(port)
                    (run_dir / "go").touch()
                proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t_start)))
            except (TimeoutError, subprocess.TimeoutExpired):
                log(f"timed out after {timeout:.0f} s: stopping")
                proc.terminate()
                proc.wait(30)
            reader.join(10)
            if collector is not None:
                time.sleep(0.5)
                collector.close()
            for line in lines:
                log(f"  | {line}")
            return _verdict(proc.returncode, collector, stamps)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            _assert_clean(rootfs)


def _connect(port: int) -> Collector:
    deadline = time.monotonic() + 30
    while True:
        try:
            c = Collector(port, CAMERA)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
            continue
        if not c.subscribed.wait(10):
            raise RuntimeError("could not subscribe to the chroot's mosquitto")
        return c


def _verdict(rc: int | None, collector: Collector | None, stamps: dict[str, float]) -> int:
    def span(a: str, b: str) -> str:
        return f"{stamps[b] - stamps[a]:.0f} s" if a in stamps and b in stamps else "-"

    log(f"install.sh (emulated): {span('install.sh', 'mosquitto')}; daemon run on the clip (emulated): "
        f"{span('daemon', 'done')}")
    events = collector.events() if collector else []
    kinds = [e.get("type") for e in events]
    avail = [p for t, p in (collector.messages if collector else []) if t.endswith("/availability")]
    log(f"MQTT: availability {avail}, events {kinds}")
    for e in events:
        log(f"  event {e.get('type'):6} id={e.get('id')} label={e.get('label')} score={e.get('score')}")
    stats = [json.loads(p) for t, p in (collector.messages if collector else []) if t.endswith("/stats")]
    busy = [st for st in stats if st.get("processed_fps")]
    if busy:
        st = busy[-1]
        stages = ", ".join(f"{k} {v:.0f}" for k, v in st.get("stage_ms", {}).items())
        log(f"per-frame ms under EMULATION (qemu, not Pi speed): frame {st.get('frame_ms', 0):.0f}; {stages}")
    if rc != 0:
        log(f"FAIL: the run inside the arm64 root exited with {rc}")
        return 1
    if "new" in kinds and "end" in kinds and "online" in avail:
        log("PASS: the Pi kit installed with its install.sh and its daemon published new/end events "
            "on arm64 Debian bookworm (Python 3.11, emulated Cortex-A72)")
        return 0
    log("FAIL: expected availability online and new + end events")
    return 1


def _assert_clean(rootfs: Path) -> None:
    """Nothing of ours left mounted (the namespace is gone) or running."""
    with open("/proc/self/mounts") as f:
        left = [ln.split()[1] for ln in f if ln.split()[1].startswith(str(rootfs))]
    if left:
        raise SystemExit(f"mounts left behind under the root: {left}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--kit", type=Path, help="a --target pi kit (default: build one)")
    src.add_argument("--bundle", type=Path, help="bundle for the kit it builds (default: the shipped bundle)")
    ap.add_argument("--cache", type=Path, default=CACHE, help="where the arm64 root is kept (default: .cache/)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for install + run (default: 1800)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("check_pi_arm64: run as root (chroot and mounts)", file=sys.stderr)
        return 2
    missing = tools_missing()
    if missing:
        print(f"check_pi_arm64: missing {', '.join(missing)} "
              "(apt-get install qemu-user-static binfmt-support debootstrap)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    t0 = time.monotonic()
    log(f"arm64 check of the Pi kit, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    mounted_binfmt = ensure_binfmt()
    try:
        rootfs, built = ensure_rootfs(args.cache)
        size = subprocess.run(["du", "-sm", str(rootfs)], capture_output=True, text=True, check=True).stdout.split()[0]
        log(f"arm64 root: {rootfs.name} ({'built' if built else 'cached'}, {size} MB, recipe key {recipe_key()})")
        t_kit = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ee-arm64-kit-") as tmp:
            kit = args.kit or build_pi_kit(args.bundle, Path(tmp) / "emotion-edge-pi.tar.gz")
            log(f"kit ready in {time.monotonic() - t_kit:.0f} s")
            rc = run_check(rootfs, kit, args.timeout)
    finally:
        if mounted_binfmt:
            subprocess.run(["umount", str(BINFMT)], check=False)
    log(f"total: {time.monotonic() - t0:.0f} s (wall clock, emulated: not Pi speed)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
