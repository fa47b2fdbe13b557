"""Train a face-expression classifier from scratch on a CPU (or GPU), resumably.

Data: FER2013-style class folders (``DATA/train``, and ``DATA/val`` for model
selection) plus, optionally, GENKI-4K smile photos through the device crop path
(BlazeFace -> ``crop_face``). GENKI's fixed held-out part (``genki_split``) is
never trained on.

Two heads (``Recipe.head``): ``fer7`` learns the 7 FER classes and the device sums
them per valence; ``valence3`` learns positive / neutral / negative directly (FER
labels binned before training). GENKI labels say only "smiling or not", so they
train either head with a *partial-label* loss: the target is the set of allowed
classes ({happy} or {positive} for a smile, the rest otherwise) and the loss is
``-log P(set)``. For a one-hot label that is ordinary cross-entropy. Label
smoothing adds ``eps * mean_k(-log p_k)``. With a teacher (``Distillation``, e.g.
the unpruned model while a pruned copy fine-tunes) the loss also pulls the
model's tempered softmax towards the teacher's on the same augmented batch.

Every epoch writes ``last.keras`` (model + optimizer), ``state.json`` (epoch,
history, best) and, when validation accuracy improves, ``best.keras`` into the
work folder, so an interrupted run continues with ``--resume`` and a usable model
exists at any time. Shuffling is seeded by ``(seed, epoch)``, augmentation keyed by
``(seed, epoch, batch)`` and the dropout RNG states are checkpointed (``last.seeds.npz``), so a
resumed run sees the same batches and dropout masks as an uninterrupted one, and on one machine
it trains the same weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError
from edge.preprocess import PreprocessSpec

from .datasets import FER_CLASSES, FER_VALENCE, FaceSet, genki_split, load_class_folders, load_genki, save_npz
from .recipes import Recipe

log = logging.getLogger(__name__)

VALENCE_ORDER = ("positive", "neutral", "negative")
# Output classes per training head (``Recipe.head`` validates the name).
HEAD_CLASSES: dict[str, tuple[str, ...]] = {"fer7": FER_CLASSES, "valence3": VALENCE_ORDER}


def head_classes(head: str) -> tuple[str, ...]:
    """The output classes of a training head."""
    return HEAD_CLASSES[head]


def head_valence(head: str) -> dict[str, str]:
    """Class -> valence map recorded in the bundle for a head."""
    return dict(FER_VALENCE) if head == "fer7" else {v: v for v in VALENCE_ORDER}


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation (Hinton et al., 2015) from a trained teacher, e.g. the unpruned model.

    The loss becomes ``(1 - alpha) * label loss + alpha * T^2 * KL(teacher_T || student_T)``
    where ``_T`` is a softmax at temperature ``T``; the teacher sees the same augmented batch.
    """

    teacher: Path  # a training-model .keras (logits) with the student's input and classes
    alpha: float = 0.5
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0 or self.temperature <= 0:
            raise ConfigError(f"distillation needs 0 <= alpha <= 1 and temperature > 0, got alpha={self.alpha}, "
                              f"temperature={self.temperature}")


@dataclass
class TrainConfig:
    """Everything one training run needs; recorded in ``state.json``."""

    data: Path
    out: Path
    recipe: Recipe
    preprocess: PreprocessSpec
    genki: Path | None = None
    genki_test_fraction: float = 0.3
    genki_detector: str = "video"  # convert.datasets.GENKI_DETECTORS: find GENKI faces as the daemon or as analyze
    workdir: Path | None = None
    seed: int = 1234
    resume: bool = False
    threads: int = 0
    max_train: int = 0  # >0: use only this many training images (smoke tests)
    precision: str = "auto"  # auto | float32 | mixed_bfloat16
    init_from: Path | None = None  # start from this .keras (training model), e.g. to fine-tune a pruned copy
    distill: Distillation | None = None  # learn from a teacher's soft targets as well as the labels
    export_epoch: str = "best"  # best: the epoch with the best val score; last: the last epoch (val only watched)
    # Score val after every N-th epoch only (always after the cosine phase's last epoch and the run's last). Scoring
    # costs about 5 s an epoch for FER2013's 3,435 faces and two views; it does not touch training.
    val_every: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.workdir or self.out.with_name(self.out.stem + ".work")


@dataclass
class EpochResult:
    """One epoch's summary, for progress output and ``state.json``."""

    epoch: int
    epochs: int
    seconds: float
    loss: float
    train_acc: float
    val_acc: float
    val_valence_acc: float
    lr: float
    best: bool


def valence_index(classes: tuple[str, ...] = FER_CLASSES) -> np.ndarray:
    """Class index -> valence index (positive, neutral, negative)."""
    return np.array([VALENCE_ORDER.index(FER_VALENCE[c]) for c in classes], np.int32)


def valence_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """3-class valence accuracy against FER class labels ``y``.

    ``probs`` is either 7-class (summed per valence) or already 3-class valence (``valence3`` head).
    """
    vi = valence_index()
    if probs.shape[1] == len(VALENCE_ORDER):
        return float(np.mean(probs.argmax(1) == vi[y]))
    m = np.zeros((len(FER_CLASSES), 3), np.float32)
    m[np.arange(len(FER_CLASSES)), vi] = 1.0
    return float(np.mean((probs @ m).argmax(1) == vi[y]))


def class_weights(y: np.ndarray, how: str, n: int) -> np.ndarray:
    """Per-class loss weights: none (1), balanced (N / (K n_c)) or sqrt of balanced."""
    counts = np.bincount(y, minlength=n).astype(np.float64)
    if how == "none":
        return np.ones(n, np.float32)
    w = counts.sum() / (n * np.maximum(counts, 1))
    if how == "sqrt":
        w = np.sqrt(w)
    elif how != "balanced":
        raise ConfigError(f"class weighting {how!r}: choose none, balanced or sqrt")
    return (w / (w * counts).sum() * counts.sum()).astype(np.float32)  # mean weight 1 over the data


def _targets(fer: FaceSet, genki_x: np.ndarray | None, genki_smile: np.ndarray | None,
             recipe: Recipe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack images, allowed-class masks and sample weights for the recipe's head."""
    k = len(head_classes(recipe.head))
    y = fer.y if recipe.head == "fer7" else valence_index()[fer.y]  # valence3: bin before training
    cw = class_weights(y, recipe.class_weighting, k)
    x = [fer.x]
    mask = [np.eye(k, dtype=np.float32)[y]]
    w = [cw[y]]
    if genki_x is not None and len(genki_x):
        # A smile allows the head's positive classes (happy, or positive), no smile every other class.
        valence = head_valence(recipe.head)
        smile = np.array([valence[c] == "positive" for c in head_classes(recipe.head)], np.float32)
        m = np.where(genki_smile[:, None] == 1, smile[None], 1.0 - smile[None]).astype(np.float32)
        x.append(genki_x)
        mask.append(m)
        w.append(np.full(len(genki_x), recipe.genki_weight, np.float32))
    return np.concatenate(x), np.concatenate(mask), np.concatenate(w)


def partial_label_loss(eps: float) -> Callable:
    """``-(1-eps) log sum_k(p_k * mask_k) - eps * mean_k log p_k`` on logits."""
    from keras import ops

    def loss(mask, logits):
        logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        neg_inf = ops.full_like(logp, -1e9)
        lp_set = ops.logsumexp(ops.where(mask > 0.5, logp, neg_inf), axis=-1)
        return -(1.0 - eps) * lp_set - eps * ops.mean(logp, axis=-1)

    return loss


def distillation_loss(eps: float, k: int, alpha: float, temperature: float) -> Callable:
    """Loss on ``concat(student logits, teacher logits)``: partial-label loss on the labels plus
    ``alpha * T^2 * KL(softmax(t / T) || softmax(s / T))`` (``k`` = number of classes)."""
    from keras import ops

    labels = partial_label_loss(eps)

    def loss(mask, both):
        both = ops.cast(both, "float32")
        s, t = both[:, :k], both[:, k:]
        return (1.0 - alpha) * labels(mask, s) + alpha * temperature**2 * tempered_kl(t, s, temperature)

    return loss


def tempered_kl(teacher, student, temperature: float):
    """Per-sample ``KL(softmax(teacher / T) || softmax(student / T))`` of two logit batches."""
    from keras import ops

    t = teacher / temperature
    return ops.sum(ops.softmax(t, axis=-1) * (ops.log_softmax(t, axis=-1)
                                             - ops.log_softmax(student / temperature, axis=-1)), axis=-1)


def peer_loss(eps: float, k: int, heads: int, alpha: float, temperature: float) -> Callable:
    """Loss on the concatenated logits of ``heads`` heads (on-the-fly native ensemble, Lan et al. 2018): the mean
    over heads of ``(1 - alpha) * label loss + alpha * T^2 * KL(ensemble_T || head_T)``, where the ensemble is the
    heads' mean logits, a teacher built from the heads themselves (no gradient flows through it)."""
    from keras import ops

    labels = partial_label_loss(eps)

    def loss(mask, logits):
        z = ops.cast(logits, "float32")
        parts = [z[:, i * k:(i + 1) * k] for i in range(heads)]
        teacher = ops.stop_gradient(sum(parts) / heads)
        total = 0.0
        for s in parts:
            kl = tempered_kl(teacher, s, temperature)
            total = total + (1.0 - alpha) * labels(mask, s) + alpha * temperature**2 * kl
        return total / heads

    return loss


def _student_accuracy(k: int) -> Callable:
    """``_set_accuracy`` of the first ``k`` logits: the student's of ``concat(student, teacher)``, the model's own
    head's of ``concat(own head, peer heads)``."""

    def metric(mask, both):
        return _set_accuracy(mask, both[:, :k])

    metric.__name__ = "_set_accuracy"  # the history key ``train`` reads, with or without a teacher
    return metric


def _with_teacher(model, teacher):
    """A model whose output is ``concat(student logits, teacher logits)``; the teacher is frozen in inference mode.

    Only ``model`` is ever saved, so the wrapper may use a layer class of its own.
    """
    import keras

    class InferenceOnly(keras.layers.Layer):
        # ``teacher(x, training=False)`` in a functional graph is overridden by the outer
        # ``training=True`` of ``fit``: the teacher's dropout would run. A layer call pins it.
        def __init__(self, inner, **kw):
            super().__init__(**kw)
            self.inner = inner

        def call(self, x):
            return self.inner(x, training=False)

    teacher.trainable = False
    inp = keras.Input(model.input_shape[1:], name="face")
    frozen = InferenceOnly(teacher, name="teacher", trainable=False)
    both = keras.layers.Concatenate(dtype="float32", name="student_teacher")([model(inp), frozen(inp)])
    return keras.Model(inp, both, name=f"{model.name}_distill")


def _set_accuracy(mask, logits):
    """Top-1 prediction is in the allowed set."""
    from keras import ops

    top = ops.argmax(logits, axis=-1)
    hit = ops.take_along_axis(mask, ops.expand_dims(top, -1), axis=-1)
    return ops.mean(ops.cast(hit > 0.5, "float32"))


def resolve_precision(precision: str) -> str:
    """``auto`` -> mixed_bfloat16 on CPUs with AMX / AVX512-BF16 (oneDNN runs bf16 convs ~2x faster), else float32."""
    if precision != "auto":
        return precision
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"


def _configure_tf(threads: int, seed: int, precision: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(seed)


def epoch_dataset(x: np.ndarray, mask: np.ndarray, w: np.ndarray, recipe: Recipe, seed: int, epoch: int,
                  autotune: bool = False):
    """One epoch: seeded permutation, batched uint8 -> float, vectorised augmentation keyed by
    ``(seed, epoch, batch index)``, so an epoch's batches are the same in every run and on resume.

    tf.data autotuning stays off: with it, deleting each epoch's iterator at the end of
    ``fit`` waits for the autotuner's thread, which stalled about half of all epochs by
    35 s on a 2-core host (``scripts/bench_training_epoch.py`` measures it).
    """
    import tensorflow as tf

    from .augment import augment_batch

    perm = np.random.default_rng([seed, epoch]).permutation(len(x))
    xi = x[perm]
    if xi.ndim == 3:
        xi = xi[..., None]
    ds = tf.data.Dataset.from_tensor_slices((xi, mask[perm], w[perm])).batch(recipe.batch_size).enumerate()

    def aug(i, batch):
        xb, mb, wb = batch
        xb = tf.cast(xb, tf.float32) * (1.0 / 255.0)
        # Keyed by (seed, epoch, batch): the same augmentation whatever order the parallel map calls run in.
        key = tf.stack([tf.constant(seed * 100_003 + epoch, tf.int64), i])
        return augment_batch(xb, recipe.augment, seed=key), mb, wb

    # Without autotuning, two map calls overlap augmentation of the next batch with the training step.
    ds = ds.map(aug, num_parallel_calls=tf.data.AUTOTUNE if autotune else 2).prefetch(2)
    return ds if autotune else without_autotuning(ds)


def without_autotuning(ds):  # type: ignore[no-untyped-def]
    """``ds`` with tf.data autotuning off (see ``epoch_dataset``: the autotuner stalls epochs on 2 cores)."""
    import tensorflow as tf

    opts = tf.data.Options()
    opts.autotune.enabled = False
    return ds.with_options(opts)


def predict_probs(model, x: np.ndarray, flip_tta: bool, batch: int = 512, tta_zoom: float = 0.0) -> np.ndarray:
    """Softmax probabilities of a logits model on uint8 crops, averaged over the test-time views the export
    bakes in (``convert.recipes.tta_views``: the image, its mirror if ``flip_tta``, its zoom-in by ``tta_zoom``)."""
    import keras

    from .recipes import tta_views

    xf = x.astype(np.float32)[..., None] / 255.0 if x.ndim == 3 else x.astype(np.float32) / 255.0
    views = tta_views(xf, flip_tta, tta_zoom)
    return np.mean([keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(v, batch_size=batch, verbose=0)))
                    for v in views], axis=0)


def _lr_schedule(recipe: Recipe, steps_per_epoch: int):
    import keras

    total = recipe.epochs * steps_per_epoch
    warm = int(recipe.warmup_epochs * steps_per_epoch)
    cosine = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.lr / 20.0, decay_steps=max(1, total - warm), alpha=0.01,
        warmup_target=recipe.lr, warmup_steps=warm,
    )
    if not recipe.swa_epochs:
        return cosine
    from .swa import CosineThenConstant

    return CosineThenConstant(cosine, total, recipe.swa_learning_rate)


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    """The recipe's optimizer on its warm-up + cosine schedule, then the constant SWA rate if the recipe has an SWA
    phase (gradients clipped to norm 5)."""
    import keras

    lr = _lr_schedule(recipe, steps_per_epoch)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True,
                                    weight_decay=recipe.weight_decay, clipnorm=5.0)
    return keras.optimizers.AdamW(learning_rate=lr, weight_decay=recipe.weight_decay, clipnorm=5.0)


def _scaled_spec(preprocess: PreprocessSpec) -> None:
    if preprocess.scale != "zero_one" or preprocess.color != "gray":
        raise ConfigError("train supports gray zero_one inputs (PreprocessSpec color=gray, scale=zero_one)")


def load_training_data(cfg: TrainConfig) -> dict[str, Any]:
    """FER train/val and the GENKI train/test split as uint8 arrays."""
    data = Path(cfg.data)
    train_dir = data / "train" if (data / "train").is_dir() else data
    val_dir = data / "val" if (data / "val").is_dir() else None
    train = load_class_folders(train_dir, cfg.preprocess)
    if cfg.max_train and cfg.max_train < len(train):
        idx = np.random.default_rng(cfg.seed).permutation(len(train))[: cfg.max_train]
        idx.sort()
        train = FaceSet(train.x[idx], train.y[idx], [train.files[i] for i in idx])
    val = load_class_folders(val_dir, cfg.preprocess) if val_dir else None
    out: dict[str, Any] = {"train": train, "val": val, "genki_train": None, "genki_test": None}
    if cfg.genki:
        g = load_genki(cfg.genki, cfg.preprocess, detector=cfg.genki_detector)
        test = genki_split(g.files, cfg.genki_test_fraction)
        out["genki_train"] = g.subset(np.nonzero(~test & g.found)[0])
        out["genki_test"] = g.subset(np.nonzero(test)[0])
    return out


def train(cfg: TrainConfig, progress: Callable[[EpochResult], None] | None = None) -> dict[str, Any]:
    """Run (or resume) training; write ``cfg.out`` (best epoch, device-ready export model) and return the record."""
    import keras

    from .fused_batchnorm import fused_batchnorm

    policy = keras.mixed_precision.global_policy()
    try:
        with fused_batchnorm():
            return _train(cfg, progress)
    finally:
        # Training sets the process-wide dtype policy (bfloat16 on capable CPUs). Models built later in this process
        # must not inherit it, even after an interrupted run: the TFLite converter cannot translate a bfloat16
        # transpose, for one.
        keras.mixed_precision.set_global_policy(policy)


def _train(cfg: TrainConfig, progress: Callable[[EpochResult], None] | None) -> dict[str, Any]:
    _scaled_spec(cfg.preprocess)
    if cfg.export_epoch not in ("best", "last", "swa"):
        raise ConfigError(f"export epoch {cfg.export_epoch!r}: choose best, last or swa")
    if cfg.export_epoch == "swa" and not cfg.recipe.swa_epochs:
        raise ConfigError("exporting the weight average needs an SWA phase: pass --swa-epochs N")
    if cfg.val_every < 1:
        raise ConfigError(f"--val-every {cfg.val_every}: pass 1 (score val after every epoch) or more")
    if cfg.preprocess.input_size != cfg.recipe.input_size:
        raise ConfigError(
            f"recipe {cfg.recipe.name} expects {cfg.recipe.input_size} px inputs, preprocess says "
            f"{cfg.preprocess.input_size}"
        )
    if cfg.recipe.peer_heads and cfg.recipe.name != "edgenet":
        raise ConfigError(f"peer heads are built for edgenet only, not {cfg.recipe.name}; drop --peer-heads")
    if cfg.recipe.peer_heads and (cfg.distill or cfg.init_from):
        raise ConfigError("--peer-heads trains from scratch with its own ensemble as the teacher; it does not combine "
                          "with --distill-from or --init-from")
    if cfg.distill and not Path(cfg.distill.teacher).is_file():  # before minutes of data loading
        raise ConfigError(f"teacher {cfg.distill.teacher} not found; pass a training checkpoint such as "
                          "RUN.work/last.keras")
    work = cfg.work
    state_path = work / "state.json"
    if work.exists() and any(work.iterdir()) and not cfg.resume:
        raise ConfigError(f"work folder {work} already has a run; pass --resume to continue it or remove it")
    distill = ({"teacher": str(cfg.distill.teacher), "alpha": cfg.distill.alpha,
                "temperature": cfg.distill.temperature} if cfg.distill else None)
    recipe = cfg.recipe.model_dump(mode="json")
    saved = None
    if cfg.resume and state_path.is_file() and (work / "last.keras").is_file():
        saved = json.loads(state_path.read_text())
        # Before minutes of data loading: the settings that must match do not depend on the data.
        now = {"recipe": recipe, "seed": cfg.seed, "distill": distill,
               "preprocess": cfg.preprocess.model_dump(mode="json")}
        if diffs := resume_differences(saved, now):
            raise ConfigError(f"{work}: --resume with other settings than the saved run ({'; '.join(diffs)}); "
                              "pass the saved values to continue it, or use a new --out")
    work.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(cfg.precision)
    _configure_tf(cfg.threads, cfg.seed, precision)
    import keras

    from .recipes import build_model, head_count, single_head

    classes = head_classes(cfg.recipe.head)
    d = load_training_data(cfg)
    train_set, val = d["train"], d["val"]
    gk = d["genki_train"]
    x, mask, w = _targets(train_set, gk.x if gk else None, gk.smile if gk else None, cfg.recipe)
    steps = int(np.ceil(len(x) / cfg.recipe.batch_size))
    record: dict[str, Any] = {
        "recipe": recipe,
        "preprocess": cfg.preprocess.model_dump(mode="json"),
        "seed": cfg.seed,
        "data": {
            "train": str(cfg.data), "train_images": len(train_set),
            "val_images": len(val) if val is not None else 0,
            "genki": str(cfg.genki) if cfg.genki else None,
            "genki_train_photos": len(gk.files) if gk else 0,
            "genki_test_fraction": cfg.genki_test_fraction if cfg.genki else None,
            "genki_detector": cfg.genki_detector if cfg.genki else None,
            "max_train": cfg.max_train or None,
        },
        "precision": precision,
        "val_every": cfg.val_every,
        "classes": list(classes),
        "valence": head_valence(cfg.recipe.head),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "history": [],
        "best": None,
        **cfg.extra,
    }
    if distill:
        record["distill"] = distill
    start_epoch = 0
    if saved is not None:
        record["history"], record["best"] = saved["history"], saved["best"]
        start_epoch = len(record["history"])
        model = keras.models.load_model(work / "last.keras", compile=False)
        log.info("resuming %s at epoch %d", work, start_epoch + 1)
    else:
        model = build_model(cfg.recipe, len(classes))
        if cfg.init_from:
            from .recipes import transfer_pruned

            src = keras.models.load_model(cfg.init_from, compile=False)
            kept = transfer_pruned(src, model)
            record["init_from"] = {"model": str(cfg.init_from), "pruned_kept": {k: len(v) for k, v in kept.items()}}
            del src
    opt = make_optimizer(cfg.recipe, steps)
    # ``fitter`` is what ``fit`` trains: the model itself, or the model next to a frozen teacher.
    # Either way its trainable variables are the model's, so checkpoints and resume are the same.
    fitter, loss, metric = model, partial_label_loss(cfg.recipe.label_smoothing), _set_accuracy
    own = single_head(model)  # the head that is exported and scored; ``model`` itself without peer heads
    if cfg.recipe.peer_heads:
        loss = peer_loss(cfg.recipe.label_smoothing, len(classes), head_count(cfg.recipe), cfg.recipe.peer_alpha,
                         cfg.recipe.peer_temperature)
        metric = _student_accuracy(len(classes))
    if cfg.distill:
        teacher = _load_teacher(cfg.distill, model, len(classes))
        fitter = _with_teacher(model, teacher)
        loss = distillation_loss(cfg.recipe.label_smoothing, len(classes), cfg.distill.alpha,
                                 cfg.distill.temperature)
        metric = _student_accuracy(len(classes))
    fitter.compile(optimizer=opt, loss=loss, metrics=[metric], weighted_metrics=[])
    if start_epoch:
        # Restore optimizer slots + step counter (the LR schedule position).
        opt.build(fitter.trainable_variables)
        with np.load(work / "last.optimizer.npz") as z:
            saved = [z[f"v{i}"] for i in range(len(z.files))]
        if len(saved) != len(opt.variables):
            raise ConfigError(f"{work}: optimizer state does not match the model; start a new run")
        for var, value in zip(opt.variables, saved):
            var.assign(value)
        _restore_seed_states(model, work / "last.seeds.npz")
    record["params"] = int(own.count_params())
    if own is not model:
        record["params_training"] = int(model.count_params())
    total_epochs = cfg.recipe.epochs + cfg.recipe.swa_epochs
    average = None
    if cfg.recipe.swa_epochs:
        from .swa import WeightAverage

        average = WeightAverage.load(work / "swa.npz", max(0, start_epoch - cfg.recipe.epochs))
    for epoch in range(start_epoch, total_epochs):
        t0 = time.time()
        ds = epoch_dataset(x, mask, w, cfg.recipe, cfg.seed, epoch)
        h = fitter.fit(ds, epochs=1, verbose=0, shuffle=False)
        secs = time.time() - t0
        watched = val_watched(epoch + 1, cfg.val_every, cfg.recipe.epochs, total_epochs)
        val_acc, val_val = val_scores(own, val if watched else None, cfg.recipe)
        lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        # Model selection: 7-class accuracy for fer7, valence accuracy for valence3 (its only score).
        score, best_score = (val_acc, "val_acc") if cfg.recipe.head == "fer7" else (val_val, "val_valence_acc")
        if val is None:  # no val data, no score: the latest epoch counts as best (not the first)
            is_best = True
        else:  # an epoch between watches (NaN) is never best, and never blocks a scored one
            is_best = not math.isnan(score) and (record["best"] is None or math.isnan(record["best"][best_score])
                                                 or score > record["best"][best_score])
        er = EpochResult(epoch + 1, total_epochs, secs, float(h.history["loss"][-1]),
                         float(h.history["_set_accuracy"][-1]), val_acc, val_val, lr, is_best)
        record["history"].append({k: v for k, v in er.__dict__.items() if k not in ("epochs",)})
        model.save(work / "last.keras.tmp.keras")
        save_npz(work / "last.optimizer.npz",
                 **{f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(opt.variables)})
        save_npz(work / "last.seeds.npz",
                 **{f"s{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(seed_states(model))})
        os.replace(work / "last.keras.tmp.keras", work / "last.keras")
        if average is not None and epoch >= cfg.recipe.epochs:
            average.update(model.get_weights())
        if is_best:
            record["best"] = {"epoch": epoch + 1, "val_acc": val_acc, "val_valence_acc": val_val}
            model.save(work / "best.keras.tmp.keras")
            os.replace(work / "best.keras.tmp.keras", work / "best.keras")
        _write_json(state_path, record)
        if progress:
            progress(er)
    if average is not None:
        record["swa"] = _write_average(cfg, model, own, average, x, mask, w, val)
        _write_json(state_path, record)
    finalize(cfg, record)
    return record


def val_watched(epoch: int, every: int, cosine_epochs: int, total_epochs: int) -> bool:
    """Whether val is scored after 1-based ``epoch``: every ``every``-th, the cosine phase's last and the run's last."""
    return epoch % every == 0 or epoch in (cosine_epochs, total_epochs)


def val_scores(model, val: FaceSet | None, recipe: Recipe) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """7-class and valence accuracy of a logits model on val, averaged over the export's test-time views; NaN
    without val data (and 7-class NaN for a ``valence3`` head)."""
    if val is None:
        return float("nan"), float("nan")
    p = predict_probs(model, val.x, recipe.flip_tta, tta_zoom=recipe.tta_zoom)
    val_acc = float(np.mean(p.argmax(1) == val.y)) if recipe.head == "fer7" else float("nan")
    return val_acc, valence_accuracy(p, val.y)


def _write_average(cfg: TrainConfig, model, own, average, x: np.ndarray, mask: np.ndarray, w: np.ndarray,
                   val: FaceSet | None) -> dict[str, Any]:
    """Write ``swa.keras``: the SWA phase's weight average with BatchNorm statistics recomputed over one augmented
    pass of the training set (the batches of the epoch after the last); return its record (epochs, val scores)."""
    from .swa import recompute_batchnorm

    r = cfg.recipe
    average.apply_to(model)
    ds = epoch_dataset(x, mask, w, r, cfg.seed, r.epochs + r.swa_epochs)
    batches = recompute_batchnorm(model, (xb for xb, _, _ in ds))
    model.save(cfg.work / "swa.tmp.keras")
    os.replace(cfg.work / "swa.tmp.keras", cfg.work / "swa.keras")
    val_acc, val_val = val_scores(own, val, r)
    out: dict[str, Any] = {"epochs": [r.epochs + 1, r.epochs + r.swa_epochs], "lr": r.swa_learning_rate,
                           "batchnorm_batches": batches, "val_acc": None if math.isnan(val_acc) else val_acc,
                           "val_valence_acc": None if math.isnan(val_val) else val_val}
    log.info("weight average of epochs %d-%d: val %s, valence %s", *out["epochs"], out["val_acc"],
             out["val_valence_acc"])
    return out


def seed_states(model) -> list:  # type: ignore[no-untyped-def]
    """The model's dropout RNG states: Keras ``SeedGenerator`` variables, which are not among its weights and so
    not in ``last.keras``. Restoring them on resume gives the dropout masks an uninterrupted run would draw."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _restore_seed_states(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    states = seed_states(model)
    if not path.is_file():  # a run checkpointed before the file existed: it resumes, with other dropout masks
        log.warning("%s is missing: the resumed epochs draw other dropout masks than an uninterrupted run", path)
        return
    with np.load(path) as z:
        saved = [z[f"s{i}"] for i in range(len(z.files))]
    if len(saved) != len(states):
        raise ConfigError(f"{path}: {len(saved)} dropout RNG states for a model with {len(states)}; start a new run")
    for var, value in zip(states, saved):
        var.assign(value)


def _load_teacher(d: Distillation, model, n_classes: int):
    """Load the teacher and check that it fits the student (same input, same classes, logits out)."""
    import keras

    try:
        teacher = keras.models.load_model(d.teacher, compile=False)
    except Exception as exc:  # a truncated zip, a foreign file, a model that needs custom objects
        raise ConfigError(f"cannot load teacher {d.teacher} ({exc.__class__.__name__}: {str(exc)[:200]}); "
                          "pass a .keras checkpoint written by `emotion-edge train`") from None
    if tuple(teacher.input_shape[1:]) != tuple(model.input_shape[1:]) or teacher.output_shape[-1] != n_classes:
        raise ConfigError(f"teacher {d.teacher} maps {teacher.input_shape[1:]} to {teacher.output_shape[-1]} "
                          f"classes; the student needs {model.input_shape[1:]} to {n_classes}")
    if any(isinstance(layer, keras.layers.Softmax) for layer in teacher.layers):
        raise ConfigError(f"teacher {d.teacher} outputs probabilities; pass its training checkpoint "
                          "(RUN.work/last.keras or best.keras), which outputs logits")
    return teacher


def resume_differences(saved: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """What keeps a run from resuming: each training setting (recipe field, seed, teacher, photo crop geometry and
    GENKI detector setting) that differs between the saved ``state.json`` and this run's record, as ``"name: saved
    X, now Y"``; empty when it may resume. The SWA phase's settings may change until the run has entered it."""
    old, new = _training_part(saved.get("recipe")) or {}, _training_part(record.get("recipe")) or {}
    free: tuple[str, ...] = ()
    if len(saved.get("history") or []) <= int(old.get("epochs") or 0):
        # Not yet averaging: the cosine part does not depend on the SWA phase, so one may be added or changed
        # (a finished run extended with --swa-epochs trains as if it had been planned from the start).
        free = ("swa_epochs", "swa_lr")
    diffs = [f"recipe.{k}: saved {old.get(k)!r}, now {new.get(k)!r}"
             for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k) and k not in free]
    diffs += [f"{k}: saved {saved.get(k)!r}, now {record.get(k)!r}"
              for k in ("seed", "distill") if saved.get(k) != record.get(k)]
    # Runs saved before the setting existed found GENKI faces the video way.
    saved_data = saved.get("data") or {}
    gd_old = saved_data.get("genki_detector", "video" if saved_data.get("genki") else None)
    gd_new = (record.get("data") or {}).get("genki_detector")
    if gd_old != gd_new:
        diffs.append(f"data.genki_detector: saved {gd_old!r}, now {gd_new!r}")
    # GENKI crops made another way (margin, shift, alignment) are other training data. Fields added to the spec
    # since a run was saved compare at their defaults; a run saved without a spec is not checked.
    if saved.get("preprocess") is not None and record.get("preprocess") is not None:
        from pydantic import ValidationError

        try:
            old_p = PreprocessSpec.model_validate(saved["preprocess"])
            new_p = PreprocessSpec.model_validate(record["preprocess"])
        except ValidationError:  # a spec this code no longer reads: it differs, and resume says so
            diffs.append(f"preprocess: saved {saved['preprocess']!r}, now {record['preprocess']!r}")
        else:
            diffs += [f"preprocess.{k}: saved {a!r}, now {b!r}" for k, a, b in old_p.differences(new_p)]
    return diffs


def _training_part(recipe: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recorded recipe with defaults filled in for fields added since (so older runs still compare) and without
    the fields that do not change training (description, export-time views), so a run resumes across those."""
    if recipe is None:
        return None
    from pydantic import ValidationError

    from .recipes import Recipe

    try:
        full = Recipe.model_validate(recipe).model_dump(mode="json")
    except ValidationError:  # a recipe this code no longer knows: compare as recorded (it will not match)
        full = recipe
    return {k: v for k, v in full.items() if k not in ("description", "flip_tta", "tta_zoom")}


def finalize(cfg: TrainConfig, record: dict[str, Any]) -> Path:
    """Write ``cfg.out`` from the best (or, with ``export_epoch="last"``, the last) checkpoint: softmax
    (+ test-time views) export model and a ``.json`` record (its recipe is ``cfg.recipe``, the one exported)."""
    import keras

    from .recipes import build_model, export_model, single_head

    work = cfg.work
    trained = single_head(keras.models.load_model(work / f"{cfg.export_epoch}.keras", compile=False))
    epoch = record["best"]["epoch"] if cfg.export_epoch == "best" else len(record["history"])
    record["exported"] = {"epoch": epoch, "rule": cfg.export_epoch}
    if cfg.export_epoch == "swa":  # the mean of these epochs' weights
        record["exported"]["averaged"] = record["swa"]["epochs"]
    record["recipe"] = cfg.recipe.model_dump(mode="json")
    # Rebuild in float32 (the converter wants a plain float graph) and copy the weights over.
    keras.mixed_precision.set_global_policy("float32")
    best = build_model(cfg.recipe.model_copy(update={"peer_heads": ()}), len(record["classes"]))
    best.set_weights(trained.get_weights())
    exported = export_model(best, cfg.recipe.flip_tta, cfg.recipe.tta_zoom)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    exported.save(cfg.out)
    _write_json(cfg.out.with_suffix(".json"), record)
    log.info("wrote %s (%s epoch %d; best %s)", cfg.out, cfg.export_epoch, epoch, record["best"])
    return cfg.out


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
