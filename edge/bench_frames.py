"""Synthetic benchmark frames: face photos pasted onto a plain 640x480 background.

The photos come from an installed package (scikit-image ships ``astronaut.png``;
the file is read without importing scikit-image) or from a folder the user names.
Nothing here is a dataset image committed to the repo.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from .errors import ConfigError

log = logging.getLogger(__name__)

FRAME_SIZE = (640, 480)  # width, height
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PACKAGED_PHOTO = ("skimage", "data/astronaut.png", "scikit-image")

# A face finder: BGR image -> boxes (x, y, w, h) in pixels, best first.
FaceFinder = Callable[[np.ndarray], Sequence[tuple[float, float, float, float]]]


def packaged_photo() -> Path:
    """``astronaut.png`` from the installed scikit-image wheel (found, not imported)."""
    module, rel, dist = PACKAGED_PHOTO
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if path.is_file():
            return path
    raise ConfigError(
        f"no face photo to build benchmark frames from: install {dist} (`pip install -e .[bench]`), "
        "or pass --faces DIR with photos of faces"
    )


def photo_paths(faces_dir: Path | None, limit: int = 32) -> list[Path]:
    """Photos to take faces from: up to ``limit`` images of ``faces_dir``, else the packaged one."""
    if faces_dir is None:
        return [packaged_photo()]
    if not faces_dir.is_dir():
        raise ConfigError(f"--faces {faces_dir}: not a directory")
    paths = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"--faces {faces_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return paths[:limit]


def face_patches(paths: Sequence[Path], find_faces: FaceFinder, context: float = 1.8) -> list[np.ndarray]:
    """Square BGR patches around the best face of each photo (``context`` x the face box side)."""
    patches = []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("cannot read %s; skipped", path)
            continue
        boxes = find_faces(img)
        if not boxes:
            log.info("no face found in %s; skipped", path)
            continue
        x, y, w, h = boxes[0]
        side = round(max(w, h) * context)
        cx, cy = x + w / 2.0, y + h / 2.0
        x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
        pad = side
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        patches.append(np.ascontiguousarray(padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]))
    if not patches:
        raise ConfigError(
            f"no face found in {len(paths)} photo(s) ({paths[0].parent}); pass --faces DIR with frontal face photos"
        )
    return patches


def background(rng: np.random.Generator, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A smooth colour field with sensor-like noise: no faces, no strong edges."""
    w, h = size
    coarse = rng.integers(80, 180, (4, 5, 3), dtype=np.uint8)
    bg = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    bg += rng.integers(-6, 7, bg.shape, dtype=np.int16)
    return np.clip(bg, 0, 255).astype(np.uint8)


def _layout(n: int, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """Centres and sides of ``n`` non-overlapping face patches in a grid."""
    w, h = size
    cols = int(np.ceil(np.sqrt(n * w / h)))
    rows = int(np.ceil(n / cols))
    cell_w, cell_h = w / cols, h / rows
    side = int(min(cell_w, cell_h, 0.6 * h) * 0.95)
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        in_row = min(cols, n - r * cols)  # centre a short last row
        x_off = (w - in_row * cell_w) / 2.0
        out.append((int(x_off + (c + 0.5) * cell_w), int((r + 0.5) * cell_h), side))
    return out


def _paste(frame: np.ndarray, patch: np.ndarray, cx: int, cy: int, side: int) -> None:
    p = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
    # Feathered ellipse, so the patch border is not a hard rectangle.
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.46), int(side * 0.48)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), side * 0.04)[..., None]
    x0, y0 = cx - side // 2, cy - side // 2
    fh, fw = frame.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(fw, x0 + side), min(fh, y0 + side)
    region = frame[ya:yb, xa:xb].astype(np.float32)
    pm = p[ya - y0 : yb - y0, xa - x0 : xb - x0].astype(np.float32)
    mm = mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
    frame[ya:yb, xa:xb] = (pm * mm + region * (1.0 - mm)).round().astype(np.uint8)


def synth_frames(
    patches: Sequence[np.ndarray],
    faces: int,
    count: int = 16,
    seed: int = 0,
    size: tuple[int, int] = FRAME_SIZE,
    jitter: int = 6,
) -> np.ndarray:
    """``count`` BGR frames ``(count, H, W, 3)`` each holding ``faces`` faces.

    The faces move a few pixels from frame to frame (as people do in front of a
    camera), so the tracker keeps its ids and nothing is cached between frames.
    """
    if faces < 0:
        raise ConfigError("face count must be >= 0")
    rng = np.random.default_rng(seed)
    bg = background(rng, size)
    layout = _layout(faces, size) if faces else []
    frames = np.empty((count, size[1], size[0], 3), np.uint8)
    for i in range(count):
        frame = bg.copy()
        for j, (cx, cy, side) in enumerate(layout):
            dx, dy = rng.integers(-jitter, jitter + 1, 2)
            _paste(frame, patches[(i + j) % len(patches)], int(cx + dx), int(cy + dy), side)
        frames[i] = frame
    return frames
