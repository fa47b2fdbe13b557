"""Do two bundles differ? Face-by-face (photo-by-photo) comparison on the same held-out data.

Two accuracies a few faces apart say little on their own: the comparison that counts is which faces one model
gets right and the other gets wrong. The exact McNemar test asks whether those discordant faces split more
unevenly than a fair coin would. It answers "do these two *models* differ", not "do these two *recipes*
differ": two seeds of one recipe can differ significantly (docs/training.md, session 12), so a recipe needs
several seeds of each side.

Needs no TensorFlow: only the device runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import comb
from pathlib import Path

import numpy as np

from .heldout import genki_outcomes


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the chance of a split at least this uneven if either side were 50 %."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a} and {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    # Integer arithmetic: exact for any n (floats underflow past n ~ 1,000).
    return min(1.0, 2 * sum(comb(n, j) for j in range(k + 1)) / 2**n)


@dataclass(frozen=True)
class PairedResult:
    """One figure of two bundles on the same items."""

    figure: str
    n: int
    right_a: int
    right_b: int
    only_a: int
    only_b: int

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.only_a, self.only_b)

    def line(self) -> str:
        pa, pb = 100.0 * self.right_a / self.n, 100.0 * self.right_b / self.n
        return (f"{self.figure:<26} A {self.right_a:>5} ({pa:6.2f} %)  B {self.right_b:>5} ({pb:6.2f} %)  of "
                f"{self.n}; right only with A {self.only_a}, only with B {self.only_b}, "
                f"exact McNemar p = {self.p_value:.3f}")


def paired(figure: str, right_a: np.ndarray, right_b: np.ndarray) -> PairedResult:
    """Compare two boolean per-item correctness arrays of the same items."""
    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    if right_a.shape != right_b.shape:
        raise ValueError(f"the two sides cover different items ({right_a.shape} vs {right_b.shape})")
    return PairedResult(figure, int(right_a.size), int(right_a.sum()), int(right_b.sum()),
                        int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum()))


def compare_on_genki(bundle_a: str | Path, bundle_b: str | Path, genki: str | Path,
                     split: str = "test") -> PairedResult:
    """Positive vs not on GENKI photos, full device path (a missed face is an error), photo by photo.

    ``split="test"`` is the held-out split; ``"train"`` the photos training used, which says how hard each
    bundle fits them (set beside the held-out figure, how much of that fit carries over).
    """
    if split not in ("test", "train"):
        raise ValueError(f"GENKI split {split!r}: choose test or train")
    a, b = (np.array(genki_outcomes(x, genki, split=split)) == "right" for x in (bundle_a, bundle_b))
    return paired("GENKI held-out" if split == "test" else "GENKI training split", a, b)


FIGURE_NAMES = {"class": "{k}-class", "valence": "valence (3-class)", "smile": "smile (positive vs not)"}


def compare_on_data(bundle_a: str | Path, bundle_b: str | Path, data: list[str], *, cropped: str = "auto",
                    limit: int | None = None, threads: int = 1,
                    progress: Callable[[int, int], None] | None = None) -> list[PairedResult]:
    """Both bundles on the same labelled samples (``emotion-edge eval``'s sources and rules), figure by figure.

    Each bundle crops the data with its own preprocessing; a photo whose face is missed is wrong. The class
    figure is compared only when both bundles have the same classes.
    """
    from edge.errors import ConfigError

    from .evaluate_bundle import bundle_correctness

    kw = dict(cropped=cropped, limit=limit, threads=threads, progress=progress)
    ids_a, classes_a, right_a = bundle_correctness(bundle_a, data, **kw)  # type: ignore[arg-type]
    ids_b, classes_b, right_b = bundle_correctness(bundle_b, data, **kw)  # type: ignore[arg-type]
    if ids_a != ids_b:  # both read the same sources with the same seeded subset; guard the pairing anyway
        raise ConfigError(f"the two bundles were scored on different samples of {data}; cannot pair them")
    out = []
    for key, fmt in FIGURE_NAMES.items():
        if key in right_a and key in right_b and (key != "class" or classes_a == classes_b):
            out.append(paired(fmt.format(k=len(classes_a)), right_a[key], right_b[key]))
    return out
