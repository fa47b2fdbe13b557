#!/usr/bin/env python3
"""Quantise a model made by `emotion-edge train` into the shipped default bundle and measure it.

    python scripts/ship_default_model.py runs/default/model.keras edge/models/default --data ../shared/data

Writes BUNDLE (classifier.tflite + bundle.json, no detector: resolved by sha256),
records the training run (seed, data, epochs) in bundle.json provenance, measures
the int8 bundle on data training never used (FER2013 val = PublicTest, the fixed
GENKI-4K held-out split through the full device path) plus 1-thread latency, stores
the figures in bundle.json metrics and writes BUNDLE/VALIDATION.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help=".keras model written by `emotion-edge train` (its .json next to it)")
    ap.add_argument("bundle", type=Path, help="bundle directory to write")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with fer2013/ and genki4k/")
    ap.add_argument("--id", default="fer7-edgenet-int8", help="bundle id (sent as `model` in every event)")
    ap.add_argument("--skip-quantize", action="store_true", help="measure an existing bundle only")
    args = ap.parse_args()

    from convert.heldout import classifier_latency_ms, fer_scores, genki_scores
    from convert.ship import preprocess_mismatch, ship, training_provenance, update_manifest
    from edge.bundle import load_bundle

    record = json.loads(args.model.with_suffix(".json").read_text())
    if not args.skip_quantize:
        ship(args.model, args.bundle, args.id, record)
        print(f"wrote {args.bundle}", flush=True)
    if diffs := preprocess_mismatch(record, load_bundle(args.bundle, require_detector=False).manifest.preprocess):
        print(f"error: {args.bundle} prepares faces unlike the training run ({'; '.join(diffs)}); rebuild the "
              "calibration set with `calibrate --for` matching the training crops, then convert again", file=sys.stderr)
        return 2
    fer = fer_scores(args.bundle, args.data / "fer2013" / "val")
    print(f"FER2013 val (PublicTest, {fer['n']} faces): 7-class {fer['class_accuracy']:.2f}%  "
          f"valence {fer['valence_accuracy']:.2f}%", flush=True)
    genki = genki_scores(args.bundle, args.data / "genki4k", record["data"].get("genki_test_fraction") or 0.3)
    print(f"GENKI-4K held-out split ({genki['n']} photos, {genki['missed']} faces missed = errors): "
          f"positive vs not {genki['smile_accuracy']:.2f}% (as published: {genki['uncertain']} uncertain count as "
          f"not positive; by the top valence alone {genki['smile_accuracy_argmax']:.2f}%)", flush=True)
    lat = classifier_latency_ms(args.bundle)
    print(f"int8 classifier latency, 1 thread: {lat:.3f} ms (median)", flush=True)
    size = (args.bundle / "classifier.tflite").stat().st_size
    metrics = {"fer2013_val": fer, "genki_heldout": genki, "latency_ms_1thread": lat, "classifier_bytes": size,
               "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    update_manifest(args.bundle, provenance={"training": training_provenance(record)}, metrics=metrics)
    write_validation(args.bundle, record, metrics)
    return 0


def _rows(hist: list[dict], stage: str) -> str:
    return "\n".join(
        f"| {stage} | {h['epoch']} | {h['seconds']:.0f} | {h['loss']:.4f} | {100 * h['train_acc']:.2f} | "
        f"{_pct(h['val_acc'])} | {_pct(h['val_valence_acc'])} |" for h in hist)


def _pct(v: float | None) -> str:
    """A val score as a percentage; "-" for an epoch between val watches (``train --val-every``)."""
    return "-" if v is None or math.isnan(v) else f"{100 * v:.2f}"


def _matrix(title: str, names: list[str], m: list[list[int]]) -> str:
    head = f"| {title} | " + " | ".join(names) + " | recall |\n|---|" + "---|" * (len(names) + 1) + "\n"
    body = "".join(f"| **{n}** | " + " | ".join(str(v) for v in row) + f" | {100 * row[i] / max(1, sum(row)):.1f}% |\n"
                   for i, (n, row) in enumerate(zip(names, m)))
    return head + body


def confusion_tables(fer: dict) -> str:
    """Markdown confusion matrices (rows: truth, columns: int8 prediction) of ``fer_scores`` output."""
    from convert.datasets import FER_CLASSES
    from edge.bundle import VALENCES

    out = ["FER2013 val confusion, int8 bundle as the device runs it (rows: truth, columns: prediction):", ""]
    if fer.get("confusion"):
        out += [_matrix("7-class", list(FER_CLASSES), fer["confusion"]), ""]
    out += [_matrix("valence", list(VALENCES), fer["valence_confusion"])]
    return "\n".join(out)


def _views(recipe: dict) -> str:
    views = ["the face crop"] + (["its mirror image"] if recipe.get("flip_tta", True) else [])
    if recipe.get("tta_zoom"):
        views.append(f"its centred zoom-in by {recipe['tta_zoom']:g}")
    return ", ".join(views)


def _genki_errors(g: dict) -> str:
    if "false_positives" not in g:
        return ""
    return (f" ({g['false_positives']} not smiling read as positive, "
            f"{g['false_negatives']} smiles missed)")


def _genki_rule(g: dict, abstain: float) -> str:
    """How "positive" was decided, and the figure by the top valence alone (reported until session 20)."""
    if g.get("decided_by") != "label":
        return "positive = the top valence probability"
    return (f"positive = the label the device publishes (top valence, at or above the abstain threshold "
            f"{abstain:.3f}; {g['uncertain']} photos `uncertain`, {g['uncertain_smiles']} of them smiling); by the "
            f"top valence alone {g['smile_accuracy_argmax']:.2f}% ({g['false_positives_argmax']} / "
            f"{g['false_negatives_argmax']})")


def _selection(record: dict) -> str:
    """How the shipped epoch was chosen (``train --export-epoch``; older records only know the best epoch)."""
    exported = record.get("exported") or {"rule": "best", "epoch": record["best"]["epoch"]}
    if exported["rule"] == "swa":
        first, last = exported["averaged"]
        return (f"The mean of the weights of epochs {first}-{last} (stochastic weight averaging) is shipped; FER2013 "
                "val was only watched, not used to pick an epoch")
    if exported["rule"] == "last":
        return (f"The last epoch (epoch {exported['epoch']} of the last stage) is shipped; FER2013 val was only "
                "watched, not used to pick an epoch")
    return f"FER2013 val was used only to pick the best epoch (epoch {exported['epoch']} of the last stage)"


def write_validation(bundle: Path, record: dict, m: dict) -> None:
    from convert.ship import base_record
    from edge.bundle import load_bundle

    r = record["recipe"]
    hist = record.get("history", [])
    abstain = load_bundle(bundle, require_detector=False).manifest.calibration.abstain_threshold
    base = base_record(record)
    rows = _rows(hist, "train")
    secs = [h["seconds"] for h in hist + (base["history"] if base else [])]
    stages = f"{len(hist)} epochs"
    total_s = sum(secs)
    if base is not None:
        rows = _rows(base["history"], "train") + "\n" + _rows(hist, "prune + fine-tune")
        kept = ", ".join(f"{k} channels" for k in record["init_from"]["pruned_kept"])
        stages = (f"{len(base['history'])} epochs ({base.get('params', 0):,} parameters), then structured pruning of "
                  f"residual inner widths ({kept}, largest BatchNorm |gamma| kept) and {len(hist)} fine-tuning epochs "
                  f"at lr {r['lr']:g}")
        if record.get("distill"):
            d = record["distill"]
            stages += (f", distilled from the unpruned model (soft-target weight {d['alpha']:g}, "
                       f"temperature {d['temperature']:g})")
    if r.get("peer_heads"):
        widths = ", ".join(str(w) for w in r["peer_heads"])
        stages += (f", with peer heads (inner widths {widths}; {record.get('params_training', 0):,} parameters in "
                   f"training) on the shared trunk, every head also learning the heads' mean (weight "
                   f"{r['peer_alpha']:g}, temperature {r['peer_temperature']:g}); only the own head is shipped")
    if r.get("swa_epochs") and record.get("swa"):
        w = record["swa"]
        stages += (f" ({r['epochs']} on the warm-up + cosine schedule, then {r['swa_epochs']} at a constant lr "
                   f"{w['lr']:g} whose end-of-epoch weights are averaged, BatchNorm statistics recomputed over "
                   f"{w['batchnorm_batches']} training batches")
        if w.get("val_acc") is not None:
            stages += (f"; the average scores {100 * w['val_acc']:.2f}% / {100 * w['val_valence_acc']:.2f}% on val "
                       "in float")
        stages += ")"
    eca = " with ECA channel attention (ECA-Net) on its residual branches" if r.get("eca") else ""
    level = ", rotated so the eye line is level" if (record.get("preprocess") or {}).get("align") else ""
    text = f"""# Validation report: {bundle.name} bundle

Int8 classifier `classifier.tflite` ({m['classifier_bytes']:,} bytes), measured {m['measured']}.
Produced by `scripts/build_default_model.sh` (see docs/training.md).

| figure | value | data |
|---|---|---|
| FER2013 7-class accuracy | {m['fer2013_val']['class_accuracy']:.2f}% | FER2013 val (PublicTest), {m['fer2013_val']['n']} faces |
| FER2013 valence accuracy (3-class) | {m['fer2013_val']['valence_accuracy']:.2f}% | same |
| GENKI-4K positive vs not, full device path | {m['genki_heldout']['smile_accuracy']:.2f}%{_genki_errors(m['genki_heldout'])} | held-out split, {m['genki_heldout']['n']} photos, {m['genki_heldout']['missed']} missed faces counted as errors; {_genki_rule(m['genki_heldout'], abstain)} |
| classifier latency, 1 thread | {m['latency_ms_1thread']:.3f} ms | median, this build machine |

Training: recipe `{r['name']}`{eca} ({record.get('params', 0):,} parameters shipped), {stages}, seed {record['seed']},
{record.get('precision')} on {record['host']['cpus']} CPU cores; FER2013 train ({record['data']['train_images']} faces)
+ GENKI-4K train split ({record['data']['genki_train_photos']} photos through BlazeFace -> crop_face{level}).
{_selection(record)}; GENKI's held-out split was never used in training.
Test-time views averaged in the classifier graph: {_views(r)}.
Training wall time: {total_s / 60:.0f} min ({len(secs)} epochs of {min(secs):.0f}-{max(secs):.0f} s each;
see the s column).

{confusion_tables(m['fer2013_val'])}

| stage | epoch | s | loss | train acc % | val 7-class % (float, as watched in training) | val valence % |
|---|---|---|---|---|---|---|
{rows}
"""
    (bundle / "VALIDATION.md").write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
