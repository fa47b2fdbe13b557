"""Accuracy of a classifier on labelled faces, scored the way the device would score it.

``load_eval_data`` turns any labelled source (class folders, GENKI labels.csv,
Kaggle CSV) into uint8 crops through the device crop path; photos whose face the
detector misses stay in the set as errors. ``score`` computes class and valence
accuracy, per-class recall and confusion matrices from class probabilities.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.bundle import VALENCES
from edge.classifier import published_label_index
from edge.errors import ConfigError
from edge.preprocess import PreprocessSpec

from .labels import DEFAULT_VALENCE, LabelSet

log = logging.getLogger(__name__)

SMILE_LABELS = {"smile": 1, "no_smile": 0}


@dataclass
class EvalData:
    """Crops for found faces plus the labels of every sample (missed faces included)."""

    crops: np.ndarray  # (F, S, S[, C]) uint8, one per found face
    face_index: np.ndarray  # (F,) sample index of each crop
    labels: list[str]  # one per sample
    ids: list[str]
    source: str
    cropped: bool

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def missed(self) -> int:
        return self.n - len(self.face_index)

    def subset(self, samples: np.ndarray) -> "EvalData":
        """The samples with the given indices (their faces follow)."""
        keep = np.isin(self.face_index, samples)
        remap = {int(s): i for i, s in enumerate(samples)}
        return EvalData(
            self.crops[keep], np.array([remap[int(s)] for s in self.face_index[keep]], np.int64),
            [self.labels[i] for i in samples], [self.ids[i] for i in samples], self.source, self.cropped,
        )


def load_eval_data(
    source: str | Path,
    spec: PreprocessSpec,
    *,
    cropped: str = "auto",
    limit: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    labelset: LabelSet | None = None,
) -> EvalData:
    """Labelled samples of ``source`` -> ``EvalData`` (``limit``: a class-balanced subset).

    With ``labelset``, labels the model cannot score are an error before any image is read.
    """
    from calibration.crops import device_detector, sample_crops
    from calibration.sources import balanced_subset, open_samples

    info = open_samples(source, cropped=cropped)  # type: ignore[arg-type]
    samples = [s for s in info.samples if s.label is not None]
    if not samples:
        raise ConfigError(f"{source}: no labelled images (need class folders, labels.csv or fer2013.csv)")
    if labelset is not None:
        truth_for(sorted({s.label for s in samples if s.label is not None}), labelset)
    if limit and limit < len(samples):
        samples = balanced_subset(samples, limit, seed=seed)
    detector = device_detector() if any(not s.cropped for s in samples) else None
    crops, face_index = [], []
    try:
        for i, s in enumerate(samples):
            got = sample_crops(s, spec, detector, max_faces=1)
            if got:
                crops.append(got[0])
                face_index.append(i)
            if progress:
                progress(i + 1, len(samples))
    finally:
        if detector is not None:
            detector.close()
    shape = (0, spec.input_size, spec.input_size) + ((3,) if spec.channels == 3 else ())
    arr = np.stack(crops) if crops else np.zeros(shape, np.uint8)
    data = EvalData(arr, np.array(face_index, np.int64), [s.label for s in samples],  # type: ignore[misc]
                    [s.id for s in samples], str(source), all(s.cropped for s in samples))
    log.info("eval data %s: %d samples, %d faces missed", source, data.n, data.missed)
    return data


@dataclass
class Truth:
    """Per-sample targets: class index, valence index, smile 0/1 (-1 where unknown)."""

    cls: np.ndarray
    val: np.ndarray
    smile: np.ndarray


def truth_for(labels: list[str], labelset: LabelSet) -> Truth:
    """Map dataset labels onto the model's classes; ``ConfigError`` naming unknown labels."""
    idx = {c.lower(): i for i, c in enumerate(labelset.classes)}
    cls, val, smile = [], [], []
    unknown: set[str] = set()
    for lab in labels:
        key = lab.lower()
        c = idx.get(key, -1)
        if c >= 0:
            v = VALENCES.index(labelset.valence[labelset.classes[c]])
        elif key in VALENCES:
            v = VALENCES.index(key)
        elif key in SMILE_LABELS:
            v = -1
        elif key in DEFAULT_VALENCE:
            v = VALENCES.index(DEFAULT_VALENCE[key])  # e.g. 'contempt' against fer7: valence only
        else:
            unknown.add(lab)
            continue
        cls.append(c)
        val.append(v)
        smile.append(SMILE_LABELS.get(key, -1))
    if unknown:
        raise ConfigError(
            f"unknown class names in the data: {sorted(unknown)}; the model's classes are "
            f"{list(labelset.classes)} (valence names {list(VALENCES)} and smile/no_smile also work)"
        )
    return Truth(np.array(cls), np.array(val), np.array(smile))


def to_probabilities(raw: np.ndarray, output: str, temperature: float = 1.0) -> np.ndarray:
    """Model output -> class probabilities, with the device's temperature scaling."""
    logits = raw if output == "logits" else np.log(np.clip(raw, 1e-6, 1.0))
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def valence_matrix(labelset: LabelSet) -> np.ndarray:
    m = np.zeros((len(labelset), len(VALENCES)), np.float32)
    for i, c in enumerate(labelset.classes):
        m[i, VALENCES.index(labelset.valence[c])] = 1.0
    return m


@dataclass
class Scores:
    """Metrics of one model on one data set (JSON-ready via ``as_dict``)."""

    n: int
    missed: int
    class_accuracy: float | None
    valence_accuracy: float | None
    smile_accuracy: float | None
    class_recall: dict[str, float] = field(default_factory=dict)
    valence_recall: dict[str, float] = field(default_factory=dict)
    class_confusion: list[list[int]] | None = None
    valence_confusion: list[list[int]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def predictions(probs: np.ndarray, data: EvalData, labelset: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample predicted class and valence index from face probabilities ``(F, K)``; -1 for a missed face."""
    pred_cls = np.full(data.n, -1)
    pred_val = np.full(data.n, -1)
    if len(probs):
        pred_cls[data.face_index] = probs.argmax(1)
        pred_val[data.face_index] = (probs @ valence_matrix(labelset)).argmax(1)
    return pred_cls, pred_val


def published_positive(probs: np.ndarray, data: EvalData, labelset: LabelSet, abstain: float = 0.0) -> np.ndarray:
    """Per sample: would the device publish "positive"? The top valence is positive and its probability is at
    or above ``abstain`` (``edge.classifier.make_prediction``; under it the label is ``uncertain``). False for a
    missed face. ``abstain=0`` is the plain top valence (a model before its bundle's threshold is fitted)."""
    out = np.zeros(data.n, bool)
    if len(probs):
        out[data.face_index] = published_label_index(probs @ valence_matrix(labelset), abstain) == VALENCES.index(
            "positive")
    return out


def correct_per_sample(probs: np.ndarray, data: EvalData, labelset: LabelSet,
                       abstain: float = 0.0) -> dict[str, np.ndarray]:
    """Right / wrong per sample for each figure the labels allow (``class``, ``valence``, ``smile``).

    Each array covers the samples that carry that kind of label, in sample order; a missed face is wrong.
    ``smile`` (positive vs not) counts "positive" as the device publishes it (``published_positive``).
    """
    return _correct(truth_for(data.labels, labelset), *predictions(probs, data, labelset),
                    published_positive(probs, data, labelset, abstain))


def _correct(truth: Truth, pred_cls: np.ndarray, pred_val: np.ndarray, positive: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    if (has := truth.cls >= 0).any():
        out["class"] = pred_cls[has] == truth.cls[has]
    if (has := truth.val >= 0).any():
        out["valence"] = pred_val[has] == truth.val[has]
    if (has := truth.smile >= 0).any():
        out["smile"] = positive[has] == (truth.smile[has] == 1)
    return out


def score(probs: np.ndarray, data: EvalData, labelset: LabelSet, abstain: float = 0.0) -> Scores:
    """Metrics for face probabilities ``(F, K)`` aligned with ``data.face_index``; missed faces are errors.

    Class and valence figures take the top probability; the smile figure honours ``abstain`` as the device
    does (``published_positive``).
    """
    truth = truth_for(data.labels, labelset)
    pred_cls, pred_val = predictions(probs, data, labelset)
    right = _correct(truth, pred_cls, pred_val, published_positive(probs, data, labelset, abstain))
    k = len(labelset)
    out = Scores(data.n, data.missed, None, None, None)
    has_c = truth.cls >= 0
    if has_c.any():
        out.class_accuracy = _pct(right["class"])
        out.class_confusion = confusion(truth.cls[has_c], pred_cls[has_c], k)
        out.class_recall = {c: _pct(pred_cls[has_c & (truth.cls == i)] == i)
                            for i, c in enumerate(labelset.classes) if (has_c & (truth.cls == i)).any()}
    has_v = truth.val >= 0
    if has_v.any():
        out.valence_accuracy = _pct(right["valence"])
        out.valence_confusion = confusion(truth.val[has_v], pred_val[has_v], len(VALENCES))
        out.valence_recall = {v: _pct(pred_val[has_v & (truth.val == i)] == i)
                              for i, v in enumerate(VALENCES) if (has_v & (truth.val == i)).any()}
    if "smile" in right:
        out.smile_accuracy = _pct(right["smile"])
    return out


def headline(s: Scores) -> float | None:
    """The number the gate watches: valence accuracy, else smile accuracy."""
    return s.valence_accuracy if s.valence_accuracy is not None else s.smile_accuracy


def _pct(hits: np.ndarray) -> float:
    return round(100.0 * float(np.mean(hits)), 2) if hits.size else 0.0


def confusion(t: np.ndarray, p: np.ndarray, k: int, missed: bool = True) -> list[list[int]]:
    """Counts, rows = truth, columns = prediction; with ``missed`` a last column counts ``p < 0`` (no face)."""
    m = np.zeros((k, k + 1 if missed else k), np.int64)
    np.add.at(m, (np.asarray(t), np.where(np.asarray(p) >= 0, p, k)), 1)
    return m.tolist()


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (%) and mean |delta prob| between two models' probabilities on the same faces."""
    if len(a) == 0:
        return {"agreement": 0.0, "mean_abs_dprob": 0.0}
    return {
        "agreement": _pct(a.argmax(1) == b.argmax(1)),
        "mean_abs_dprob": round(float(np.mean(np.abs(a - b))), 5),
    }


def run_tflite(tflite: bytes | Path, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Raw (dequantised) outputs of a TFLite model on float inputs, on the device runtime."""
    from edge.runtime import TFLiteModel

    outs = []
    with TFLiteModel(tflite, num_threads=1) as m:
        for i in range(0, len(x), batch):
            outs.append(m.run(x[i : i + batch])[0].copy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def latency_ms(tflite: bytes | Path, input_shape: tuple[int, ...], runs: int = 200, threads: int = 1,
               use_xnnpack: bool = True) -> float:
    """Median single-image latency in ms on ``threads`` threads (LiteRT, default delegates unless told)."""
    from edge.runtime import TFLiteModel

    x = np.random.default_rng(0).random((1,) + tuple(input_shape), dtype=np.float32)
    with TFLiteModel(tflite, num_threads=threads, use_xnnpack=use_xnnpack) as m:
        return round(median_ms(lambda: m.run(x), warmup=10, runs=runs), 4)


def median_ms(fn: Callable[[], object], warmup: int, runs: int) -> float:
    """Median wall time of ``fn()`` in ms over ``runs`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))
