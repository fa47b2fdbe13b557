"""Validation report: ``report.md`` and ``report.html`` (same content) plus PNG plots, in the bundle.

Covers every artifact built (float32, dynamic-range, int8, and the pruned ones):
accuracy (class and valence), per-class recall, confusion matrices, agreement with
float32 and mean |delta prob|, size raw and gzipped, 1-thread latency on LiteRT,
pruning sparsity per layer, and confidence calibration (temperature, ECE, abstain).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import VALENCES

log = logging.getLogger(__name__)


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: list[list[str]] | None = None  # first row = header
    images: list[str] = field(default_factory=list)


def write_report(bundle: Path, metrics: dict[str, Any], artifacts: list[Any], labels: Any,
                 confidence: dict[str, Any] | None) -> dict[str, Path]:
    """Write report.md, report.html and plots into ``bundle``; return their paths."""
    sections = build_sections(bundle, metrics, artifacts, labels, confidence)
    title = f"Conversion report: {bundle.name}"
    md = render_markdown(title, sections)
    (bundle / "report.md").write_text(md)
    (bundle / "report.html").write_text(render_html(title, sections))
    log.info("wrote %s/report.md and report.html", bundle)
    return {"md": bundle / "report.md", "html": bundle / "report.html"}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}%" if pct else f"{v:.3f}"
    return str(v)


def build_sections(bundle: Path, metrics: dict[str, Any], artifacts: list[Any], labels: Any,
                   confidence: dict[str, Any] | None) -> list[Section]:
    arts = metrics["artifacts"]
    float_size = arts["float32"]["bytes"]
    out: list[Section] = []
    summary = Section("Summary")
    summary.paragraphs.append(f"Deployed classifier: **{metrics['deployed']}** (`classifier.tflite`). "
                              f"{metrics['gate']['message']}.")
    ev = metrics.get("eval_data")
    if ev:
        summary.paragraphs.append(f"Evaluated on {ev['samples']} held-out samples from `{ev['source']}`; "
                                  f"{ev['missed_faces']} faces missed by the detector count as errors.")
    else:
        summary.paragraphs.append("No --eval data given: accuracy is not measured; agreement with float32 is "
                                  "measured on the calibration faces.")
    for n in metrics.get("notes", []):
        summary.paragraphs.append(f"Note: {n}")
    out.append(summary)

    rows = [["artifact", "bytes", "gzip bytes", "x float32", "loads on LiteRT", "ms/face (1 thread)",
             "class acc", "valence acc", "smile acc", "agreement", "mean abs Δprob"]]
    for name, a in arts.items():
        s = a.get("scores") or {}
        rows.append([
            name + (" (sparse)" if a["sparse_format"] else ""), f"{a['bytes']:,}", f"{a['gzip_bytes']:,}",
            f"{a['bytes'] / float_size:.3f}", "yes" if a["loads_on_litert"] else f"NO: {a['load_error']}",
            _fmt(a.get("latency_ms_1thread")), _fmt(s.get("class_accuracy"), True),
            _fmt(s.get("valence_accuracy"), True), _fmt(s.get("smile_accuracy"), True),
            _fmt(a.get("agreement"), True) if name != "float32" else "-",
            _fmt(a.get("mean_abs_dprob")) if name != "float32" else "-",
        ])
    out.append(Section("Artifacts", ["Agreement: top-1 class agreement with float32 on the same faces."], rows))

    with_scores = [(n, a["scores"]) for n, a in arts.items() if a.get("scores")]
    if with_scores:
        recall = Section("Per-class recall")
        keys = list(labels.classes) if with_scores[0][1].get("class_recall") else []
        table = [["class"] + [n for n, _ in with_scores]]
        for c in keys:
            table.append([c] + [_fmt(s["class_recall"].get(c), True) for _, s in with_scores])
        for v in VALENCES:
            if any(v in s.get("valence_recall", {}) for _, s in with_scores):
                table.append([f"valence: {v}"] + [_fmt(s["valence_recall"].get(v), True) for _, s in with_scores])
        recall.table = table
        out.append(recall)
        cm = Section("Confusion matrices", ["Rows: truth; columns: prediction; 'missed': no face found."])
        for n, s in with_scores:
            if n in ("float32", "pruned_float32", metrics["deployed"]):
                cm.images += _confusion_plots(bundle, n, s, labels)
        out.append(cm)

    pr = metrics.get("pruning")
    if pr:
        sec = Section("Pruning", [
            f"Method: {pr['method']}. Target sparsity {pr['target']:.0%}; reached {pr['overall_sparsity']:.1%} "
            f"over prunable weights (measured on the final weights)."])
        sec.table = [["layer", "weights", "sparsity"]] + [
            [k, f"{v['weights']:,}", f"{v['sparsity']:.1%}"] for k, v in pr["layers"].items()]
        sf = pr.get("sparse_format")
        if sf:
            speed = (f"{sf['latency_ms_1thread_without_xnnpack']:.3f} ms/face on LiteRT's builtin kernels (XNNPACK off)"
                     if "latency_ms_1thread_without_xnnpack" in sf else f"not runnable: {sf.get('without_xnnpack_error')}")
            sec.paragraphs.append(
                f"Sparse encoding of the pruned int8 model: {sf['bytes']:,} bytes ({sf['gzip_bytes']:,} gzipped), {speed}; "
                f"it fails on the default delegates ({sf['default_delegates_error']}), so the bundle holds the dense "
                "encoding of the same pruned weights.")
        if pr.get("history"):
            sec.paragraphs.append("Fine-tuning: " + ", ".join(
                f"epoch {i + 1} loss {h['loss']:.3f} acc {100 * h['accuracy']:.1f}%" for i, h in enumerate(pr["history"])))
        out.append(sec)

    if confidence:
        c = confidence
        kept = (f"Temperature **{c['temperature']:.3f}** (minimises valence NLL on all {c['faces']} held-out faces; "
                f"cross-fitted valence NLL {c['valence_nll_before']:.4f} -> {c['valence_nll_after']:.4f})."
                if c["temperature_kept"] else
                f"Temperature kept at **1.0**: the fitted {c['temperature_fitted']:.3f} did not lower both cross-fitted "
                f"valence NLL ({c['valence_nll_before']:.4f} -> {c['valence_nll_after']:.4f}) and valence ECE "
                f"({c['valence_ece_before']:.2f}% -> {c['valence_ece_cross_fitted']:.2f}%).")
        sec = Section("Confidence calibration", [
            "Fitted with the deployed int8 model's outputs. Figures are cross-fitted (two halves, each scored "
            "with values fitted on the other). " + kept,
            f"Valence ECE {c['valence_ece_before']:.2f}% -> {c['valence_ece_after']:.2f}%"
            + (f"; 7-class ECE {c['class_ece_before']:.2f}% -> {c['class_ece_after']:.2f}%"
               if "class_ece_before" in c else "") + ".",
            f"Abstain threshold {c['abstain']['threshold']:.3f} on the top valence probability (the least confident "
            f"{c['abstain']['rate_requested']:.0%} abstain): answers {c['abstain']['coverage']:.1f}% of faces with "
            f"{c['abstain']['accuracy_answered']:.2f}% accuracy (all faces: {c['abstain']['accuracy_all']:.2f}%).",
        ])
        if c.get("deployed_valence_accuracy_with_temperature") is not None:
            sec.paragraphs.append(
                "Valence accuracy of the deployed model as the device computes it (temperature applied, no "
                f"abstain): {c['deployed_valence_accuracy_with_temperature']:.2f}%.")
        if c.get("deployed_smile_accuracy") is not None:
            sec.paragraphs.append(
                "Positive-vs-not (smile) accuracy of the deployed model as the device publishes it (temperature "
                f"and abstain threshold applied; `uncertain` is not positive): {c['deployed_smile_accuracy']:.2f}%. "
                "The artifact table's smile column takes the top valence, before the threshold is fitted.")
        sec.images.append(_reliability_plot(bundle, c))
        out.append(sec)
    return out


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _matrix_plot(path: Path, m: np.ndarray, rows: list[str], cols: list[str], title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 0.8 + 0.5 * len(rows)), dpi=100)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _confusion_plots(bundle: Path, name: str, s: dict[str, Any], labels: Any) -> list[str]:
    files = []
    if s.get("class_confusion"):
        f = f"confusion_{name}_classes.png"
        _matrix_plot(bundle / f, np.array(s["class_confusion"]), list(labels.classes),
                     list(labels.classes) + ["missed"], f"{name}: classes")
        files.append(f)
    if s.get("valence_confusion"):
        f = f"confusion_{name}_valence.png"
        _matrix_plot(bundle / f, np.array(s["valence_confusion"]), list(VALENCES), list(VALENCES) + ["missed"],
                     f"{name}: valence")
        files.append(f)
    return files


def _reliability_plot(bundle: Path, c: dict[str, Any]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for key, label in (("reliability_before", "before"), ("reliability_after", f"T={c['temperature']:.2f}")):
        conf, acc, _ = (np.array(v, float) for v in c[key])
        ok = ~np.isnan(conf)
        ax.plot(conf[ok], acc[ok], "o-", label=label)
    ax.set_xlabel("top valence probability")
    ax.set_ylabel("accuracy")
    ax.set_title("Valence reliability (cross-fitted)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    f = "reliability.png"
    fig.savefig(bundle / f)
    plt.close(fig)
    return f


def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        if s.table:
            lines.append("| " + " | ".join(s.table[0]) + " |")
            lines.append("|" + "---|" * len(s.table[0]))
            lines += ["| " + " | ".join(r) + " |" for r in s.table[1:]]
            lines.append("")
        for img in s.images:
            lines += [f"![{img}]({img})", ""]
    return "\n".join(lines)


def render_html(title: str, sections: list[Section]) -> str:
    def inline(text: str) -> str:
        # The only markdown used in paragraphs: **bold** and `code`.
        t = html.escape(text)
        parts = t.split("**")
        t = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
        parts = t.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [f"<p>{inline(p)}</p>" for p in s.paragraphs]
        if s.table:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in s.table[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in s.table[1:])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        body += [f'<img src="{html.escape(i)}" alt="{html.escape(i)}">' for i in s.images]
    style = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
             "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{margin:.5em;"
             "vertical-align:top}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
