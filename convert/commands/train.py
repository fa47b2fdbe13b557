"""``emotion-edge train``: train a valence classifier from scratch (workstation, TensorFlow)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

DEFAULT_MARGIN = 0.15
DEFAULT_SHIFT_Y = -0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Keep this cheap: no TensorFlow import here.
    from convert.datasets import GENKI_DETECTORS
    from convert.recipes import DEFAULT_RECIPE, RECIPES

    parser.add_argument("--data", required=True, type=Path,
                        help="folder with train/<class>/*.jpg (and val/<class>/ for model selection), FER2013 layout")
    parser.add_argument("--genki", type=Path, help="GENKI-4K folder (files/, labels.csv): smile photos as extra "
                        "positive / not-positive signal, through the device crop path; its fixed test part is never used")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES), help="model + hyper-parameters")
    parser.add_argument("--out", required=True, type=Path, help="output .keras model (softmax, device-ready)")
    parser.add_argument("--workdir", type=Path, help="checkpoints + state.json (default: OUT without suffix + .work)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --workdir from its last epoch")
    parser.add_argument("--head", choices=["fer7", "valence3"], help="fer7: 7 FER classes summed per valence on "
                        "the device (default); valence3: positive/neutral/negative learned directly")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    parser.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    parser.add_argument("--optimizer", choices=["adamw", "sgd"],
                        help="override the recipe's optimizer (sgd: momentum 0.9, Nesterov); each wants its own --lr "
                             "and --weight-decay (edgenet: sgd 0.1 and 5e-4, adamw 2e-3 and 0.02)")
    parser.add_argument("--weight-decay", type=float, metavar="WD",
                        help="override the recipe's weight decay (per step: lr * WD * weight; edgenet: 5e-4 with SGD)")
    parser.add_argument("--class-weighting", choices=["none", "balanced", "sqrt"], help="loss weights per class")
    parser.add_argument("--label-smoothing", type=float, help="override the recipe's label smoothing")
    parser.add_argument("--genki-weight", type=float, metavar="W",
                        help="loss weight of a GENKI photo relative to a FER image (edgenet: 2)")
    parser.add_argument("--genki-detector", choices=GENKI_DETECTORS, default=GENKI_DETECTORS[0],
                        help="find GENKI faces as the daemon does on video (score 0.5, the default) or as analyze does "
                        "on photos and the held-out GENKI figure is scored (score 0.6, zoom on a miss)")
    parser.add_argument("--dropout", type=float, help="override the recipe's dropout before the logits")
    parser.add_argument("--spatial-dropout", type=float, help="override the recipe's SpatialDropout2D rate")
    parser.add_argument("--erase", type=float, metavar="P",
                        help="random erasing: with probability P one rectangle (2-25 %% of the crop) of each training "
                        "image becomes noise (AugmentSpec.erase; default 0, off)")
    parser.add_argument("--no-flip-tta", action="store_true", help="do not bake mirror-averaging into the export")
    parser.add_argument("--stem-convs", type=int, metavar="N",
                        help="edgenet: 3x3 convolutions at full resolution before the first pooling (default 1)")
    parser.add_argument("--eca", action="store_true",
                        help="edgenet: efficient channel attention (ECA-Net) on every residual branch (a few weights "
                             "per block)")
    parser.add_argument("--tta-zoom", type=float, metavar="F",
                        help="also average a centred zoom-in by F (e.g. 1.1) at export; off by default: each view "
                             "costs one more pass of the classifier")
    parser.add_argument("--seed", type=int, default=1234, help="seed for weights, shuffling and augmentation")
    parser.add_argument("--precision", choices=["auto", "float32", "mixed_bfloat16"], default="auto",
                        help="auto: bfloat16 where the CPU has AMX/AVX512-BF16 (about 2x faster), else float32")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0 = all cores)")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                        help="crop margin around the BlazeFace box (PreprocessSpec.margin) for photos")
    parser.add_argument("--shift-y", type=float, default=DEFAULT_SHIFT_Y,
                        help="crop centre shift, fraction of the side (PreprocessSpec.shift_y)")
    parser.add_argument("--align", action="store_true",
                        help="rotate photo crops so the eye line is level (PreprocessSpec.align, BlazeFace eye "
                        "keypoints); the bundle must crop the same way: calibrate --for ...,align=true")
    parser.add_argument("--init-from", type=Path, help="start from a checkpoint (best.keras of a run); with "
                        "--mid-channels, structured pruning: keep the strongest channels, then fine-tune")
    parser.add_argument("--mid-channels", type=lambda v: tuple(int(c) for c in v.split(",")),
                        help="edgenet: inner widths of the 4 residual blocks, e.g. 64,128,96,128")
    parser.add_argument("--peer-heads", type=lambda v: tuple(int(c) for c in v.split(",")), metavar="W,W",
                        help="edgenet: train peer heads (copies of the last residual block + classifier with these "
                        "inner widths, e.g. 192,192) on the shared trunk; every head also learns the heads' average "
                        "(on-the-fly native ensemble). Only the model's own head is exported: same size and latency")
    parser.add_argument("--peer-alpha", type=float, metavar="A",
                        help="with --peer-heads: weight of the ensemble's soft targets in the loss (default 0.5)")
    parser.add_argument("--peer-temperature", type=float, metavar="T",
                        help="with --peer-heads: softmax temperature of that term (default 3)")
    parser.add_argument("--distill-from", type=Path, metavar="TEACHER",
                        help="knowledge distillation: also learn the soft targets of this trained model (a "
                        "training checkpoint, RUN.work/last.keras), e.g. the unpruned model while fine-tuning a "
                        "pruned one")
    parser.add_argument("--distill-alpha", type=float, metavar="A",
                        help="with --distill-from: weight of the teacher's soft targets in the loss (0-1; default 0.5)")
    parser.add_argument("--distill-temperature", type=float, metavar="T",
                        help="with --distill-from: softmax temperature of the distillation term (default 2)")
    parser.add_argument("--warmup-epochs", type=float, help="override the recipe's warm-up")
    parser.add_argument("--swa-epochs", type=int, metavar="N",
                        help="stochastic weight averaging: after the cosine schedule, train N more epochs at a constant "
                        "--swa-lr and export the mean of their weights (BatchNorm statistics recomputed). Add it to a "
                        "finished run with --resume: it trains as if planned from the start")
    parser.add_argument("--swa-lr", type=float, metavar="LR",
                        help="with --swa-epochs: the constant learning rate of that phase (default 0.15 x --lr)")
    parser.add_argument("--export-epoch", choices=["best", "last", "swa"],
                        help="which weights OUT holds: best (highest val score; the default without SWA), last (val "
                        "only watched) or swa (the weight average; the default with --swa-epochs)")
    parser.add_argument("--val-every", type=int, default=1, metavar="N",
                        help="score val after every N-th epoch only (and after the cosine phase's last epoch and the "
                        "run's last); the epochs between show 'val -' and are never the best. Scoring does not touch "
                        "training: the weights are the same for any N (default 1)")
    parser.add_argument("--max-train", type=int, default=0, help="use only N training images (smoke tests)")


def _distillation(args: argparse.Namespace):
    from convert.train import Distillation
    from edge.errors import ConfigError

    if args.distill_from is None:
        if args.distill_alpha is not None or args.distill_temperature is not None:
            raise ConfigError("--distill-alpha / --distill-temperature need --distill-from TEACHER")
        return None
    settings = {"alpha": args.distill_alpha, "temperature": args.distill_temperature}
    return Distillation(args.distill_from, **{k: v for k, v in settings.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from convert.recipes import get_recipe
    from convert.train import TrainConfig, train
    from edge.errors import ConfigError
    from edge.preprocess import PreprocessSpec

    if args.peer_heads is None and (args.peer_alpha is not None or args.peer_temperature is not None):
        raise ConfigError("--peer-alpha / --peer-temperature need --peer-heads W,W")
    if not args.swa_epochs and args.swa_lr is not None:
        raise ConfigError("--swa-lr needs --swa-epochs N")

    recipe = get_recipe(
        args.recipe, head=args.head, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, weight_decay=args.weight_decay,
        class_weighting=args.class_weighting, label_smoothing=args.label_smoothing, genki_weight=args.genki_weight,
        dropout=args.dropout, spatial_dropout=args.spatial_dropout,
        flip_tta=False if args.no_flip_tta else None, tta_zoom=args.tta_zoom, stem_convs=args.stem_convs,
        eca=args.eca or None,
        mid_channels=args.mid_channels, peer_heads=args.peer_heads, peer_alpha=args.peer_alpha,
        peer_temperature=args.peer_temperature,
        warmup_epochs=args.warmup_epochs, swa_epochs=args.swa_epochs, swa_lr=args.swa_lr,
        augment=None if args.erase is None else {"erase": args.erase},
    )
    spec = PreprocessSpec(input_size=recipe.input_size, color="gray", scale="zero_one",
                          margin=args.margin, shift_y=args.shift_y, align=args.align)
    cfg = TrainConfig(data=args.data, out=args.out, recipe=recipe, preprocess=spec, genki=args.genki,
                      genki_detector=args.genki_detector,
                      workdir=args.workdir, seed=args.seed, resume=args.resume, threads=args.threads,
                      max_train=args.max_train, precision=args.precision, init_from=args.init_from,
                      val_every=args.val_every,
                      distill=_distillation(args),
                      export_epoch=args.export_epoch or ("swa" if recipe.swa_epochs else "best"))

    def progress(e) -> None:
        star = " *" if e.best else ""
        v = "val -       valence -     " if math.isnan(e.val_valence_acc) else \
            f"val {e.val_acc:.4f}  valence {e.val_valence_acc:.4f}"
        print(f"epoch {e.epoch:3d}/{e.epochs}  {e.seconds:6.1f}s  loss {e.loss:.4f}  train {e.train_acc:.4f}  "
              f"{v}  lr {e.lr:.2e}{star}", flush=True)

    swa = f" + {recipe.swa_epochs} averaged at lr {recipe.swa_learning_rate:g}" if recipe.swa_epochs else ""
    print(f"training {recipe.name} for {recipe.epochs}{swa} epochs, seed {args.seed}, work folder {cfg.work}",
          flush=True)
    record = train(cfg, progress)
    best = record["best"] or {}
    print(json.dumps({"out": str(args.out), "best": best, "swa": record.get("swa"), "params": record.get("params"),
                      "precision": record.get("precision")}), file=sys.stdout)
    return 0
