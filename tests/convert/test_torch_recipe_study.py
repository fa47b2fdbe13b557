"""scripts/torch_recipe_study.py repeats a few of convert/'s constants (the GPU machine has neither TensorFlow nor
pydantic): they must stay equal to the project's own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("torch_recipe_study", ROOT / "scripts" / "torch_recipe_study.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["torch_recipe_study"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("torch_recipe_study", None)


def test_classes_valence_and_eca_kernels_match_the_project(study):
    from convert.datasets import FER_CLASSES, FER_VALENCE
    from convert.recipes import eca_kernel_size
    from edge.bundle import VALENCES

    assert study.FER_CLASSES == FER_CLASSES
    assert study.VALENCE.tolist() == [VALENCES.index(FER_VALENCE[c]) for c in FER_CLASSES]
    for c in (8, 32, 64, 96, 128, 192, 256):
        assert study.eca_kernel_size(c) == eca_kernel_size(c)


def test_arm_parsing(study):
    arm = study.Arm.parse("swa16:epochs=80,swa=16,swa_lr=3e-4,eca=0")
    assert (arm.name, arm.epochs, arm.swa, arm.swa_lr, arm.eca, arm.total) == ("swa16", 80, 16, 3e-4, False, 96)
    assert study.Arm.parse("cos96:epochs=96") == study.Arm("cos96", epochs=96)
    with pytest.raises(SystemExit, match="unknown setting 'epoch'.*epochs, swa"):
        study.Arm.parse("b:epoch=96")


def test_learning_rate_schedule_matches_the_training_recipe(study):
    """The build's schedule (edgenet, AdamW lr 2e-3, warm-up + cosine, then the SWA rate), step by step."""
    import keras

    from convert.recipes import get_recipe
    from convert.train import _lr_schedule

    spe = 241
    base = study.Arm("a")  # the build script's optimiser settings (test_arm_defaults_are_the_build_scripts_recipe)
    recipe = get_recipe("edgenet", optimizer="adamw", lr=base.lr, weight_decay=base.wd, swa_epochs=16,
                        swa_lr=base.swa_lr)
    arm = study.Arm("a", epochs=recipe.epochs, swa=16, swa_lr=base.swa_lr, lr=base.lr, warmup=recipe.warmup_epochs)
    keras_lr = _lr_schedule(recipe, spe)
    steps = [0, 1, 60, 119, 120, 121, 5000, 12000, 80 * spe - 1, 80 * spe, 96 * spe - 1]
    ours = np.array([study.lr_at(arm, s, spe) for s in steps])
    theirs = np.array([float(keras.ops.convert_to_numpy(keras_lr(s))) for s in steps])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert study.lr_at(arm, 80 * spe, spe) == pytest.approx(3e-4)


def test_arm_defaults_are_the_build_scripts_recipe(study):
    """An arm's optimiser defaults are the build script's (its SWA phase is named per arm: ``swa=16``)."""
    import re

    script = (ROOT / "scripts" / "build_default_model.sh").read_text()
    flag = lambda name: re.search(rf"--{name} (\S+)", script).group(1)
    arm = study.Arm("a")
    assert flag("optimizer") == "adamw" and "--eca" in script and arm.eca
    assert (arm.lr, arm.wd, arm.swa_lr) == (float(flag("lr")), float(flag("weight-decay")), float(flag("swa-lr")))
