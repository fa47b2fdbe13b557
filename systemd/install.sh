#!/bin/sh
# Install this emotion-edge kit (made by `emotion-edge package`) without
# network access: verify the checksum manifest, create a release directory
# with its own venv, switch the `current` symlink to it and (re)start the
# camera's service.
#
#   sudo ./install.sh --camera front [--mqtt-password-file FILE]
#
# Layout (under --prefix, default /):
#   opt/emotion-edge/releases/<release>/   venv/ bundle/ config/ systemd/ docs/ kit.json
#   opt/emotion-edge/current -> releases/<release>      (switched atomically)
#   opt/emotion-edge/previous -> releases/<older>       (what `rollback` goes back to)
#   opt/emotion-edge/bin/emotion-edge-ctl               activate / restart / rollback / status
#   etc/emotion-edge/<camera>.yaml -> ../../opt/emotion-edge/current/config/emotion-edge.yaml
#   etc/emotion-edge/credentials/<camera>/mqtt_password (root, 0600; LoadCredential=)
#   var/lib/emotion-edge/<camera>/                      state (systemd StateDirectory=)
#
# --no-systemd (for tests and systems without systemd): nothing outside the
# prefix is touched, no user is created, and emotion-edge-ctl runs the daemon
# as a background process of the current user with a pidfile.
set -eu
umask 022

KIT_DIR=$(cd "$(dirname "$0")" && pwd)
PROG=install.sh
ROOT=""
MODE=systemd
CAMERA=""
ACTIVATE=1
START=1
PYTHON=python3
PASSWORD_FILE=""
KEEP=3
SERVICE_USER=emotion-edge

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
    cat <<EOF
usage: $PROG [--camera NAME] [--prefix DIR] [--no-systemd] [--python PY]
             [--mqtt-password-file FILE] [--no-activate] [--no-start] [--keep N]

  --camera NAME      camera instance to enable (emotion-edge@NAME.service);
                     default: the kit's camera, if it names one
  --prefix DIR       install under DIR instead of / (implies --no-systemd)
  --no-systemd       no unit, no user: run the daemon as a pidfile process
  --python PY        Python $KIT_PYTHON interpreter for the venv (default: python3)
  --mqtt-password-file FILE
                     install FILE as the camera's MQTT password credential
  --no-activate      install the release but leave 'current' as it is
                     (prints the release id; emotion-edge-ctl activates it)
  --no-start         activate, but do not enable/restart the service
  --keep N           releases to keep (default 3; current and previous always stay)
EOF
}

# The manifest is verified before anything in the kit is read or run.
verify_manifest() {
    cd "$KIT_DIR"
    [ -f SHA256SUMS ] || die "SHA256SUMS missing: this is not a complete emotion-edge kit"
    sha256sum --quiet --strict -c SHA256SUMS >&2 ||
        die "kit checksum mismatch (corrupted or modified copy); fetch the kit again"
    # A file that is not in the manifest (an extra wheel, say) would be
    # picked up by pip: refuse it as well.
    listed=$(sed 's/^[0-9a-f]*  \*\{0,1\}//' SHA256SUMS | sort)
    present=$(find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort)
    [ "$listed" = "$present" ] || die "kit holds files that are not in SHA256SUMS: $(printf '%s\n' "$present" | grep -vxF "$listed" | head -3 | tr '\n' ' ')"
    cd - >/dev/null
}

KIT_PYTHON="(see kit.env)"
while [ $# -gt 0 ]; do
    case "$1" in
        --camera) CAMERA=${2:?--camera needs a value}; shift 2 ;;
        --prefix) ROOT=${2:?--prefix needs a value}; MODE=process; shift 2 ;;
        --no-systemd) MODE=process; shift ;;
        --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
        --mqtt-password-file) PASSWORD_FILE=${2:?--mqtt-password-file needs a value}; shift 2 ;;
        --no-activate) ACTIVATE=0; shift ;;
        --no-start) START=0; shift ;;
        --keep) KEEP=${2:?--keep needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
done

verify_manifest
# kit.env is written by `emotion-edge package` and covered by the manifest.
# shellcheck source=/dev/null
. "$KIT_DIR/kit.env"
CAMERA=${CAMERA:-$KIT_CAMERA}

if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
    [ "$ROOT" = / ] && ROOT=""
fi
BASE="$ROOT/opt/emotion-edge"
ETC="$ROOT/etc/emotion-edge"
REL="$BASE/releases/$KIT_RELEASE"

# ---- preflight: the wheels only fit one CPU and one Python
machine=$(uname -m)
[ "$machine" = "$KIT_MACHINE" ] ||
    die "this kit is for $KIT_MACHINE but this machine is $machine; build one with \`emotion-edge package --target ...\` for it (32-bit Raspberry Pi OS is not supported: LiteRT has no 32-bit ARM wheels, install the 64-bit OS)"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python $KIT_PYTHON or pass --python"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "$KIT_PYTHON" ] ||
    die "$PYTHON is Python $pyver but the kit's wheels are for Python $KIT_PYTHON; pass --python /path/to/python$KIT_PYTHON or rebuild the kit"
# 32-bit Raspberry Pi OS runs a 64-bit kernel on a Pi 4/5: uname says aarch64, the userland is armhf.
bits=$("$PYTHON" -c 'import struct; print(struct.calcsize("P") * 8)')
[ "$bits" = 64 ] ||
    die "$PYTHON is a ${bits}-bit Python (a 32-bit OS on a 64-bit kernel?); this kit needs 64-bit Raspberry Pi OS (LiteRT has no 32-bit ARM wheels)"
if [ "$MODE" = systemd ]; then
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo), or use --prefix DIR --no-systemd for a user install"
    command -v systemctl >/dev/null 2>&1 || die "systemctl not found; use --no-systemd"
fi
case "$CAMERA" in
    "") ;;
    *[!a-z0-9_-]*|[_-]*) die "camera name '$CAMERA' must be lower-case a-z, 0-9, _ and - (it becomes an MQTT topic level)" ;;
esac

# pip must see only the kit: no index, no pip.conf / PIP_* from this machine.
for v in $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# The interpreter a venv was made from (pyvenv.cfg also names the venv's own path).
venv_id() { grep -E '^(home|version|include-system-site-packages) ' "$1/pyvenv.cfg" || true; }

install_release() {
    if [ -f "$REL/.installed" ]; then
        note "release $KIT_RELEASE is already installed"
        return
    fi
    rm -rf "$REL"
    mkdir -p "$REL"
    note "creating venv in $REL/venv (Python $pyver, with system site-packages for apt's picamera2)"
    # --without-pip: pip runs from the kit's own wheel, so python3-venv /
    # ensurepip need not be installed on the Pi.
    "$PYTHON" -m venv --without-pip --system-site-packages "$REL/venv"
    pip_whl=$(ls "$KIT_DIR"/wheels/pip-*.whl | head -1)
    pip() { "$REL/venv/bin/python" "$pip_whl/pip" "$@"; }
    cur=$(readlink "$BASE/current" 2>/dev/null || true)
    cur=${cur:+$BASE/$cur}
    if [ -n "$cur" ] && [ -f "$cur/.installed" ] && cmp -s "$cur/requirements.txt" "$KIT_DIR/requirements.txt" &&
        cmp -s "$cur/requirements-nodeps.txt" "$KIT_DIR/requirements-nodeps.txt" &&
        [ "$(venv_id "$cur/venv")" = "$(venv_id "$REL/venv")" ]; then
        # Same pinned dependencies as the running release (a new model or
        # config, say): hard-link its site-packages instead of unpacking
        # every wheel again; only the project itself is reinstalled.
        note "dependencies unchanged since $(basename "$cur"): reusing them (hard links)"
        site=$("$REL/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
        cp -al "$cur/venv/${site#"$REL/venv/"}/." "$site/"
        for f in "$cur"/venv/bin/*; do
            name=$(basename "$f")
            [ -e "$REL/venv/bin/$name" ] || [ -L "$f" ] && continue
            # Console scripts name their venv's python in the #! line.
            sed "1s|^#!$cur/venv/bin/|#!$REL/venv/bin/|" "$f" > "$REL/venv/bin/$name"
            chmod 0755 "$REL/venv/bin/$name"
        done
        pip install --no-index --find-links "$KIT_DIR/wheels" --no-deps --force-reinstall --no-warn-script-location \
            -q "$(head -1 "$KIT_DIR/requirements.txt")" >&2
    else
        # Every version is pinned in requirements.txt (resolved when the kit was
        # built); --ignore-installed keeps system packages from standing in for them.
        pip install --no-index --find-links "$KIT_DIR/wheels" --ignore-installed --no-warn-script-location \
            -q -r "$KIT_DIR/requirements.txt" >&2
        # These declare dependencies the device must not have (tensorflow): files only.
        if [ -s "$KIT_DIR/requirements-nodeps.txt" ]; then
            pip install --no-index --find-links "$KIT_DIR/wheels" --no-deps -q -r "$KIT_DIR/requirements-nodeps.txt" >&2
        fi
    fi
    cp -R "$KIT_DIR/bundle" "$KIT_DIR/config" "$KIT_DIR/systemd" "$KIT_DIR/docs" "$REL/"
    cp "$KIT_DIR/kit.json" "$KIT_DIR/kit.env" "$KIT_DIR/requirements.txt" "$KIT_DIR/requirements-nodeps.txt" "$REL/"
    # Smoke test on this machine before anything points at the release:
    # imports the runtime and loads both models from the kit's bundle.
    "$REL/venv/bin/python" -c '
import sys
from edge.pipeline import Pipeline
Pipeline.from_bundle(sys.argv[1]).close()
' "$REL/bundle" >&2 || die "the installed release fails its smoke test (see above); nothing was switched"
    chmod -R go-w "$REL"
    touch "$REL/.installed"
}

setup_system() {
    mkdir -p "$BASE/bin" "$ETC/credentials"
    chmod 0700 "$ETC/credentials"
    install -m 0755 "$KIT_DIR/emotion-edge-ctl" "$BASE/bin/emotion-edge-ctl"
    printf 'MODE=%s\n' "$MODE" > "$BASE/install.env"
    if [ "$MODE" = systemd ]; then
        if ! getent passwd "$SERVICE_USER" >/dev/null; then
            groups=""
            getent group video >/dev/null && groups="--groups video"
            # shellcheck disable=SC2086
            useradd --system --user-group $groups --home-dir /var/lib/emotion-edge \
                --no-create-home --shell /usr/sbin/nologin --comment "emotion-edge daemon" "$SERVICE_USER"
            note "created system user $SERVICE_USER"
        fi
    else
        mkdir -p "$ROOT/var/lib/emotion-edge" "$ROOT/var/log/emotion-edge" "$ROOT/run/emotion-edge"
    fi
}

setup_camera() {
    cam=$1
    cred="$ETC/credentials/$cam"
    mkdir -p "$cred"
    chmod 0700 "$cred"
    if [ -n "$PASSWORD_FILE" ]; then
        install -m 0600 "$PASSWORD_FILE" "$cred/mqtt_password"
        note "installed the MQTT password for $cam"
    elif [ ! -e "$cred/mqtt_password" ]; then
        # LoadCredential= refuses to start the unit when the file is missing;
        # an empty file means "no password".
        : > "$cred/mqtt_password"
        chmod 0600 "$cred/mqtt_password"
    fi
    conf="$ETC/$cam.yaml"
    if [ -f "$conf" ] && [ ! -L "$conf" ]; then
        note "keeping $conf (a local file); the kit's config is in $BASE/current/config/"
    else
        # The config belongs to the release, so a rollback rolls it back too.
        ln -sfn ../../opt/emotion-edge/current/config/emotion-edge.yaml "$conf"
    fi
    [ "$MODE" = systemd ] || mkdir -p "$ROOT/var/lib/emotion-edge/$cam"
}

install_release
setup_system
[ -z "$CAMERA" ] || setup_camera "$CAMERA"
if [ "$ACTIVATE" -eq 0 ]; then
    echo "release=$KIT_RELEASE"
    exit 0
fi
"$BASE/bin/emotion-edge-ctl" activate "$KIT_RELEASE"
if [ -n "$CAMERA" ]; then
    if [ "$START" -eq 1 ]; then
        "$BASE/bin/emotion-edge-ctl" enable "$CAMERA"
        "$BASE/bin/emotion-edge-ctl" restart "$CAMERA"
    fi
else
    note "no --camera given: release installed; add one with: $0 --camera NAME"
fi
"$BASE/bin/emotion-edge-ctl" prune "$KEEP"
echo "release=$KIT_RELEASE"
