"""Stochastic weight averaging in ``train``: the schedule, the running mean, the BatchNorm recompute, and a tiny
end-to-end run that is extended, interrupted and resumed (synthetic images only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import have_tensorflow, interrupt_after_one_epoch, synthetic_fer_folders

pytestmark = pytest.mark.skipif(not have_tensorflow(), reason="TensorFlow ([convert] extra) is not installed")


def test_schedule_is_the_recipes_cosine_then_the_constant_swa_rate():
    import keras

    from convert.recipes import get_recipe
    from convert.train import make_optimizer

    plain = get_recipe("edgenet", epochs=4, lr=2e-3, warmup_epochs=0.5)
    swa = plain.model_copy(update={"swa_epochs": 3, "swa_lr": 3e-4})
    assert plain.swa_learning_rate == pytest.approx(3e-4) and swa.swa_learning_rate == 3e-4  # default 0.15 x lr
    cosine = make_optimizer(plain, 10)._learning_rate
    both = make_optimizer(swa, 10)._learning_rate

    def lr(schedule, step: int) -> float:
        return float(keras.ops.convert_to_numpy(schedule(step)))

    for step in (0, 3, 5, 20, 39):  # warm-up, cosine, last cosine step: identical
        assert lr(both, step) == lr(cosine, step)
    assert lr(cosine, 40) == pytest.approx(2e-5)  # the cosine's floor ...
    for step in (40, 41, 69, 500):  # ... and from the SWA phase on, the constant rate
        assert lr(both, step) == pytest.approx(3e-4)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(both))
    assert [lr(again, s) for s in (5, 39, 40)] == [lr(both, s) for s in (5, 39, 40)]


def test_weight_average_is_the_running_mean_and_resumes_from_disk(tmp_path):
    from convert.swa import WeightAverage
    from edge.errors import ConfigError

    rng = np.random.default_rng(0)
    epochs = [[rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32)] for _ in range(5)]
    avg = WeightAverage.load(tmp_path / "swa.npz", 0)
    for w in epochs[:3]:
        avg.update(w)
    again = WeightAverage.load(tmp_path / "swa.npz", 3)  # an interrupted run picks it up from the file
    for w in epochs[3:]:
        again.update(w)
    for i in range(2):
        np.testing.assert_allclose(again.mean[i], np.mean([w[i] for w in epochs], 0, dtype=np.float64), rtol=1e-12)
    assert again.count == 5 and not list(tmp_path.glob("*.tmp.npz"))
    with pytest.raises(ConfigError, match="averages 5 epoch"):
        WeightAverage.load(tmp_path / "swa.npz", 4)
    with pytest.raises(ConfigError, match="missing"):
        WeightAverage.load(tmp_path / "other.npz", 1)
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match="cannot read the weight average"):
        WeightAverage.load(tmp_path / "junk.npz", 1)


@pytest.mark.parametrize("fused", [True, False])
def test_recompute_batchnorm_sets_the_mean_of_the_batch_statistics(fused):
    import keras

    from convert.fused_batchnorm import fused_batchnorm
    from convert.swa import recompute_batchnorm

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same")(inp)
    bn = keras.layers.BatchNormalization(momentum=0.95)
    model = keras.Model(inp, keras.layers.ReLU()(bn(conv)))
    feats = keras.Model(inp, conv)
    rng = np.random.default_rng(1)
    batches = [rng.normal(loc=i, size=(4, 6, 6, 2)).astype(np.float32) for i in range(5)]
    kernel = [w.copy() for w in model.get_weights()]
    with fused_batchnorm(fused):
        assert recompute_batchnorm(model, iter(batches)) == 5
    f = [np.asarray(feats(b)).reshape(-1, 3) for b in batches]
    np.testing.assert_allclose(np.asarray(bn.moving_mean), np.mean([x.mean(0) for x in f], 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), np.mean([x.var(0) for x in f], 0), rtol=1e-4)
    assert bn.momentum == 0.95  # restored
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kernel[:2], after[:2]))  # the convolution is untouched
    assert np.array_equal(np.asarray(bn.gamma), kernel[2]) and np.array_equal(np.asarray(bn.beta), kernel[3])


def _weights(path):
    import keras

    return keras.saving.load_model(path, compile=False).get_weights()


def test_swa_run_exports_the_average_and_extends_and_resumes_exactly(tmp_path, monkeypatch):
    """A run planned with SWA exports the mean of its SWA epochs (BatchNorm recomputed); a finished plain run
    extended with ``--swa-epochs`` and ``--resume``, interrupted in its SWA phase and resumed, ends with the same
    weights."""
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    import keras

    from convert.recipes import export_model, get_recipe
    from convert.train import TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    data = synthetic_fer_folders(tmp_path / "data")
    plain = get_recipe("edgenet", epochs=2, batch_size=16, width=0.25, warmup_epochs=0.5)
    swa = plain.model_copy(update={"swa_epochs": 2, "swa_lr": 1e-3})
    planned = TrainConfig(data=data, out=tmp_path / "a.keras", recipe=swa, preprocess=PreprocessSpec(), seed=3,
                          precision="float32", export_epoch="swa")
    snapshots = []
    record = train(planned, lambda e: snapshots.append(_weights(planned.work / "last.keras")))
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    assert [h["lr"] for h in record["history"]][2:] == [pytest.approx(1e-3)] * 2
    assert record["swa"]["epochs"] == [3, 4] and record["exported"] == {"epoch": 4, "rule": "swa", "averaged": [3, 4]}
    assert 0 <= record["swa"]["val_acc"] <= 1 and record["swa"]["batchnorm_batches"] == 3  # 42 images / 16
    averaged = keras.saving.load_model(planned.work / "swa.keras", compile=False)
    bn_stats = {id(v) for layer in averaged._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
                for v in (layer.moving_mean, layer.moving_variance)}
    mean = [(a + b) / 2 for a, b in zip(snapshots[2], snapshots[3])]
    for var, want, last in zip(averaged.weights, mean, snapshots[3]):
        if id(var) in bn_stats:  # recomputed for the averaged weights: neither the mean nor the last epoch's
            assert not np.allclose(np.asarray(var), want) and not np.allclose(np.asarray(var), last)
        else:
            np.testing.assert_allclose(np.asarray(var), want, rtol=1e-6, atol=1e-7)
    x = np.random.default_rng(1).random((4, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(planned.out, compile=False)(x)),
                               np.asarray(export_model(averaged, True, 0.0)(x)), atol=1e-5)

    # A plain run, finished, then extended with an SWA phase that is interrupted after its first epoch.
    later = TrainConfig(data=data, out=tmp_path / "b.keras", recipe=plain, preprocess=PreprocessSpec(), seed=3,
                        precision="float32")
    train(later)
    later.recipe, later.resume, later.export_epoch = swa, True, "swa"
    interrupt_after_one_epoch(train, later)
    assert len(json.loads((later.work / "state.json").read_text())["history"]) == 3
    later.recipe = swa.model_copy(update={"swa_lr": 5e-4})  # once averaging, the phase's settings are fixed
    with pytest.raises(ConfigError, match="recipe.swa_lr: saved 0.001, now 0.0005"):
        train(later)
    later.recipe = swa
    resumed = train(later)
    assert resumed["swa"]["epochs"] == [3, 4]
    for a, b in zip(_weights(planned.work / "swa.keras"), _weights(later.work / "swa.keras")):
        np.testing.assert_array_equal(a, b)  # bit for bit: same batches, same dropout masks


def test_swa_options_come_from_the_cli_and_bad_ones_are_refused(monkeypatch, tmp_path):
    import argparse

    import convert.train
    from convert.commands.train import add_arguments, run
    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "m.keras")]
    seen = []
    with monkeypatch.context() as m:
        m.setattr(convert.train, "train", lambda cfg, progress: seen.append(cfg) or {"best": None})
        assert run(parser.parse_args([*base, "--swa-epochs", "16", "--swa-lr", "3e-4"])) == 0
        assert run(parser.parse_args(base)) == 0
    assert (seen[0].recipe.swa_epochs, seen[0].recipe.swa_lr, seen[0].export_epoch) == (16, 3e-4, "swa")
    assert (seen[1].recipe.swa_epochs, seen[1].export_epoch) == (0, "best")
    with pytest.raises(ConfigError, match="--swa-lr needs --swa-epochs"):
        run(parser.parse_args([*base, "--swa-lr", "3e-4"]))
    with pytest.raises(ConfigError, match="--swa-epochs N"):
        train(TrainConfig(data=tmp_path, out=tmp_path / "m.keras", recipe=get_recipe("edgenet"),
                          preprocess=PreprocessSpec(), export_epoch="swa"))
    with pytest.raises(ConfigError, match="swa_epochs = -1"):
        get_recipe("edgenet", swa_epochs=-1)
