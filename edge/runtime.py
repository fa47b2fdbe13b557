"""The TFLite interpreter wrapper.

Backends are tried in order: ``ai_edge_litert`` (LiteRT, preferred), then
``tflite_runtime`` (last release 2.14, numpy<2 only), then ``tf.lite`` (a
workstation with TensorFlow). Quantisation of inputs and outputs is driven by the
tensor metadata, so callers always speak float32.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import BundleError, RuntimeUnavailableError

log = logging.getLogger(__name__)

_BACKENDS: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite"),
)


def _interpreter_class(prefer: str | None = None) -> tuple[str, Callable[..., Any]]:
    """Return ``(backend_name, Interpreter class)`` for the first importable backend."""
    order = list(_BACKENDS)
    if prefer:
        order = [b for b in order if b[0] == prefer]
        if not order:
            names = ", ".join(b[0] for b in _BACKENDS)
            raise RuntimeUnavailableError(f"unknown runtime {prefer!r}; choose one of: {names}")
    errors = []
    for name, module in order:
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # ImportError, or numpy ABI errors from tflite_runtime
            errors.append(f"{name}: {exc.__class__.__name__}: {exc}")
            continue
        return name, mod.Interpreter
    raise RuntimeUnavailableError(
        "no TFLite runtime found; install one with `pip install ai-edge-litert` "
        "(or the [edge] extra). Tried: " + "; ".join(errors)
    )


def available_backend() -> str:
    """Name of the backend ``TFLiteModel`` would use here."""
    return _interpreter_class()[0]


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and affine quantisation of one model tensor."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in (np.int8, np.uint8) and self.scale > 0


def _info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        index=int(detail["index"]),
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
        scale=float(scale),
        zero_point=int(zero),
    )


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """float -> int: ``q = round(x / scale) + zero_point``, clipped to the dtype."""
    if not info.quantized:
        return x.astype(info.dtype, copy=False)
    lim = np.iinfo(info.dtype)
    q = np.round(x / info.scale) + info.zero_point
    return np.clip(q, lim.min, lim.max).astype(info.dtype)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    """int -> float: ``(q - zero_point) * scale``."""
    if not info.quantized:
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - info.zero_point) * info.scale


class TFLiteModel:
    """One loaded ``.tflite`` model with float-in, float-out ``run``.

    ``close()`` is idempotent and the object is a context manager.
    """

    def __init__(
        self,
        model: str | Path | bytes,
        num_threads: int = 1,
        backend: str | None = None,
        use_xnnpack: bool = True,
    ) -> None:
        self.backend, cls = _interpreter_class(backend)
        kwargs: dict[str, Any] = {"num_threads": max(1, int(num_threads))}
        if isinstance(model, (bytes, bytearray)):
            kwargs["model_content"] = bytes(model)
            label = "<bytes>"
        else:
            kwargs["model_path"] = str(model)
            label = str(model)
        if not use_xnnpack and self.backend != "tflite_runtime":
            # Sparse int8 models can fail on the default XNNPACK delegate.
            kwargs["experimental_op_resolver_type"] = _builtin_without_default_delegates(cls)
        try:
            with _quiet_native_stderr():
                self._interp = cls(**kwargs)
                self._interp.allocate_tensors()
        except Exception as exc:
            raise BundleError(
                f"cannot load TFLite model {label} with {self.backend}: {exc}. "
                "The file may be corrupt or need a newer runtime; rebuild it with `emotion-edge convert`."
            ) from None
        self.inputs = [_info(d) for d in self._interp.get_input_details()]
        self.outputs = [_info(d) for d in self._interp.get_output_details()]
        self.label = label
        self._closed = False

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    def set_batch(self, n: int) -> None:
        """Resize the first input's batch dimension (no-op if unchanged)."""
        if self.input.shape[0] == n:
            return
        shape = (n,) + self.input.shape[1:]
        self._interp.resize_tensor_input(self.input.index, shape)
        self._interp.allocate_tensors()
        self.inputs = [_info(d) for d in self._interp.get_input_details()]
        self.outputs = [_info(d) for d in self._interp.get_output_details()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on float input ``x`` (quantised as the model needs); return float outputs."""
        if x.shape[0] != self.input.shape[0]:
            self.set_batch(x.shape[0])
        self._interp.set_tensor(self.input.index, quantize(x, self.input))
        self._interp.invoke()
        return [dequantize(self._interp.get_tensor(o.index), o) for o in self.outputs]

    def run_raw(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on input already in the model's dtype; return raw outputs (copies)."""
        if x.shape[0] != self.input.shape[0]:
            self.set_batch(x.shape[0])
        self._interp.set_tensor(self.input.index, x)
        self._interp.invoke()
        return [self._interp.get_tensor(o.index).copy() for o in self.outputs]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._interp = None  # type: ignore[assignment]

    def __enter__(self) -> "TFLiteModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ runtime's "INFO: Created ... XNNPACK delegate" line.

    The native logger writes straight to fd 2 and ignores Python logging, so fd 2
    is pointed at /dev/null while the interpreter is built (unless debug logging
    is on). Load failures still surface as Python exceptions.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _builtin_without_default_delegates(cls: Any) -> Any:
    mod = importlib.import_module(cls.__module__)
    return mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
