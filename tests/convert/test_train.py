"""Training pieces: augmentation, loss, mirror export, splits, weights, and a tiny end-to-end run.

The end-to-end run uses synthetic images written to tmp_path (never dataset images).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import have_tensorflow, interrupt_after_one_epoch, synthetic_fer_folders

pytestmark = pytest.mark.skipif(not have_tensorflow(), reason="TensorFlow ([convert] extra) is not installed")


def test_augment_identity_when_all_strengths_zero():
    import tensorflow as tf

    from convert.augment import AugmentSpec, augment_batch

    spec = AugmentSpec(flip=False, rotation_deg=0, shift=0, zoom=0, brightness=0, contrast=0, noise=0)
    x = np.random.default_rng(0).random((4, 48, 48, 1)).astype(np.float32)
    out = augment_batch(tf.constant(x), spec, seed=tf.constant([0, 0], tf.int64)).numpy()
    np.testing.assert_allclose(out, x, atol=1e-5)


def test_augment_changes_images_and_stays_in_range():
    import tensorflow as tf

    from convert.augment import AugmentSpec, augment_batch

    x = np.random.default_rng(0).random((16, 48, 48, 1)).astype(np.float32)
    out = augment_batch(tf.constant(x), AugmentSpec(erase=1.0), seed=tf.constant([0, 0], tf.int64)).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - x).mean(axis=(1, 2, 3)).min() > 0.01  # every image was changed


def test_random_erasing_replaces_one_rectangle_of_the_drawn_size_in_about_p_of_the_images():
    import tensorflow as tf

    from convert.augment import AugmentSpec, augment_batch

    spec = AugmentSpec(flip=False, rotation_deg=0, shift=0, zoom=0, brightness=0, contrast=0, noise=0, erase=0.5)
    x = np.ones((200, 48, 48, 1), np.float32)  # erased pixels are uniform in [0, 1): never exactly 1
    out = augment_batch(tf.constant(x), spec, seed=tf.constant([3, 4], tf.int64)).numpy()[..., 0]
    changed = out < 1.0
    erased = changed.any(axis=(1, 2))
    assert 70 < erased.sum() < 130  # p = 0.5 of 200
    for m in changed[erased]:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        box = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert box.all()  # one filled axis-aligned rectangle, nothing outside it
        assert 0.015 <= m.mean() <= 0.26  # 2-25 % of the area (pixel rounding)


def test_augment_flip_only_mirrors():
    import tensorflow as tf

    from convert.augment import AugmentSpec, augment_batch

    spec = AugmentSpec(flip=True, rotation_deg=0, shift=0, zoom=0, brightness=0, contrast=0, noise=0)
    x = np.random.default_rng(1).random((64, 48, 48, 1)).astype(np.float32)
    out = augment_batch(tf.constant(x), spec, seed=tf.constant([0, 1], tf.int64)).numpy()
    same = np.all(np.isclose(out, x, atol=1e-5), axis=(1, 2, 3))
    mirrored = np.all(np.isclose(out, x[:, :, ::-1], atol=1e-5), axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 10 < mirrored.sum() < 54


def test_keyed_augmentation_depends_on_its_key_only():
    import tensorflow as tf

    from convert.augment import AugmentSpec, augment_batch

    spec = AugmentSpec(erase=0.5)
    x = tf.constant(np.random.default_rng(0).random((8, 48, 48, 1)).astype(np.float32))
    key = tf.constant([5, 1], tf.int64)
    tf.random.set_seed(1)
    a = augment_batch(x, spec, seed=key).numpy()
    tf.random.set_seed(2)  # the global RNG plays no part
    np.testing.assert_array_equal(augment_batch(x, spec, seed=key).numpy(), a)
    other = augment_batch(x, spec, seed=tf.constant([5, 2], tf.int64)).numpy()
    assert np.abs(other - a).mean(axis=(1, 2, 3)).min() > 0.01  # every image augmented differently


def test_partial_label_loss_is_cross_entropy_for_one_hot_and_set_likelihood_otherwise():
    from convert.train import partial_label_loss

    logits = np.array([[2.0, 0.5, -1.0, 0.0, 1.0, 0.3, -0.2]], np.float32)
    p = np.exp(logits) / np.exp(logits).sum()
    one_hot = np.eye(7, dtype=np.float32)[[3]]
    loss0 = partial_label_loss(0.0)
    np.testing.assert_allclose(np.asarray(loss0(one_hot, logits)), [-np.log(p[0, 3])], rtol=1e-5)
    not_happy = 1.0 - one_hot
    np.testing.assert_allclose(np.asarray(loss0(not_happy, logits)), [-np.log(1 - p[0, 3])], rtol=1e-5)
    eps = 0.1
    want = -(1 - eps) * np.log(p[0, 3]) - eps * np.mean(np.log(p[0]))
    np.testing.assert_allclose(np.asarray(partial_label_loss(eps)(one_hot, logits)), [want], rtol=1e-5)


def test_distillation_loss_mixes_label_loss_and_tempered_kl():
    from convert.train import distillation_loss, partial_label_loss

    rng = np.random.default_rng(0)
    s, t = rng.normal(0, 2, (4, 7)).astype(np.float32), rng.normal(0, 2, (4, 7)).astype(np.float32)
    mask = np.eye(7, dtype=np.float32)[[0, 3, 3, 6]]
    both = np.concatenate([s, t], 1)
    labels = np.asarray(partial_label_loss(0.1)(mask, s))
    np.testing.assert_allclose(np.asarray(distillation_loss(0.1, 7, 0.0, 2.0)(mask, both)), labels, rtol=1e-5)
    T = 2.0
    log_softmax = lambda z: z - np.log(np.exp(z).sum(1, keepdims=True))
    kl = (np.exp(log_softmax(t / T)) * (log_softmax(t / T) - log_softmax(s / T))).sum(1)
    got = np.asarray(distillation_loss(0.1, 7, 0.25, T)(mask, both))
    np.testing.assert_allclose(got, 0.75 * labels + 0.25 * T**2 * kl, rtol=1e-5)
    # A student that matches its teacher pays only the label term.
    same = np.asarray(distillation_loss(0.1, 7, 0.5, T)(mask, np.concatenate([s, s], 1)))
    np.testing.assert_allclose(same, 0.5 * labels, rtol=1e-5)


def test_mirror_layer_flips_exactly():
    from convert.recipes import mirror_layer

    x = np.random.default_rng(2).random((3, 48, 48, 1)).astype(np.float32)
    out = np.asarray(mirror_layer(48)(x))
    np.testing.assert_allclose(out, x[:, :, ::-1], atol=1e-6)


def test_zoom_layer_is_the_cv2_centred_zoom_and_tta_views_agree():
    """The export's zoom view is OpenCV's bilinear centred zoom-in (no border pixels invented); the numpy views
    that training's val figures use are the same images."""
    import cv2

    from convert.recipes import tta_views, zoom_layer, zoom_matrix

    x = np.random.default_rng(3).random((2, 48, 48, 1)).astype(np.float32)
    out = np.asarray(zoom_layer(48, 1.1)(x))
    m = cv2.getRotationMatrix2D((23.5, 23.5), 0, 1.1)
    for i in range(2):
        want = cv2.warpAffine(x[i, ..., 0], m, (48, 48), flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(out[i, ..., 0], want, atol=2e-3)  # cv2 interpolates in fixed point
    np.testing.assert_allclose(tta_views(x, True, 1.1)[2], out, atol=1e-5)
    np.testing.assert_allclose(zoom_matrix(48, 1.0), np.eye(48), atol=1e-6)
    assert np.allclose(zoom_matrix(48, 1.1).sum(1), 1.0)  # every output pixel is a convex mix
    assert len(tta_views(x, False, 0.0)) == 1 and len(tta_views(x, True, 0.0)) == 2


def test_tta_zoom_rejects_a_zoom_out():
    from convert.recipes import get_recipe
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="zoom-in"):
        get_recipe("edgenet", tta_zoom=0.9)
    assert get_recipe("edgenet", tta_zoom=0.0).tta_zoom == 0.0


def test_genki_split_is_fixed_and_order_independent():
    from convert.datasets import genki_split

    files = [f"file{i:04d}.jpg" for i in range(1, 4001)]
    a = genki_split(files)
    b = genki_split(files[::-1])[::-1]
    assert np.array_equal(a, b)
    assert 0.27 < a.mean() < 0.33
    held = {f for f, t in zip(files, a) if t}
    assert held == {f for f, t in zip(files[:2000], genki_split(files[:2000])) if t} | {
        f for f, t in zip(files[2000:], genki_split(files[2000:])) if t}


def test_class_weights_balanced_upweights_rare_classes_with_mean_one():
    from convert.train import class_weights

    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, "balanced", 2)
    assert w[1] > w[0]
    assert np.isclose(w[y].mean(), 1.0)
    assert np.allclose(class_weights(y, "none", 2), 1.0)


def test_epoch_dataset_is_a_seeded_permutation_without_autotuning():
    from convert.recipes import get_recipe
    from convert.train import epoch_dataset

    r = get_recipe("edgenet", batch_size=4)
    x = np.repeat(np.arange(10, dtype=np.uint8)[:, None, None], 48, 1).repeat(48, 2)
    mask = np.eye(10, dtype=np.float32)
    w = np.arange(10, dtype=np.float32)

    def epoch_order(epoch: int) -> list[int]:
        ds = epoch_dataset(x, mask, w, r, 7, epoch)
        return [int(v) for _, m, _ in ds.as_numpy_iterator() for v in m.argmax(1)]

    ds = epoch_dataset(x, mask, w, r, 7, 0)
    # Autotuning makes deleting each epoch's iterator block for seconds (bench_training_epoch.py).
    assert ds.options().autotune.enabled is False
    assert epoch_dataset(x, mask, w, r, 7, 0, autotune=True).options().autotune.enabled is not False
    batches = list(ds.as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[0][0].dtype == np.float32 and batches[0][0].shape[1:] == (48, 48, 1)
    order = epoch_order(0)
    assert sorted(order) == list(range(10))
    assert order == epoch_order(0) and order != epoch_order(1)
    # Masks and weights travel with their image through the permutation.
    assert all(np.array_equal(b[2], b[1].argmax(1).astype(np.float32)) for b in batches)
    # The augmented pixels repeat exactly, though two map calls run in parallel: a rebuild is bit-for-bit.
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, epoch_dataset(x, mask, w, r, 7, 0)
                                                          .as_numpy_iterator()))


def test_train_end_to_end_resume_and_export(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    data = synthetic_fer_folders(tmp_path / "data")
    recipe = get_recipe("edgenet", epochs=2, batch_size=16, width=0.25, warmup_epochs=0.5, tta_zoom=1.1)
    cfg = TrainConfig(data=data, out=tmp_path / "m.keras", recipe=recipe, preprocess=PreprocessSpec(),
                      seed=3, precision="float32")

    interrupt_after_one_epoch(train, cfg)
    state = json.loads((cfg.work / "state.json").read_text())
    assert len(state["history"]) == 1 and (cfg.work / "best.keras").is_file()
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg)
    seen = []
    cfg.resume, cfg.seed = True, 4
    with monkeypatch.context() as m:  # refused before any data is loaded
        m.setattr("convert.train.load_training_data", lambda cfg: pytest.fail("data loaded before the check"))
        with pytest.raises(ConfigError, match="seed: saved 3, now 4"):
            train(cfg)
    cfg.seed = 3
    record = train(cfg, seen.append)
    assert [e.epoch for e in seen] == [2]
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["seed"] == 3 and record["data"]["train_images"] == 42
    saved = json.loads(cfg.out.with_suffix(".json").read_text())
    assert saved["recipe"]["epochs"] == 2

    import keras

    m = keras.saving.load_model(cfg.out, compile=False)  # no custom objects needed
    x = np.random.default_rng(0).random((5, 48, 48, 1)).astype(np.float32)
    p = np.asarray(m(x))
    assert p.shape == (5, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    # The recipe's test-time views are baked in: the mean softmax over the image, its mirror and its zoom-in
    # (edgenet's default is the first two; this run adds the third).
    from convert.recipes import tta_views

    assert recipe.flip_tta and recipe.tta_zoom == 1.1
    logits = keras.saving.load_model(cfg.work / "best.keras", compile=False)
    soft = lambda v: np.asarray(keras.ops.softmax(logits(v)))  # noqa: E731
    views = tta_views(x, True, 1.1)
    assert len(views) == 3
    np.testing.assert_allclose(p, np.mean([soft(v) for v in views], 0), atol=1e-5)


def _exported_matches(out: Path, checkpoint: Path, tta_zoom: float = 0.0) -> bool:
    """The exported (softmax, TTA views) model at ``out`` carries the weights of training checkpoint ``checkpoint``."""
    import keras

    from convert.recipes import export_model

    x = np.random.default_rng(1).random((4, 48, 48, 1)).astype(np.float32)
    want = np.asarray(export_model(keras.saving.load_model(checkpoint, compile=False), True, tta_zoom)(x))
    return np.allclose(np.asarray(keras.saving.load_model(out, compile=False)(x)), want, atol=1e-5)


def test_training_leaves_the_dtype_policy_as_it_found_it_even_when_interrupted(tmp_path, monkeypatch):
    """``train`` sets a process-wide bfloat16 policy; later models in the process (a conversion, another test) must
    get float32 back, also after a run broken off mid-way (the converter cannot translate bfloat16 transposes)."""
    import keras

    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.preprocess import PreprocessSpec

    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    recipe = get_recipe("edgenet", epochs=2, batch_size=16, width=0.25, warmup_epochs=0.5)
    cfg = TrainConfig(data=synthetic_fer_folders(tmp_path / "data"), out=tmp_path / "m.keras", recipe=recipe,
                      preprocess=PreprocessSpec(), seed=3, precision="mixed_bfloat16")
    keras.mixed_precision.set_global_policy("float32")
    interrupt_after_one_epoch(train, cfg)
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("with_val", [True, False])
def test_export_epoch_last_and_training_without_val(tmp_path, monkeypatch, with_val):
    """``export_epoch="last"`` ships the last epoch whatever val says; without a val folder the default
    (best) also ships the last epoch, not the first (NaN scores never beat the first epoch before)."""
    import shutil

    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.preprocess import PreprocessSpec

    data = synthetic_fer_folders(tmp_path / "data")
    if not with_val:
        shutil.rmtree(data / "val")
    recipe = get_recipe("edgenet", epochs=3, batch_size=16, width=0.25, warmup_epochs=0.5)
    rule = "last" if with_val else "best"
    cfg = TrainConfig(data=data, out=tmp_path / "m.keras", recipe=recipe, preprocess=PreprocessSpec(),
                      seed=3, precision="float32", export_epoch=rule)
    record = train(cfg)
    assert record["exported"] == {"epoch": 3, "rule": rule}
    assert json.loads(cfg.out.with_suffix(".json").read_text())["exported"]["epoch"] == 3
    assert _exported_matches(cfg.out, cfg.work / "last.keras")
    if not with_val:
        assert record["best"]["epoch"] == 3


def test_val_every_thins_the_val_watch_without_touching_training(tmp_path, monkeypatch, capsys):
    """``--val-every 2``: val is scored after epochs 2 and 3 (the last) only, the unscored epoch 1 is never the best,
    and the weights are bit-for-bit those of a run that scored every epoch (the build relies on this)."""
    import argparse
    import math

    import keras

    import convert.train
    from convert.commands.train import add_arguments, run
    from convert.recipes import get_recipe
    from convert.train import EpochResult, TrainConfig, train, val_watched
    from edge.preprocess import PreprocessSpec

    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    assert [e for e in range(1, 97) if val_watched(e, 8, 80, 96)] == [*range(8, 81, 8), 88, 96]
    assert [e for e in range(1, 11) if val_watched(e, 4, 6, 10)] == [4, 6, 8, 10]
    data = synthetic_fer_folders(tmp_path / "data")
    recipe = get_recipe("edgenet", epochs=3, batch_size=16, width=0.25, warmup_epochs=0.5)
    weights, histories = {}, {}
    for every in (1, 2):
        cfg = TrainConfig(data=data, out=tmp_path / f"every{every}.keras", recipe=recipe, preprocess=PreprocessSpec(),
                          seed=3, precision="float32", val_every=every)
        record = train(cfg)
        histories[every] = record["history"]
        assert json.loads((cfg.work / "state.json").read_text())["val_every"] == every
        weights[every] = keras.saving.load_model(cfg.work / "last.keras", compile=False).get_weights()
    assert [not math.isnan(h["val_acc"]) for h in histories[2]] == [False, True, True]
    assert not histories[2][0]["best"] and any(h["best"] for h in histories[2])
    for a, b in zip(histories[1][1:], histories[2][1:]):
        assert (a["loss"], a["val_acc"], a["val_valence_acc"]) == (b["loss"], b["val_acc"], b["val_valence_acc"])
    assert all(np.array_equal(a, b) for a, b in zip(weights[1], weights[2]))

    # The CLI passes the flag on and prints an unscored epoch as "val -".
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(data), "--out", str(tmp_path / "m.keras"), "--val-every", "4"])
    seen = []

    def fake_train(cfg, progress):
        seen.append(cfg.val_every)
        progress(EpochResult(1, 80, 50.0, 1.5, 0.4, math.nan, math.nan, 1e-3, False))
        progress(EpochResult(4, 80, 50.0, 1.2, 0.5, 0.55, 0.7, 1e-3, True))
        return {"best": None}

    monkeypatch.setattr(convert.train, "train", fake_train)
    assert run(args) == 0 and seen == [4]
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert "val -" in lines[0] and "nan" not in lines[0]
    assert "val 0.5500  valence 0.7000" in lines[1] and lines[1].endswith(" *")


def test_val_every_must_be_positive(tmp_path):
    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    cfg = TrainConfig(data=tmp_path, out=tmp_path / "m.keras", recipe=get_recipe("edgenet"),
                      preprocess=PreprocessSpec(), val_every=0)
    with pytest.raises(ConfigError, match="--val-every 0"):
        train(cfg)


def test_distilled_pruned_run_leaves_the_teacher_alone_and_resumes(tmp_path, monkeypatch):
    """Fine-tune a pruned copy with its unpruned parent as teacher: the record names the teacher,
    the student checkpoints are plain models, resume works and keeps the teacher."""
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    import keras

    from convert.recipes import build_model, get_recipe
    from convert.train import Distillation, TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    data = synthetic_fer_folders(tmp_path / "data")
    parent = build_model(get_recipe("edgenet", width=0.25), 7)
    parent.save(tmp_path / "teacher.keras")
    recipe = get_recipe("edgenet", epochs=2, batch_size=16, width=0.25, warmup_epochs=0.5,
                        mid_channels=(16, 32, 32, 24))
    cfg = TrainConfig(data=data, out=tmp_path / "s.keras", recipe=recipe, preprocess=PreprocessSpec(), seed=3,
                      precision="float32", init_from=tmp_path / "teacher.keras",
                      distill=Distillation(tmp_path / "teacher.keras", alpha=0.5, temperature=2.0))

    interrupt_after_one_epoch(train, cfg)
    cfg.resume = True
    with pytest.raises(ConfigError, match="teacher"):  # resuming must not swap the teacher
        train(TrainConfig(**{**cfg.__dict__, "distill": Distillation(tmp_path / "teacher.keras", alpha=0.9)}))
    record = train(cfg)
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert all(0.0 <= h["train_acc"] <= 1.0 for h in record["history"])
    assert record["distill"] == {"teacher": str(tmp_path / "teacher.keras"), "alpha": 0.5, "temperature": 2.0}
    student = keras.saving.load_model(cfg.work / "last.keras", compile=False)
    assert student.count_params() < parent.count_params() and student.output_shape == (None, 7)
    with pytest.raises(ConfigError, match="outputs probabilities"):  # the export model is not a teacher
        train(TrainConfig(data=data, out=tmp_path / "x.keras", recipe=recipe, preprocess=PreprocessSpec(),
                          precision="float32", distill=Distillation(cfg.out)))
    with pytest.raises(ConfigError, match="alpha"):
        Distillation(cfg.out, alpha=1.5)


def test_teacher_stays_frozen_in_inference_mode_while_the_student_trains():
    import keras

    from convert.recipes import build_model, get_recipe
    from convert.train import _student_accuracy, _with_teacher, distillation_loss

    student = build_model(get_recipe("edgenet", width=0.25, mid_channels=(16, 32, 32, 24)), 7)
    teacher = build_model(get_recipe("edgenet", width=0.25), 7)
    s0, t0 = [w.copy() for w in student.get_weights()], [w.copy() for w in teacher.get_weights()]
    fitter = _with_teacher(student, teacher)
    assert len(fitter.trainable_variables) == len(student.trainable_variables)
    fitter.compile(optimizer=keras.optimizers.Adam(1e-2), loss=distillation_loss(0.1, 7, 0.5, 2.0),
                   metrics=[_student_accuracy(7)])
    rng = np.random.default_rng(0)
    x = rng.random((16, 48, 48, 1)).astype(np.float32)
    h = fitter.fit(x, np.eye(7, dtype=np.float32)[rng.integers(0, 7, 16)], epochs=2, batch_size=8, verbose=0)
    assert "_set_accuracy" in h.history
    # Weights, and BatchNorm moving statistics, of the teacher are untouched; the student's moved.
    assert all(np.array_equal(a, b) for a, b in zip(t0, teacher.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(s0, student.get_weights()))
    # In a training step the teacher answers as at inference (no dropout, moving statistics).
    both = np.asarray(fitter(x, training=True))
    np.testing.assert_allclose(both[:, 7:], np.asarray(teacher(x, training=False)), atol=1e-4)


def test_dropout_rates_come_from_the_recipe_and_the_cli(monkeypatch, tmp_path):
    """edgenet's SpatialDropout2D rates are the recipe's (half at 12 px, all at 6 px); 0 removes the layers;
    ``train --dropout / --spatial-dropout`` override them."""
    import argparse

    import convert.train
    from convert.commands.train import add_arguments, run
    from convert.recipes import build_model, get_recipe

    def rates(recipe):
        return [(layer.__class__.__name__, round(layer.rate, 4)) for layer in build_model(recipe, 7).layers
                if "Dropout" in layer.__class__.__name__]

    assert rates(get_recipe("edgenet", dropout=0.3, spatial_dropout=0.1)) == [
        ("SpatialDropout2D", 0.05), ("SpatialDropout2D", 0.05), ("SpatialDropout2D", 0.1), ("Dropout", 0.3)]
    assert rates(get_recipe("edgenet", dropout=0.2, spatial_dropout=0.0)) == [("Dropout", 0.2)]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.keras"),
                              "--dropout", "0.2", "--spatial-dropout", "0", "--tta-zoom", "0",
                              "--genki-weight", "3", "--eca", "--erase", "0.5"])
    seen = []
    monkeypatch.setattr(convert.train, "train", lambda cfg, progress: seen.append(cfg.recipe) or {"best": None})
    assert run(args) == 0
    assert (seen[0].dropout, seen[0].spatial_dropout, seen[0].tta_zoom, seen[0].genki_weight) == (0.2, 0.0, 0.0, 3.0)
    assert seen[0].eca
    # --erase changes only the erasing probability of the recipe's augmentation.
    assert seen[0].augment == get_recipe("edgenet").augment.model_copy(update={"erase": 0.5})


def test_structured_pruning_of_dead_channels_is_exact():
    """Inner channels whose BN scale and shift are zero output nothing: pruning them keeps the outputs."""
    from convert.recipes import build_model, get_recipe, transfer_pruned

    src = build_model(get_recipe("edgenet", width=0.25), 7)  # inner widths 16, 32, 32, 48
    w = src.get_weights()
    rng = np.random.default_rng(0)
    w = [a + rng.normal(0, 0.1, a.shape).astype(a.dtype) if a.ndim == 1 and a.shape[0] != 48 else a for a in w]
    i = next(k for k, a in enumerate(w) if a.ndim == 1 and a.shape[0] == 48)  # last block's BN gamma, then beta
    w[i] = rng.uniform(0.5, 1.5, 48).astype(np.float32)
    w[i][::2] = 0.0
    w[i + 1] = rng.normal(0, 0.1, 48).astype(np.float32)
    w[i + 1][::2] = 0.0
    src.set_weights(w)
    dst = build_model(get_recipe("edgenet", width=0.25, mid_channels=(16, 32, 32, 24)), 7)
    kept = transfer_pruned(src, dst)
    assert kept["48->24"] == list(range(1, 48, 2))
    assert dst.count_params() < src.count_params()
    x = rng.random((4, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(dst(x, training=False)), np.asarray(src(x, training=False)), atol=1e-4)


def test_valence3_head_bins_fer_labels_and_maps_smiles_to_positive():
    from convert.datasets import FER_CLASSES, FaceSet
    from convert.recipes import get_recipe
    from convert.train import _targets, head_classes, head_valence, valence_accuracy

    y = np.arange(7)
    fer = FaceSet(np.zeros((7, 48, 48), np.uint8), y, [f"{c}.jpg" for c in FER_CLASSES])
    genki = np.zeros((2, 48, 48), np.uint8)
    _, mask, w = _targets(fer, genki, np.array([1, 0]), get_recipe("edgenet", head="valence3"))
    assert head_classes("valence3") == ("positive", "neutral", "negative")
    assert mask.shape == (9, 3) and np.allclose(w, [1] * 7 + [2, 2])
    want = {"angry": 2, "disgust": 2, "fear": 2, "happy": 0, "sad": 2, "surprise": 1, "neutral": 1}
    assert [int(m.argmax()) for m in mask[:7]] == [want[c] for c in FER_CLASSES]
    np.testing.assert_array_equal(mask[7:], [[1, 0, 0], [0, 1, 1]])  # smile / not: a set of valences
    assert head_valence("valence3") == {"positive": "positive", "neutral": "neutral", "negative": "negative"}
    # Valence accuracy takes 3-class probabilities as they are and sums 7-class ones.
    p3 = np.eye(3)[[want[c] for c in FER_CLASSES]]
    assert valence_accuracy(p3, y) == 1.0
    assert valence_accuracy(np.eye(7), y) == 1.0


def test_train_valence3_head_exports_three_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.preprocess import PreprocessSpec

    data = synthetic_fer_folders(tmp_path / "data")
    recipe = get_recipe("edgenet", head="valence3", epochs=1, batch_size=16, width=0.25, warmup_epochs=0.5)
    cfg = TrainConfig(data=data, out=tmp_path / "v.keras", recipe=recipe, preprocess=PreprocessSpec(),
                      seed=3, precision="float32")
    record = train(cfg)
    assert record["classes"] == ["positive", "neutral", "negative"]
    assert record["best"]["epoch"] == 1 and np.isnan(record["best"]["val_acc"])
    assert 0.0 <= record["best"]["val_valence_acc"] <= 1.0

    import keras

    m = keras.saving.load_model(cfg.out, compile=False)
    p = np.asarray(m(np.random.default_rng(0).random((2, 48, 48, 1)).astype(np.float32)))
    assert p.shape == (2, 3)


def test_train_cli_rejects_bad_distillation_input_with_clear_errors(tmp_path, capsys):
    from edge.cli import main

    data = synthetic_fer_folders(tmp_path / "data")
    base = ["train", "--data", str(data), "--out", str(tmp_path / "m.keras"), "--max-train", "8"]
    assert main(base + ["--distill-alpha", "0.3"]) != 0
    assert "need --distill-from" in capsys.readouterr().err
    assert main(base + ["--distill-from", str(tmp_path / "nope.keras")]) != 0
    err = capsys.readouterr().err
    assert "teacher" in err and "not found" in err
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not a zip")
    assert main(base + ["--distill-from", str(tmp_path / "broken.keras")]) != 0
    assert "cannot load teacher" in capsys.readouterr().err
    assert not (tmp_path / "m.keras").exists()


def test_train_cli_names_out_of_range_recipe_options_in_one_error(tmp_path, capsys):
    from edge.cli import main

    base = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.keras")]
    assert main(base + ["--erase", "1.5", "--dropout", "1.2"]) != 0
    err = capsys.readouterr().err
    assert "augment.erase = 1.5" in err and "dropout = 1.2" in err and "Traceback" not in err
    assert not (tmp_path / "m.keras").exists()


def test_resume_ignores_export_only_recipe_fields():
    """A run started before a change of the export views (or the description) still resumes: those fields do not
    change training. Any training field still blocks it."""
    from convert.recipes import get_recipe
    from convert.train import _training_part

    old = get_recipe("edgenet", tta_zoom=1.1).model_dump(mode="json")
    old["description"] = "an older description"
    new = get_recipe("edgenet").model_dump(mode="json")
    assert _training_part(old) == _training_part(new)
    assert _training_part(get_recipe("edgenet", dropout=0.1).model_dump(mode="json")) != _training_part(new)
    del old["stem_convs"]  # a field added after the run started, at its default
    assert _training_part(old) == _training_part(new)
    assert _training_part(get_recipe("edgenet", stem_convs=2).model_dump(mode="json")) != _training_part(new)
    unknown = {**new, "a_field_removed_since": 1}  # no pydantic traceback: it just differs, and resume says so
    assert _training_part(unknown) != _training_part(new)


def test_align_reaches_the_photo_crops_and_a_run_resumes_only_with_the_same_crops(monkeypatch, tmp_path):
    """``train --align`` crops GENKI photos level at the eyes; GENKI crops made another way are other training
    data, so ``--resume`` refuses a change of crop geometry and names it. A saved spec lacking a field added since
    compares at that field's default."""
    import argparse

    import convert.train
    from convert.commands.train import add_arguments, run
    from convert.train import resume_differences
    from edge.preprocess import PreprocessSpec

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    seen = []
    monkeypatch.setattr(convert.train, "train", lambda cfg, progress: seen.append(cfg.preprocess) or {"best": None})
    for extra in ([], ["--align"]):
        assert run(parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.keras"), *extra])) == 0
    assert [s.align for s in seen] == [False, True]
    assert (seen[1].margin, seen[1].shift_y) == (0.15, -0.1)

    plain, aligned = (s.model_dump(mode="json") for s in seen)
    base = {"recipe": None, "seed": 1, "distill": None}
    assert resume_differences({**base, "preprocess": plain}, {**base, "preprocess": aligned}) == [
        "preprocess.align: saved False, now True"]
    older = {k: v for k, v in plain.items() if k != "align"}  # saved before the field existed
    assert resume_differences({**base, "preprocess": older}, {**base, "preprocess": plain}) == []
    assert resume_differences({**base}, {**base, "preprocess": aligned}) == []  # saved without a spec
    assert PreprocessSpec.model_validate(older) == PreprocessSpec.model_validate(plain)


def test_stem_convs_add_full_resolution_convolutions():
    from convert.recipes import build_model, get_recipe

    def convs_at_48(n):
        m = build_model(get_recipe("edgenet", stem_convs=n, width=0.25), 7)
        return sum(1 for layer in m.layers if layer.__class__.__name__ == "Conv2D" and layer.output.shape[1] == 48)

    assert (convs_at_48(1), convs_at_48(2)) == (1, 2)


def test_eca_gates_are_a_1d_convolution_across_the_channel_means():
    """``--eca`` (ECA-Net): each residual branch is scaled per channel by sigmoid(conv1d over the channel axis of
    its spatial mean, zero-padded, the paper's kernel size). Checked against numpy, so the transposes that make the
    conv a one-filter CONV_2D slide it along the channels and nowhere else."""
    import keras

    from convert.recipes import _channel_attention, build_model, eca_kernel_size, get_recipe

    assert [eca_kernel_size(c) for c in (32, 64, 128, 192, 256, 1024)] == [3, 3, 5, 5, 5, 5]
    inp = keras.Input((6, 5, 12))
    m = keras.Model(inp, _channel_attention(inp))
    (w,) = [v for v in m.get_weights() if v.size == 3]
    w[...] = np.random.default_rng(0).normal(0, 1, w.shape)
    m.set_weights([w])
    x = np.random.default_rng(1).normal(0, 1, (2, 6, 5, 12)).astype(np.float32)
    k = w.ravel()
    mean = np.pad(x.mean(axis=(1, 2)), ((0, 0), (1, 1)))
    gate = 1 / (1 + np.exp(-sum(k[j] * mean[:, j:j + 12] for j in range(3))))
    np.testing.assert_allclose(m.predict(x, verbose=0), x * gate[:, None, None, :], rtol=1e-5, atol=1e-6)

    def gated(recipe):
        return sum(1 for layer in build_model(recipe, 7).layers if layer.__class__.__name__ == "Multiply")

    plain, eca = get_recipe("edgenet", width=0.25), get_recipe("edgenet", width=0.25, eca=True)
    assert (gated(plain), gated(eca)) == (0, 4)
    widths = (16, 32, 32, 48)  # edgenet's blocks at width 0.25: one kernel per block, nothing else
    assert build_model(eca, 7).count_params() - build_model(plain, 7).count_params() == sum(map(eca_kernel_size, widths))
    # Structured pruning narrows inner widths only; the gates act on block outputs and are copied as they are.
    from convert.recipes import transfer_pruned

    full = build_model(get_recipe("edgenet", width=0.5, eca=True), 7)
    narrow = build_model(get_recipe("edgenet", width=0.5, eca=True, mid_channels=(32, 64, 48, 64)), 7)
    assert sorted(transfer_pruned(full, narrow)) == ["64->48", "96->64"]
    def kernels(m):  # (1, k, 1, 1): one filter sliding along the channels
        return [w for w in m.get_weights() if w.ndim == 4 and w.shape[0] == 1 and w.shape[2:] == (1, 1)]

    gates = [kernels(full), kernels(narrow)]
    assert len(gates[0]) == 4 and all(np.array_equal(a, b) for a, b in zip(*gates))


def test_eca_model_converts_to_int8_and_runs_on_the_device_runtime():
    from convert.quantize import load_test, to_tflite
    from convert.recipes import build_model, export_model, get_recipe

    model = build_model(get_recipe("edgenet", width=0.25, eca=True), 7)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # nonzero BatchNorm scales, so no branch folds away
        if layer.__class__.__name__ == "BatchNormalization":
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
    data = to_tflite(export_model(model), "int8", representative=rng.random((16, 48, 48, 1), dtype=np.float32))
    lt = load_test(data, (48, 48, 1))
    assert lt.ok, lt.error


def test_optimizer_comes_from_the_recipe_and_the_cli(monkeypatch, tmp_path):
    """``--optimizer sgd`` trains with Nesterov SGD; both optimizers decay a weight by lr * weight_decay per step
    (checked on a real step with a zero gradient); edgenet defaults to SGD (lr 0.1, weight decay 5e-4), and a run
    recorded before the field existed resumes as the AdamW run it was."""
    import argparse

    import keras
    import numpy as np

    import convert.train
    from convert.commands.train import add_arguments, run
    from convert.recipes import get_recipe
    from convert.train import _training_part, make_optimizer, resume_differences

    for name, cls in (("adamw", keras.optimizers.AdamW), ("sgd", keras.optimizers.SGD)):
        recipe = get_recipe("edgenet", optimizer=name, weight_decay=0.01, lr=0.1, warmup_epochs=0)
        opt = make_optimizer(recipe, steps_per_epoch=10)
        assert type(opt) is cls
        if name == "sgd":
            assert opt.nesterov and opt.momentum == 0.9
        w = keras.Variable(np.ones(3, np.float32))
        opt.apply_gradients([(keras.ops.zeros(3), w)])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), 1 - 0.1 * 0.01, rtol=1e-6)

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.keras"),
                              "--optimizer", "sgd", "--lr", "0.05", "--weight-decay", "5e-4"])
    seen = []
    monkeypatch.setattr(convert.train, "train", lambda cfg, progress: seen.append(cfg.recipe) or {"best": None})
    assert run(args) == 0
    assert (seen[0].optimizer, seen[0].lr, seen[0].weight_decay) == ("sgd", 0.05, 5e-4)
    default = get_recipe("edgenet")
    assert (default.optimizer, default.lr, default.weight_decay) == ("sgd", 0.1, 5e-4)
    default_json = default.model_dump(mode="json")
    adamw = get_recipe("edgenet", optimizer="adamw", lr=2e-3, weight_decay=0.02).model_dump(mode="json")
    older = {k: v for k, v in adamw.items() if k != "optimizer"}
    assert _training_part(older) == _training_part(adamw)
    assert _training_part(older) != _training_part(default_json)
    # Resuming such a run without naming its optimizer says which settings to pass.
    assert resume_differences({"recipe": older, "seed": 1}, {"recipe": default_json, "seed": 1}) == [
        "recipe.lr: saved 0.002, now 0.1", "recipe.optimizer: saved 'adamw', now 'sgd'",
        "recipe.weight_decay: saved 0.02, now 0.0005"]
    assert _training_part(seen[0].model_dump(mode="json")) != _training_part(default_json)


def test_peer_loss_is_the_label_loss_when_heads_agree_and_pulls_heads_to_their_mean():
    """With identical heads the ensemble is each head, so the KL term is zero and the loss is the label loss; with
    different heads the KL term is positive, and no gradient flows through the ensemble (the teacher)."""
    import keras
    import tensorflow as tf

    from convert.train import partial_label_loss, peer_loss

    rng = np.random.default_rng(0)
    mask = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 5)]
    z = rng.normal(size=(5, 7)).astype(np.float32)
    labels = np.asarray(partial_label_loss(0.1)(mask, z))
    same = np.asarray(peer_loss(0.1, 7, 3, 0.5, 3.0)(mask, np.concatenate([z, z, z], 1)))
    np.testing.assert_allclose(same, 0.5 * labels, rtol=1e-5)
    other = z + rng.normal(size=z.shape).astype(np.float32)
    both = np.concatenate([z, other], 1)
    a = np.asarray(peer_loss(0.1, 7, 2, 0.5, 3.0)(mask, both))
    label_part = 0.25 * (labels + np.asarray(partial_label_loss(0.1)(mask, other)))
    assert np.all(a > label_part + 1e-4)  # the KL term
    # Gradient of the pure KL term (alpha 1) w.r.t. head 0: T^2 * (p0_T - pt_T) / T / heads; the teacher's
    # share (its dependence on head 0) would add a term if the stop-gradient were missing.
    t = tf.constant(both)
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = keras.ops.sum(peer_loss(0.0, 7, 2, 1.0, 3.0)(mask, t))
    g = tape.gradient(loss, t).numpy()[:, :7]
    soft = lambda v: np.exp(v - v.max(1, keepdims=True)) / np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True)  # noqa: E731
    want = 9.0 * (soft(z / 3) - soft((z + other) / 2 / 3)) / 3 / 2
    np.testing.assert_allclose(g, want, atol=1e-5)


def test_peer_heads_train_resume_and_export_only_the_own_head(tmp_path, monkeypatch):
    """Peer heads (edgenet): the training model has one head per width plus its own, the own head starts from the
    weights a model without peers would have, a run resumes, and the export is the plain model (same size) with the
    own head's trained weights."""
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    import keras

    from convert.recipes import build_model, get_recipe, single_head
    from convert.train import TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    recipe = get_recipe("edgenet", epochs=2, batch_size=16, width=0.25, warmup_epochs=0.5, peer_heads=(48, 8))
    plain = recipe.model_copy(update={"peer_heads": ()})
    keras.utils.set_random_seed(5)
    m = build_model(recipe, 7)
    keras.utils.set_random_seed(5)
    m0 = build_model(plain, 7)
    assert m.output_shape == (None, 21) and single_head(m).output_shape == (None, 7)
    assert all(np.array_equal(a, b) for a, b in zip(single_head(m).get_weights(), m0.get_weights()))
    assert single_head(m0) is m0

    data = synthetic_fer_folders(tmp_path / "data")
    cfg = TrainConfig(data=data, out=tmp_path / "m.keras", recipe=recipe, preprocess=PreprocessSpec(),
                      seed=3, precision="float32", export_epoch="last")
    interrupt_after_one_epoch(train, cfg)
    cfg.resume = True
    record = train(cfg)
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["params"] == m0.count_params() < record["params_training"] == m.count_params()
    assert record["recipe"]["peer_heads"] == [48, 8]
    from convert.ship import training_provenance  # what bundle.json keeps: both sizes, and none without peers

    assert training_provenance(record)["params_training"] == m.count_params()
    assert "params_training" not in training_provenance({k: v for k, v in record.items() if k != "params_training"})
    exported = keras.saving.load_model(cfg.out, compile=False)
    assert exported.count_params() == keras.saving.load_model(tmp_path / "m.keras", compile=False).count_params()
    x = np.random.default_rng(1).random((4, 48, 48, 1)).astype(np.float32)
    trained = keras.saving.load_model(cfg.work / "last.keras", compile=False)
    own = np.asarray(keras.ops.softmax(trained(x)[:, :7]))
    mirrored = np.asarray(keras.ops.softmax(trained(x[:, :, ::-1])[:, :7]))
    np.testing.assert_allclose(np.asarray(exported(x)), (own + mirrored) / 2, atol=1e-5)
    # The peers learned too (they are not frozen copies of their initial weights).
    assert not np.array_equal(trained.get_layer("peer1_logits").get_weights()[0],
                              m.get_layer("peer1_logits").get_weights()[0])

    with pytest.raises(ConfigError, match="edgenet only"):
        train(TrainConfig(data=data, out=tmp_path / "c.keras", recipe=get_recipe("capstone", peer_heads=(8,)),
                          preprocess=PreprocessSpec()))
    with pytest.raises(ConfigError, match="does not combine"):
        train(TrainConfig(data=data, out=tmp_path / "d.keras", recipe=recipe, preprocess=PreprocessSpec(),
                          init_from=cfg.work / "last.keras"))
    with pytest.raises(ConfigError, match=r"peer_heads = \(0,\).*positive"):
        get_recipe("edgenet", peer_heads=(0,))


def test_peer_heads_come_from_the_cli(monkeypatch, tmp_path):
    import argparse

    import convert.train
    from convert.commands.train import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.keras"), "--peer-heads", "192,96",
                              "--peer-alpha", "0.7", "--peer-temperature", "2"])
    seen = []
    monkeypatch.setattr(convert.train, "train", lambda cfg, progress: seen.append(cfg.recipe) or {"best": None})
    assert run(args) == 0
    assert (seen[0].peer_heads, seen[0].peer_alpha, seen[0].peer_temperature) == ((192, 96), 0.7, 2.0)
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="need --peer-heads"):
        run(parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.keras"), "--peer-alpha", "0.7"]))


def test_genki_detector_setting_reaches_training_and_blocks_a_mixed_resume(monkeypatch, tmp_path):
    """``train --genki-detector photo`` reaches TrainConfig; a run saved before the setting existed found GENKI faces
    the video way, so it resumes with the default and not with ``photo``."""
    import argparse

    import convert.train
    from convert.commands.train import add_arguments, run
    from convert.train import resume_differences

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    seen = []
    monkeypatch.setattr(convert.train, "train", lambda cfg, progress: seen.append(cfg.genki_detector) or {"best": None})
    for extra in ([], ["--genki-detector", "photo"]):
        assert run(parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.keras"), *extra])) == 0
    assert seen == ["video", "photo"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", ".", "--out", "m.keras", "--genki-detector", "zoom"])

    base = {"recipe": None, "seed": 1, "distill": None}
    older = {**base, "data": {"genki": "g"}}  # saved before the setting existed
    assert resume_differences(older, {**base, "data": {"genki": "g", "genki_detector": "video"}}) == []
    assert resume_differences(older, {**base, "data": {"genki": "g", "genki_detector": "photo"}}) == [
        "data.genki_detector: saved 'video', now 'photo'"]
    assert resume_differences({**base, "data": {"genki": None}}, {**base, "data": {"genki": None,
                                                                                  "genki_detector": None}}) == []
