"""The convert stage, top to bottom: model -> (pruned) -> float32 / dynamic / int8 TFLite ->
load test on LiteRT -> accuracy on held-out faces -> confidence calibration -> gate -> bundle + report.

``convert(ConvertOptions)`` returns a ``ConvertResult``; the command turns it into
an exit status. Every step logs its time and the size of what it wrote.
"""

from __future__ import annotations

import gzip
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from edge.bundle import VALENCES, Calibration, sha256_file
from edge.errors import ConfigError
from edge.preprocess import PreprocessSpec, normalize

from .labels import LabelSet, check_output_size, load_labels

log = logging.getLogger(__name__)

Status = Callable[[str], None]


@dataclass
class ConvertOptions:
    """Everything ``emotion-edge convert`` accepts (see the command for the flags)."""

    model: Path
    labels: str
    calib: Path
    out: Path
    calib_spec: str | None = None
    calib_samples: int = 500
    eval: list[str] = field(default_factory=list)
    eval_limit: int | None = None
    cropped: str = "auto"
    prune: float | None = None
    finetune: list[str] = field(default_factory=list)
    finetune_limit: int | None = None
    epochs: int = 2
    prune_frequency: int = 20
    finetune_lr: float = 2e-4
    batch_size: int = 64
    io: Literal["int8", "uint8"] = "int8"
    input_size: int | None = None
    color: str | None = None
    scale: str | None = None
    max_drop: float = 1.0
    gate: bool = True
    abstain_rate: float = 0.1
    bundle_id: str | None = None
    include_detector: bool = True
    latency_runs: int = 200
    save_artifacts: bool = False
    seed: int = 0


@dataclass
class Artifact:
    """One TFLite file built for the report (and maybe the bundle)."""

    name: str
    kind: str
    pruned: bool
    data: bytes
    sparse_format: bool = False
    loads: bool = True
    load_error: str | None = None
    runtime: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def gz_size(self) -> int:
        return len(gzip.compress(self.data, 9))


@dataclass
class ConvertResult:
    """What convert built and whether the gate passed."""

    bundle: Path
    deployed: str
    artifacts: list[Artifact]
    metrics: dict[str, Any]
    gate_passed: bool | None
    gate_message: str
    notes: list[str]


def resolve_spec(calib_spec: PreprocessSpec, input_size: int, channels: int, opts: ConvertOptions) -> PreprocessSpec:
    """The bundle's preprocessing: crop geometry from the calibration set, scale from --scale.

    ``--input-size`` / ``--color`` declare what the model expects and must agree with
    the model and with the calibration crops; a mismatch is an error with the fix.
    """
    color = "gray" if channels == 1 else "rgb"
    if opts.input_size is not None and opts.input_size != input_size:
        raise ConfigError(f"--input-size {opts.input_size} but the model's input is {input_size}x{input_size}")
    if opts.color is not None and opts.color != color:
        raise ConfigError(f"--color {opts.color} but the model's input has {channels} channel(s) ({color})")
    if calib_spec.input_size != input_size or calib_spec.color != color:
        raise ConfigError(
            f"calibration set was built for {calib_spec.input_size}px {calib_spec.color} but the model expects "
            f"{input_size}px {color}; rebuild it: emotion-edge calibrate SOURCE --for "
            f"size={input_size},color={color},margin={calib_spec.margin} --out calib.npz"
        )
    if opts.scale is not None:
        return calib_spec.model_copy(update={"scale": opts.scale})
    return calib_spec


def check_options(opts: ConvertOptions) -> None:
    """Option conflicts are errors before any slow work starts."""
    if opts.prune is not None and not 0.0 < opts.prune < 1.0:
        raise ConfigError(f"--prune {opts.prune}: sparsity must be between 0 and 1 (e.g. 0.5)")
    if opts.finetune and opts.prune is None:
        raise ConfigError("--finetune needs --prune (fine-tuning here recovers accuracy after pruning)")
    if opts.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    if not 0.0 <= opts.abstain_rate < 1.0:
        raise ConfigError(f"--abstain-rate {opts.abstain_rate}: must be in [0, 1)")


def convert(opts: ConvertOptions, status: Status | None = None) -> ConvertResult:
    """Run the whole convert stage; raises ``edge.errors.*`` on user-fixable problems."""
    from .model_io import load_model

    say = status or (lambda msg: log.info("%s", msg))
    t_start = time.perf_counter()
    check_options(opts)
    labels = load_labels(opts.labels)
    src = load_model(opts.model)
    check_output_size(labels, src.n_outputs, str(opts.model))
    calib = _calibration_set(opts, src, say)
    spec = resolve_spec(calib.spec, src.input_size, src.channels, opts)
    _check_training_spec(opts.model, spec)
    if opts.prune is not None and not src.is_keras:
        raise ConfigError(f"{src.path}: pruning needs a Keras model (.keras, .h5 or a Keras SavedModel)")
    say(f"model {src.path.name}: {src.framework}, input {src.input_size}x{src.input_size}x{src.channels}, "
        f"{src.n_outputs} outputs ({src.output}); labels {labels.name}; calibration {len(calib)} faces")

    rep = normalize(calib.crops, spec)
    data = None
    if opts.eval:
        from .evaluate import load_eval_data

        data = _concat([load_eval_data(e, spec, cropped=opts.cropped, limit=opts.eval_limit, seed=opts.seed,
                                       labelset=labels) for e in opts.eval])
        say(f"eval data: {data.n} samples ({data.missed} faces missed by the detector)")

    keras_model = src.model if src.is_keras else None
    saved_dir = None if src.is_keras else src.path
    artifacts = [_build(keras_model, saved_dir, kind, rep, opts, pruned=False) for kind in ("float32", "dynamic", "int8")]
    notes: list[str] = []
    pruning: dict[str, Any] | None = None
    if opts.prune is not None:
        pruned, pruning, note = _pruned_artifacts(src, spec, labels, rep, opts)
        say(f"pruned to {pruning['overall_sparsity']:.1%} of prunable weights ({pruning['method']})")
        artifacts += pruned
        notes += [note] if note else []

    input_shape = (src.input_size, src.input_size, src.channels)
    for a in artifacts:
        if a.loads:
            a.metrics["latency_ms_1thread"] = latency = _latency(a, input_shape, opts.latency_runs)
            say(f"{a.name}: {a.size:,} bytes ({a.gz_size:,} gzipped), {latency:.3f} ms/face on 1 thread")
    deployable = [a for a in artifacts if a.kind == "int8" and a.loads]
    if not deployable:
        raise ConfigError("no int8 model passed the LiteRT load test: "
                          + "; ".join(f"{a.name}: {a.load_error}" for a in artifacts if not a.loads))
    deployed = deployable[-1]  # the pruned one when pruning
    _measure(artifacts, data, rep, spec, src.output, labels)

    calibration, conf = Calibration(), None
    if data is not None:
        calibration, conf = _fit_confidence(deployed, data, spec, src.output, labels, opts)
        if conf is not None:
            say(f"temperature {calibration.temperature:.3f} (valence ECE {calibration.ece_before:.2f}% -> "
                f"{calibration.ece_after:.2f}%), abstain below {calibration.abstain_threshold:.3f}")

    gate_passed, gate_msg = _gate(artifacts, deployed, data is not None, opts)
    say(gate_msg)
    metrics = _bundle_metrics(artifacts, deployed, data, pruning, gate_passed, gate_msg, conf, notes)
    bundle = _write(opts, src, labels, spec, calib, deployed, calibration, metrics)
    from .report import write_report

    write_report(bundle, metrics, artifacts, labels, conf)
    if opts.save_artifacts:
        (bundle / "artifacts").mkdir(exist_ok=True)
        for a in artifacts:
            (bundle / "artifacts" / f"{a.name}.tflite").write_bytes(a.data)
    log.info("convert finished in %.1f s", time.perf_counter() - t_start)
    return ConvertResult(bundle, deployed.name, artifacts, metrics, gate_passed, gate_msg, notes)


def _check_training_spec(model: str | Path, spec: PreprocessSpec) -> None:
    """A model that ``train`` made must be deployed with the preprocessing it was trained on."""
    from .ship import preprocess_mismatch, training_record

    record = training_record(model)
    if record and (diffs := preprocess_mismatch(record, spec)):
        raise ConfigError(
            f"{model} was trained on faces prepared otherwise than this bundle would prepare them "
            f"({'; '.join(diffs)}); build the calibration set with the training run's settings "
            f"(`emotion-edge calibrate ... --for` with those values; they are under 'preprocess' in "
            f"{Path(model).with_suffix('.json').name})")


def _pruned_artifacts(src: Any, spec: PreprocessSpec, labels: LabelSet, rep: np.ndarray,
                      opts: ConvertOptions) -> tuple[list[Artifact], dict[str, Any], str | None]:
    """Prune (fine-tuning on --finetune data if given); pruned float32 and int8 (sparse format if it loads)."""
    from .prune import prune_model

    train = None
    if opts.finetune:
        from .evaluate import load_eval_data

        ft = _concat([load_eval_data(f, spec, cropped=opts.cropped, seed=opts.seed, labelset=labels,
                                     limit=opts.finetune_limit) for f in opts.finetune])
        train = (normalize(ft.crops, spec), _train_targets(ft, labels))
    model, report = prune_model(src, opts.prune, train=train, epochs=opts.epochs, frequency=opts.prune_frequency,
                                batch_size=opts.batch_size, learning_rate=opts.finetune_lr, seed=opts.seed)
    out = [_build(model, None, "float32", rep, opts, pruned=True)]
    sparse = _build(model, None, "int8", rep, opts, pruned=True, sparse=True)
    if sparse.loads:
        return out + [sparse], report, None
    why = f"sparse int8 model failed the LiteRT load test ({sparse.load_error}); using the dense encoding"
    log.warning("%s", why)
    report["sparse_format"] = _sparse_info(sparse, rep.shape[1:], opts.latency_runs)
    return out + [_build(model, None, "int8", rep, opts, pruned=True)], report, why


def _sparse_info(sparse: Artifact, input_shape: tuple[int, ...], runs: int) -> dict[str, Any]:
    """What the sparse encoding would have given: size, and speed on LiteRT's builtin kernels (no XNNPACK)."""
    from .evaluate import latency_ms

    info: dict[str, Any] = {"bytes": sparse.size, "gzip_bytes": sparse.gz_size, "default_delegates_error": sparse.load_error}
    try:
        info["latency_ms_1thread_without_xnnpack"] = latency_ms(sparse.data, input_shape, runs=runs, use_xnnpack=False)
    except Exception as exc:  # also fails without XNNPACK: report, do not stop
        info["without_xnnpack_error"] = str(exc).splitlines()[0][:200]
    return info


def _measure(artifacts: list[Artifact], data: Any, rep: np.ndarray, spec: PreprocessSpec, output: str,
             labels: LabelSet) -> None:
    """Every loadable artifact on LiteRT on the same faces: agreement with float32, and scores with labels."""
    from .evaluate import agreement, run_tflite, score, to_probabilities

    x = normalize(data.crops, spec) if data is not None else rep
    probs = {a.name: to_probabilities(run_tflite(a.data, x), output) for a in artifacts if a.loads}
    ref = probs.get("float32")
    for a in artifacts:
        if a.name not in probs:
            continue
        if ref is not None and a.name != "float32":
            a.metrics.update(agreement(ref, probs[a.name]))
        if data is not None:
            a.metrics["scores"] = score(probs[a.name], data, labels).as_dict()


def _fit_confidence(deployed: Artifact, data: Any, spec: PreprocessSpec, output: str, labels: LabelSet,
                    opts: ConvertOptions) -> tuple[Calibration, dict[str, Any] | None]:
    from .confidence_fit import fit_confidence
    from .evaluate import run_tflite, score, to_probabilities

    raw = run_tflite(deployed.data, normalize(data.crops, spec))
    calibration, conf = fit_confidence(raw, output, data, labels, opts.abstain_rate, opts.seed)
    if conf is not None:
        # What the device reports: valence from temperature-scaled probabilities.
        with_t = score(to_probabilities(raw, output, calibration.temperature), data, labels,
                       calibration.abstain_threshold)
        conf["deployed_valence_accuracy_with_temperature"] = with_t.valence_accuracy
        if with_t.smile_accuracy is not None:  # positive vs not, "positive" as published (abstain applied)
            conf["deployed_smile_accuracy"] = with_t.smile_accuracy
    return calibration, conf


def _calibration_set(opts: ConvertOptions, src: Any, say: Status) -> Any:
    """``--calib`` is a calibration .npz, or a source to build one from (as ``calibrate`` would)."""
    from calibration.representative import build_calibration_set, load_calibration_set

    path = Path(opts.calib)
    if path.suffix == ".npz":
        return load_calibration_set(path)
    from calibration.spec import parse_spec

    from .ship import training_record

    # A model `train` made is calibrated (and deployed) with the crops it was trained on, unless told otherwise.
    record = training_record(opts.model)
    trained = PreprocessSpec.model_validate(record["preprocess"]) if record else PreprocessSpec()
    base = parse_spec(opts.calib_spec) if opts.calib_spec else trained
    spec = base.model_copy(update={"input_size": src.input_size, "color": "gray" if src.channels == 1 else "rgb",
                                   **({"scale": opts.scale} if opts.scale else {})})
    cs = build_calibration_set([path], spec, opts.calib_samples, cropped=opts.cropped, seed=opts.seed)  # type: ignore[arg-type]
    say(f"calibration set built from {path}: {len(cs)} faces {cs.manifest['counts_per_class']}")
    return cs


def _concat(parts: list) -> Any:
    from .evaluate_bundle import _concat as concat

    return concat(parts)


def _train_targets(data: Any, labels: LabelSet) -> np.ndarray:
    from .evaluate import truth_for

    t = truth_for(data.labels, labels)
    y = t.cls[data.face_index]
    if (y < 0).any():
        raise ConfigError("--finetune data must be labelled with the model's classes "
                          f"{list(labels.classes)} (valence-only or smile labels cannot train it)")
    return y


def _build(model: Any, saved_dir: Path | None, kind: str, rep: np.ndarray, opts: ConvertOptions,
           *, pruned: bool, sparse: bool = False) -> Artifact:
    from .quantize import load_test, to_tflite

    data = to_tflite(model, kind, representative=rep, io_type=opts.io, sparse=sparse,  # type: ignore[arg-type]
                     saved_model_dir=saved_dir)
    name = ("pruned_" if pruned else "") + kind
    lt = load_test(data, rep.shape[1:])
    if not lt.ok:
        log.warning("%s fails to load on %s: %s", name, lt.backend, lt.error)
    return Artifact(name, kind, pruned, data, sparse_format=sparse, loads=lt.ok, load_error=lt.error,
                    runtime=lt.backend)


def _latency(a: Artifact, input_shape: tuple[int, ...], runs: int) -> float:
    from .evaluate import latency_ms

    return latency_ms(a.data, input_shape, runs=runs)


def _gate(artifacts: list[Artifact], deployed: Artifact, have_data: bool, opts: ConvertOptions) -> tuple[bool | None, str]:
    """int8 (deployed) valence accuracy may not drop more than ``max_drop`` points below float32."""
    from .evaluate import Scores, headline

    if not have_data:
        return None, "accuracy gate skipped: no --eval data (agreement with float32 is in the report)"
    f = next(a for a in artifacts if a.name == "float32")
    if "scores" not in f.metrics:
        return None, f"accuracy gate skipped: the float32 reference failed the load test ({f.load_error})"
    fa = headline(Scores(**f.metrics["scores"]))
    da = headline(Scores(**deployed.metrics["scores"]))
    if fa is None or da is None:
        return None, "accuracy gate skipped: the eval data has no valence or smile labels"
    drop = round(fa - da, 2)
    ok = drop <= opts.max_drop
    msg = (f"gate {'passed' if ok else 'FAILED'}: {deployed.name} valence accuracy {da:.2f}% vs float32 {fa:.2f}% "
           f"(drop {drop:+.2f} points, limit {opts.max_drop:.2f})")
    return ok, msg


def _bundle_metrics(artifacts: list[Artifact], deployed: Artifact, data: Any, pruning: dict[str, Any] | None,
                    gate_passed: bool | None, gate_msg: str, conf: dict[str, Any] | None,
                    notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "deployed": deployed.name,
        "eval_data": None if data is None else {"source": data.source, "samples": data.n, "missed_faces": data.missed},
        "gate": {"passed": gate_passed, "message": gate_msg},
        "artifacts": {},
    }
    for a in artifacts:
        out["artifacts"][a.name] = {
            "bytes": a.size, "gzip_bytes": a.gz_size, "sparse_format": a.sparse_format,
            "loads_on_litert": a.loads, "load_error": a.load_error, "runtime": a.runtime, **a.metrics,
        }
    if pruning is not None:
        out["pruning"] = pruning
    if conf is not None:
        out["confidence"] = conf
    if notes:
        out["notes"] = notes
    return out


def _write(opts: ConvertOptions, src: Any, labels: LabelSet, spec: PreprocessSpec, calib: Any,
           deployed: Artifact, calibration: Calibration, metrics: dict[str, Any]) -> Path:
    import datetime as _dt
    import importlib.metadata as md

    from edge import __version__

    from .bundle_writer import write_bundle

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    bundle_id = opts.bundle_id or f"{src.path.stem}-{labels.name}-{deployed.name}"
    provenance = {
        "source_model": {"file": src.path.name, "framework": src.framework,
                         "sha256": sha256_file(src.path) if src.path.is_file() else None},
        "labels": labels.name,
        "calibration_set": {k: calib.manifest.get(k) for k in ("sources", "count", "counts_per_class",
                                                               "content_sha256")},
        "deployed_artifact": deployed.name,
        "io_type": opts.io,
        "sparsity": metrics.get("pruning", {}).get("overall_sparsity", 0.0),
        "versions": {"emotion-edge": __version__, **{p: version(p) for p in ("tensorflow", "tf-keras", "keras",
                                              "tensorflow-model-optimization", "ai-edge-litert")}},
        "converted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return write_bundle(
        opts.out, deployed.data, bundle_id=bundle_id, preprocess=spec, classes=list(labels.classes),
        valence=dict(labels.valence), output=src.output, calibration=calibration,
        provenance=provenance, metrics=metrics, include_detector=opts.include_detector,
    )


__all__ = ["ConvertOptions", "ConvertResult", "convert", "resolve_spec", "VALENCES"]
