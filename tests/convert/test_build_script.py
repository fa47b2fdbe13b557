"""scripts/build_default_model.sh trains the shipped model; the README and docs/training.md repeat its training flags
for users who retrain on their own data. They must be flags `emotion-edge train` accepts, and the docs must not drift
from the script."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_ONLY = {"--val-every"}  # bookkeeping of the build (how often val is watched), not part of the recipe


def _training_flags() -> list[str]:
    """The flags of the script's ``stage "$WORK/model.keras" ...`` call plus its ``common`` array, as tokens."""
    script = (ROOT / "scripts" / "build_default_model.sh").read_text()
    common = re.search(r"^common=\((.*?)\)$", script, re.MULTILINE).group(1)
    stage = re.search(r'^stage "\$WORK/model\.keras" (.*?)(?<!\\)\n', script, re.MULTILINE | re.DOTALL).group(1)
    return shlex.split(common.replace('"$DATA/', '"DATA/')) + shlex.split(stage.replace("\\\n", " "))


def _recipe_pairs(tokens: list[str]) -> list[str]:
    """``--flag value`` / ``--flag`` strings of the recipe (no data paths, seed or build-only flags)."""
    out, i = [], 0
    while i < len(tokens):
        flag = tokens[i]
        has_value = i + 1 < len(tokens) and not tokens[i + 1].startswith("--")
        if flag not in BUILD_ONLY | {"--data", "--genki", "--recipe", "--seed"}:
            out.append(f"{flag} {tokens[i + 1]}" if has_value else flag)
        i += 2 if has_value else 1
    return out


def test_the_build_scripts_training_flags_are_train_options() -> None:
    from convert.commands.train import add_arguments

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    args = parser.parse_args([*_training_flags(), "--out", "m.keras"])
    assert args.recipe == "edgenet" and args.eca and args.swa_epochs == 16 and args.val_every == 8


def test_readme_and_training_doc_repeat_the_build_scripts_recipe() -> None:
    pairs = _recipe_pairs(_training_flags())
    assert "--weight-decay 0.2" in pairs and "--eca" in pairs  # the parser found the stage call
    flat = lambda text: " ".join(text.split())  # noqa: E731  (markdown wraps lines anywhere)
    readme = flat((ROOT / "README.md").read_text())
    doc = flat((ROOT / "docs" / "training.md").read_text())
    step1 = re.search(r"1\. `emotion-edge train (.*?)`", doc).group(1)
    assert [p for p in pairs if p not in step1] == [], "docs/training.md step 1 differs from the build script"
    assert "--val-every 8" in step1
    said = re.search(r"To train the shipped recipe.*?\(`(.*?)`\)", readme).group(1)
    assert [p for p in pairs if p not in said] == [], "README's retrain flags differ from the build script"
