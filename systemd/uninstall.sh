#!/bin/sh
# Remove emotion-edge installed by install.sh: stop and disable every camera
# instance, remove the unit and /opt/emotion-edge. Configs, credentials and
# state stay unless --purge (which also removes the emotion-edge user).
#
#   sudo ./uninstall.sh [--purge]
#   ./uninstall.sh --prefix DIR [--purge]        (a --no-systemd install)
set -eu

ROOT=""
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) ROOT=${2:?--prefix needs a value}; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: error: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -z "$ROOT" ] || ROOT=$(cd "$ROOT" && pwd)
BASE="$ROOT/opt/emotion-edge"
CTL="$BASE/bin/emotion-edge-ctl"
MODE=systemd
# shellcheck source=/dev/null
[ -f "$BASE/install.env" ] && . "$BASE/install.env"
[ "$MODE" != systemd ] || [ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: error: run as root" >&2; exit 1; }

if [ -x "$CTL" ]; then
    for cam in $("$CTL" cameras); do
        "$CTL" stop "$cam" || true
        if [ "$MODE" = systemd ]; then systemctl disable --quiet "emotion-edge@$cam.service" || true; fi
    done
fi
if [ "$MODE" = systemd ]; then
    rm -f /etc/systemd/system/emotion-edge@.service
    systemctl daemon-reload || true
fi
rm -rf "$BASE"
# Config links point into the removed release.
for f in "$ROOT"/etc/emotion-edge/*.yaml; do [ -L "$f" ] && rm -f "$f"; done
if [ "$PURGE" -eq 1 ]; then
    rm -rf "$ROOT/etc/emotion-edge" "$ROOT/var/lib/emotion-edge" "$ROOT/var/log/emotion-edge" "$ROOT/run/emotion-edge"
    if [ "$MODE" = systemd ] && getent passwd emotion-edge >/dev/null; then userdel emotion-edge || true; fi
fi
echo "uninstall.sh: removed emotion-edge${ROOT:+ from $ROOT}" >&2
