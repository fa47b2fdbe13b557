#!/usr/bin/env bash
# Build .bench-venv: a separate environment holding the `fer` package, the peer
# that `emotion-edge bench` compares against. It is never a dependency of
# emotion-edge; bench runs it in a subprocess with this environment's python.
#
#   scripts/setup_bench_env.sh     # fer with its default OpenCV Haar cascade detector
#
# Why not a plain `pip install fer`:
# - fer 25.10.3 declares facenet-pytorch, whose 2.6.0 pins torch<2.3 and numpy<2;
#   on PyPI those torch builds are CUDA builds with gigabytes of nvidia wheels.
#   fer's default detector (Haar cascade) does not use it, so we install fer's
#   other dependencies only. (fer's MTCNN option is not offered: facenet-pytorch
#   2.5.3 would take any torch, but the PyPI torchvision wheels it needs do not
#   load next to a CPU-only torch: "operator torchvision::nms does not exist".)
# - fer reads cv2.data.haarcascades; OpenCV 5 wheels no longer ship the cascade
#   files there, so opencv-contrib-python is pinned below 5.
# - fer imports pkg_resources, which setuptools 81 removed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.bench-venv}"
PYTHON="${PYTHON:-python3.11}"
for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Constraints, so no later install in this environment can undo the pins.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
printf '%s\n' "setuptools<81" "opencv-contrib-python<5" "opencv-python<5" > "$CONSTRAINTS"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS")

"${PIP[@]}" --upgrade pip
# fer's own requirements minus facenet-pytorch, with the pins explained above.
"${PIP[@]}" \
  "tensorflow>=2.16,<2.22" \
  "opencv-contrib-python>=4.8,<5" \
  "setuptools<81" \
  pandas requests "tqdm>=4.62.1" "moviepy>=1.0.3,<2" "ffmpeg-python>=0.2.0" Pillow matplotlib
"${PIP[@]}" --no-deps "fer==25.10.3"

# Fail here, not in the benchmark, if the peer cannot start. TensorFlow's start-up
# chatter is shown only when the check fails.
CHECK='
import os
import cv2, fer
from fer.fer import FER
cascade = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
assert os.path.isfile(cascade), f"missing Haar cascade {cascade}"
FER()
print(f"fer {fer.__version__} ready (opencv {cv2.__version__})")
'
if ! out="$(TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore "$VENV/bin/python" -c "$CHECK" 2>&1)"; then
  echo "$out" >&2
  echo "the fer peer does not start in $VENV" >&2
  exit 1
fi
echo "$out" | grep " ready (opencv "
echo "peer environment: $VENV (emotion-edge bench finds it there)"
