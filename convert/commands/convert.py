"""``emotion-edge convert MODEL --labels PRESET --calib calib.npz --out BUNDLE``:
(pruned) full-int8 TFLite, load-tested on LiteRT, validated, gated, bundled with a report."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Keras 3 .keras, legacy Keras 2 .h5, or a SavedModel directory")
    parser.add_argument("--labels", required=True, metavar="PRESET|FILE",
                        help="fer7, affectnet8, valence3, smile2, or a .json label file")
    parser.add_argument("--calib", required=True, metavar="NPZ|SOURCE",
                        help="calibration set from `emotion-edge calibrate`, or a source to build one from")
    parser.add_argument("--calib-spec", default=None, metavar="SPEC",
                        help="crop geometry when --calib is a source, as `calibrate --for` (e.g. 'margin=0.15'); "
                        "default: the training run's (MODEL.json from `train`), else the plain spec")
    parser.add_argument("--calib-samples", type=int, default=500, metavar="N",
                        help="faces to sample when --calib is a source (default 500)")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle directory to write")
    parser.add_argument("--eval", action="append", default=[], metavar="DATA",
                        help="held-out labelled data (class folders, labels.csv); repeatable. Enables the gate")
    parser.add_argument("--eval-limit", type=int, default=None, metavar="N",
                        help="use a class-balanced subset of N eval samples")
    parser.add_argument("--cropped", dest="cropped", action="store_const", const="yes", default="auto",
                        help="eval/fine-tune images are face crops (default: small square images are)")
    parser.add_argument("--photos", dest="cropped", action="store_const", const="no",
                        help="eval/fine-tune images are photos: find faces with the detector")
    g = parser.add_argument_group("pruning")
    g.add_argument("--prune", type=float, default=None, metavar="SPARSITY", help="magnitude pruning, e.g. 0.5")
    g.add_argument("--finetune", action="append", default=[], metavar="DATA",
                   help="labelled training data for pruning with fine-tuning (else one-shot pruning)")
    g.add_argument("--finetune-limit", type=int, default=None, metavar="N",
                   help="fine-tune on a class-balanced subset of N faces (default: all)")
    g.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default 2)")
    g.add_argument("--prune-frequency", type=int, default=20, metavar="STEPS",
                   help="steps between pruning-mask updates (default 20)")
    g.add_argument("--lr", type=float, default=2e-4, help="fine-tuning learning rate (default 2e-4)")
    g.add_argument("--batch-size", type=int, default=64)
    q = parser.add_argument_group("model input (preprocessing outside the model)")
    q.add_argument("--input-size", type=int, default=None, help="declare the input side; must match the model")
    q.add_argument("--color", choices=("gray", "rgb"), default=None, help="declare the input colour")
    q.add_argument("--scale", choices=("zero_one", "minus1to1", "raw255"), default=None,
                   help="pixel normalisation the model expects (default: the calibration spec's, zero_one)")
    q.add_argument("--io", choices=("int8", "uint8"), default="int8", help="int8 model input/output type")
    gate = parser.add_argument_group("gate and calibration")
    gate.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                      help="fail when int8 valence accuracy is more than this below float32 (default 1.0)")
    gate.add_argument("--no-gate", action="store_true", help="report the drop but exit 0 anyway")
    gate.add_argument("--abstain-rate", type=float, default=0.1,
                      help="fraction of least-confident held-out faces to abstain on (default 0.1)")
    parser.add_argument("--id", dest="bundle_id", default=None, help="bundle id (default: from the model name)")
    parser.add_argument("--no-detector", action="store_true",
                        help="leave detector.tflite out (the device resolves it by sha256)")
    parser.add_argument("--latency-runs", type=int, default=200, help="timed runs per artifact (median reported)")
    parser.add_argument("--save-artifacts", action="store_true",
                        help="also write every TFLite variant to BUNDLE/artifacts/ (for benchmarking)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from convert.build import ConvertOptions, convert

    opts = ConvertOptions(
        model=Path(args.model), labels=args.labels, calib=Path(args.calib), out=Path(args.out), eval=args.eval,
        calib_spec=args.calib_spec, calib_samples=args.calib_samples,
        eval_limit=args.eval_limit, cropped=args.cropped, prune=args.prune, finetune=args.finetune,
        finetune_limit=args.finetune_limit,
        epochs=args.epochs, prune_frequency=args.prune_frequency, finetune_lr=args.lr, batch_size=args.batch_size,
        io=args.io, input_size=args.input_size, color=args.color, scale=args.scale, max_drop=args.max_drop,
        gate=not args.no_gate, abstain_rate=args.abstain_rate, bundle_id=args.bundle_id,
        include_detector=not args.no_detector, latency_runs=args.latency_runs, save_artifacts=args.save_artifacts,
    )
    result = convert(opts, status=lambda msg: print(msg, flush=True))
    print(f"bundle {result.bundle} ({result.deployed}); report {result.bundle / 'report.html'}")
    if result.gate_passed is False:
        if opts.gate:
            print(f"emotion-edge convert: error: {result.gate_message} (bundle kept for inspection; "
                  "--max-drop or --no-gate to accept)", file=sys.stderr)
            return 6
    return 0
