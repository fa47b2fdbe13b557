#!/usr/bin/env python3
"""An ESTIMATE of the per-frame model time on a Raspberry Pi 4 / Pi 5, from counted MACs.

    python scripts/estimate_pi_speed.py [BUNDLE]

Counts the multiply-accumulates of every convolution, depthwise convolution and
fully connected layer in the bundle's detector (BlazeFace) and classifier, and
divides them by an effective CPU throughput derived from a published Pi 4
measurement (below). It is an estimate, not a measurement: small models are
dominated by per-op overhead, memory traffic and the non-model stages, so read
it as "at least this long". The real figure comes from `emotion-edge bench` run
on the Pi itself (docs/raspberry-pi.md, "How fast is it on a Pi?").
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Published reference: MobileNet v1 1.0_224 (569 M MACs, Howard et al. 2017, table 8) ran in 87 ms
# on a Raspberry Pi 4 CPU with TensorFlow Lite ("MobileNet vs EfficientNet-Lite: Pi 4 First Model
# 38ms Gap", TildAlice, dev.to, 2026). That is 6.5 GMAC/s effective.
PI4_GMACS = 569e6 / 87e-3 / 1e9
# Raspberry Pi 5: Raspberry Pi Ltd quote "2-3x" the Pi 4's CPU performance (Pi 5 launch, 2023).
PI5_FACTOR = (2.0, 3.0)


def count_macs(model_path: Path) -> tuple[int, dict[str, int]]:
    """Total MACs of a .tflite file and the MACs per op type (conv / depthwise / fully connected)."""
    from edge.runtime import TFLiteModel  # noqa: F401  (makes sure a runtime is installed)

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]

    it = Interpreter(model_path=str(model_path))
    it.allocate_tensors()
    shape = {t["index"]: tuple(t["shape"]) for t in it.get_tensor_details()}
    per: dict[str, int] = {}
    for op in it._get_ops_details():  # the only API that lists ops
        name = op["op_name"]
        ins, outs = op["inputs"], op["outputs"]
        if name == "CONV_2D":
            n, h, w, c_out = shape[outs[0]]
            _, kh, kw, c_in = shape[ins[1]]
            macs = n * h * w * c_out * kh * kw * c_in
        elif name == "DEPTHWISE_CONV_2D":
            n, h, w, c_out = shape[outs[0]]
            _, kh, kw, _ = shape[ins[1]]
            macs = n * h * w * c_out * kh * kw
        elif name == "FULLY_CONNECTED":
            out_units, in_units = shape[ins[1]]
            batch = max(1, int(__import__("numpy").prod(shape[outs[0]])) // out_units)
            macs = batch * out_units * in_units
        else:
            continue
        per[name] = per.get(name, 0) + int(macs)
    return sum(per.values()), per


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from edge.bundle import load_bundle
    from edge.pipeline import default_bundle_path

    bundle = load_bundle(Path(sys.argv[1]) if len(sys.argv) > 1 else default_bundle_path())
    rows = []
    for stage, path in (("detector (BlazeFace)", bundle.detector_path), ("classifier (per face)", bundle.classifier_path)):
        total, per = count_macs(Path(path))
        rows.append((stage, total, per))
    print(f"bundle {bundle.id}: MACs counted from the .tflite files (conv, depthwise conv, fully connected)")
    print(f"throughput: Pi 4 {PI4_GMACS:.1f} GMAC/s effective (MobileNet v1 569 M MACs in 87 ms, published); "
          f"Pi 5 {PI5_FACTOR[0]:g}-{PI5_FACTOR[1]:g}x that (Raspberry Pi's claim)")
    print(f"{'stage':24} {'MMACs':>8} {'Pi 4 ms (est.)':>15} {'Pi 5 ms (est.)':>15}")
    for stage, total, _ in rows:
        pi4 = total / (PI4_GMACS * 1e9) * 1e3
        print(f"{stage:24} {total / 1e6:8.1f} {pi4:15.2f} {pi4 / PI5_FACTOR[1]:7.2f}-{pi4 / PI5_FACTOR[0]:.2f}")
    one = sum(t for _, t, _ in rows) / (PI4_GMACS * 1e9) * 1e3
    print(f"one face per frame, models only: Pi 4 ~{one:.1f} ms (ESTIMATE, a lower bound: per-op overhead, "
          "resize/crop, decoding and MQTT come on top); measure with `emotion-edge bench` on the Pi")
    return 0


if __name__ == "__main__":
    sys.exit(main())
