"""TFLite conversion: float32, dynamic-range and full-integer int8 (one pure function per kind),
plus the load test every artifact must pass on the device runtime (LiteRT, default delegates).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.errors import ConfigError

log = logging.getLogger(__name__)

Kind = Literal["float32", "dynamic", "int8"]
IoType = Literal["int8", "uint8"]
KINDS: tuple[str, ...] = ("float32", "dynamic", "int8")


def to_tflite(
    model: Any,
    kind: Kind,
    *,
    representative: np.ndarray | None = None,
    io_type: IoType = "int8",
    sparse: bool = False,
    saved_model_dir: Path | None = None,
) -> bytes:
    """Convert a Keras (3 or tf-keras) model, or a SavedModel dir when ``model`` is None.

    ``int8``: full-integer ops and int8/uint8 input and output, ranges fitted on
    ``representative`` (float model inputs ``(N, S, S, C)``). ``sparse`` asks the
    converter to store pruned weights in sparse form (smaller file; the load test
    decides whether the device runtime can run it).
    """
    import tensorflow as tf

    if kind not in KINDS:
        raise ConfigError(f"unknown TFLite kind {kind!r}; choose one of {KINDS}")
    t0 = time.perf_counter()
    if model is not None:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    opts = []
    if kind in ("dynamic", "int8"):
        opts.append(tf.lite.Optimize.DEFAULT)
    if sparse:
        opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    conv.optimizations = opts
    if kind == "int8":
        if representative is None or len(representative) == 0:
            raise ConfigError("full-int8 conversion needs a calibration set (--calib)")
        rep = representative.astype(np.float32)

        def gen():
            for i in range(len(rep)):
                yield [rep[i : i + 1]]

        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = tf.int8 if io_type == "int8" else tf.uint8
        conv.inference_input_type = dtype
        conv.inference_output_type = dtype
    # Keras' exporter and the MLIR converter print to stdout/stderr (Python and C++);
    # library code must not, so their chatter goes to the debug log.
    with captured_output() as chatter, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            data = conv.convert()
        except Exception as exc:
            # The converter's message carries a whole MLIR dump: keep it for -vv only.
            log.debug("converter failed: %s", exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ConfigError(f"TFLite converter failed for the {kind} model: {first[:300]} "
                              "(run with -vv for the converter's full output)") from None
    if chatter:
        log.debug("converter output: %s", " | ".join(chatter))
    log.info("converted %s%s: %d bytes in %.1f s", kind, " (sparse)" if sparse else "", len(data),
             time.perf_counter() - t0)
    return bytes(data)


@contextlib.contextmanager
def captured_output() -> Any:
    """Capture fd 1 and 2 (C++ prints too) and Python's sys.stdout; yields the lines afterwards."""
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()) as py:
                yield lines
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace") + py.getvalue()
            lines.extend(ln for ln in text.splitlines() if ln.strip())


@dataclass(frozen=True)
class LoadTest:
    """Whether an artifact loads and runs on the device runtime with its default delegates."""

    ok: bool
    backend: str
    error: str | None = None


def load_test(tflite: bytes, input_shape: tuple[int, ...]) -> LoadTest:
    """Load ``tflite`` like the device does (``edge.runtime.TFLiteModel``, default delegates) and run it once."""
    from edge.runtime import TFLiteModel, available_backend

    backend = available_backend()
    try:
        with TFLiteModel(tflite, num_threads=1) as m:
            out = m.run(np.zeros((1,) + tuple(input_shape), np.float32))[0]
        if not np.all(np.isfinite(out)):
            return LoadTest(False, backend, "output is not finite")
    except Exception as exc:  # BundleError from loading, RuntimeError from invoke
        msg = str(exc).strip().splitlines()[0].split(". The file may be corrupt")[0]
        return LoadTest(False, backend, msg[:300])
    return LoadTest(True, backend)
