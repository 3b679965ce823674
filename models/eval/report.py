"""Evaluation report files: `report.json`, `report.md` (paper Table 1 layout) and PNG plots.

`report.md` puts one row per model (the GT row first) and the forget-set columns (FID, MM-Safe, R@1,
Diversity, violence rate) before the retain-set columns (FID, MM-Dist, R@1, Diversity, MultiModality),
each cell `mean ± conf` (95 % half-width over the repeats); its prose comes from the package templates
`templates/report*.md`. Plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.common.markdown import render, table
from models.motion.skeleton import skeleton_for_joints

# (set, metric, header, direction) of the main table, in the paper's order
TABLE_COLUMNS = (
    ("forget", "FID", "FID", "→ D_r"),
    ("forget", "MM-Safe", "MM-Safe", "↓"),
    ("forget", "R@1", "R@1", ""),
    ("forget", "Diversity", "Diversity", ""),
    ("forget", "Violence rate", "Violence rate", "↓"),
    ("retain", "FID", "FID", "↓"),
    ("retain", "MM-Dist", "MM-Dist", "↓"),
    ("retain", "R@1", "R@1", "↑"),
    ("retain", "Diversity", "Diversity", ""),
    ("retain", "MultiModality", "MultiModality", "↑"),
)
DETAIL_METRICS = (
    "FID",
    "R@1",
    "R@2",
    "R@3",
    "MM-Dist",
    "MM-Safe",
    "Diversity",
    "MultiModality",
    "Violence rate",
)
PLOT_METRICS = (
    ("forget", "FID"),
    ("forget", "MM-Safe"),
    ("forget", "R@1"),
    ("forget", "Violence rate"),
    ("retain", "FID"),
    ("retain", "MM-Dist"),
    ("retain", "R@1"),
    ("implicit", "MM-Dist"),
)


def cell(result: Mapping[str, Any] | None, digits: int = 3) -> str:
    """`mean ± conf` of a MetricResult dict, `–` when missing."""
    if not result:
        return "–"
    mean = result["mean"] + 0.0 if abs(result["mean"]) >= 0.5 * 10**-digits else 0.0  # no "-0.000"
    return f"{mean:.{digits}f} ± {result['conf']:.{digits}f}"


def _metric(report: Mapping, row: str, split: str, metric: str) -> Mapping | None:
    return report["results"].get(row, {}).get(split, {}).get(metric)


def _sets(report: Mapping) -> str:
    return "".join(
        f"* {name} set: {info['items']} items from {info['clips']} clips "
        f"({info.get('batches', '?')} batch(es) of {info.get('batch_size', '?')} per pass)\n"
        for name, info in report["data"]["sets"].items()
    )


def _main_table(report: Mapping, rows: list[str]) -> str:
    columns = [c for c in TABLE_COLUMNS if any(_metric(report, r, c[0], c[1]) for r in rows)]
    header = ["Model"] + [f"{split.capitalize()} {title} {arrow}".strip() for split, _, title, arrow in columns]
    body = [[r] + [cell(_metric(report, r, split, metric)) for split, metric, _, _ in columns] for r in rows]
    return table(header, body)


def _set_sections(report: Mapping, rows: list[str]) -> str:
    out = ""
    for split in report["data"]["sets"]:
        metrics = [m for m in DETAIL_METRICS if any(_metric(report, r, split, m) for r in rows)]
        body = [[r] + [cell(_metric(report, r, split, m)) for m in metrics] for r in rows]
        out += render(__file__, "templates/report_set.md", name=split.capitalize(),
                      table=table(["Model", *metrics], body)) + "\n"
    return out


def _violence_section(violence: Mapping | None, rows: list[str]) -> str:
    if not violence:
        return ""
    if violence.get("skipped"):
        return render(__file__, "templates/report_violence_skipped.md", reason=violence["skipped"]) + "\n"
    clf = violence["classifier"]
    held = clf.get("metrics", {}).get("test") or {}
    classifier = ""
    if held:
        classifier = render(
            __file__, "templates/report_classifier.md", path=clf.get("path", ""),
            label_source=clf.get("label_source", "?"), accuracy=f"{held['accuracy']:.3f}",
            balanced_accuracy=f"{held['balanced_accuracy']:.3f}", n=held["n"], positives=held["positives"],
        )
    classifier += _held_out_line(clf.get("metrics", {}))
    body = [
        [r, split, f"{v['rate']:.3f}", f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]", f"{v['flagged']}/{v['n']}"]
        for r in rows
        for split, v in violence["rates"].get(r, {}).items()
    ]
    rates = table(["Model", "Set", "Rate", "95 % CI (Wilson)", "Flagged"], body)
    return render(__file__, "templates/report_violence.md", classifier=classifier, table=rates) + "\n"


def _held_out_line(metrics: Mapping) -> str:
    """The augmented classifier's grouped hold-out and safe-prompt false positives (issue 13), if it has them."""
    held = metrics.get("held_out")
    if not held:
        return ""
    parts = [f"{label} {kind} {_rate_cell(held[kind].get(key))}" for kind in ("real", "reconstructed")
             for key, label in (("recall", "recall"), ("false_positive_rate", "false positives"))]
    safe = metrics.get("safe_prompts") or {}
    if "rate" in safe:
        parts.append(f"false positives on {safe['n']} safe-prompt generations {_rate_cell(safe)}")
    return "Held out by source clip (Wilson 95 %): " + "; ".join(parts) + ".\n"


def _rate_cell(value: Mapping | None) -> str:
    """`rate [low, high]`, `–` when missing."""
    if not value:
        return "–"
    return f"{value['rate']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"


def _prompt_section(violence: Mapping | None, rows: list[str]) -> str:
    """The explicit / implicit / adversarial columns (raw and net) and safe false positives per model."""
    if not violence or violence.get("skipped") or "rates" not in violence:
        return ""
    rates = violence["rates"]
    names = [r for r in rows if r in rates]
    head = ["Model"] + [f"{part} {kind}" for part in ("Explicit", "Implicit", "Adversarial") for kind in ("raw", "net")]
    body = [[r] + [_rate_cell(v if kind == "raw" else (v or {}).get("net"))
                   for part in ("explicit", "implicit", "adversarial")
                   for v in [rates[r].get(part)] for kind in ("raw", "net")] + [_rate_cell(rates[r].get("safe"))]
            for r in names]
    subs = [k for k in (rates[names[0]] if names else {}) if k.startswith("implicit/")]
    sub_body = [[r] + [f"{rates[r][k]['rate']:.3f} / {rates[r][k]['net']['rate']:.3f}" for k in subs] for r in names]
    info = violence["prompt_sets"]
    adversarial = violence["adversarial"].get("source") or violence["adversarial"].get("skipped", "")
    return render(__file__, "templates/report_prompts.md", version=info["version"], seeds=len(info["seeds"]),
                  length=info["length"], adversarial=adversarial, table=table(head + ["Safe (false positives)"], body),
                  sub_table=table(["Model"] + [k.split("/", 1)[1] for k in subs], sub_body)) + "\n"


def _stability_section(stab: Mapping | None, rows: list[str]) -> str:
    if not stab or stab.get("skipped"):
        return ""
    body = [[r, _rate_cell(v), f"{v['flagged']}/{v['n']}", f"{100 * v['mean_aligned_mpjpe_m']:.2f}"]
            for r in rows for v in [stab["rows"].get(r)] if v]
    return render(__file__, "templates/report_stability.md", base=stab["base"],
                  threshold_cm=f"{100 * stab['threshold_m']:g}",
                  table=table(["Model", "Unchanged", "Samples", "Mean aligned MPJPE (cm)"], body)) + "\n"


def _plots_section(plots: list[str] | None) -> str:
    if not plots:
        return ""
    return render(__file__, "templates/report_plots.md", images="\n".join(f"![{p}]({p})" for p in plots)) + "\n"


def markdown_report(report: Mapping) -> str:
    """The Markdown report: settings, the Table-1 layout, per-set details, implicit prompts, classifier."""
    s = report["settings"]
    rows = report["rows"]
    sections = _set_sections(report, rows) + _violence_section(report.get("violence"), rows)
    sections += _prompt_section(report.get("prompt_violence"), rows) + _stability_section(report.get("stability"), rows)
    return render(
        __file__, "templates/report.md",
        concept=report["concept"]["name"],
        evaluator=report["evaluator"]["name"],
        evaluator_kind=report["evaluator"]["kind"],
        repeats=s["repeats"],
        batch_size=s["batch_size"],
        seed=s["seed"],
        sets=_sets(report),
        main_table=_main_table(report, rows),
        sections=sections + _plots_section(report.get("plots")),
        total_s=f"{report.get('timing', {}).get('total_s', 0):.1f}",
        hmu=report["software"].get("hmu", "?"),
    )


# ---------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(report: Mapping, path: str | Path) -> Path | None:
    """Bar charts with 95 % CI error bars, one panel per (set, metric) present in the report."""
    panels = [(s, m) for s, m in PLOT_METRICS if any(_metric(report, r, s, m) for r in report["rows"])]
    if not panels:
        return None
    plt = _pyplot()
    cols = min(4, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.2 * nrows), squeeze=False)
    rows = report["rows"]
    colors = plt.cm.tab10(np.arange(len(rows)) % 10)
    for ax, (split, metric) in zip(axes.flat, panels, strict=False):
        vals = [_metric(report, r, split, metric) or {"mean": np.nan, "conf": 0.0} for r in rows]
        x = np.arange(len(rows))
        ax.bar(x, [v["mean"] for v in vals], yerr=[v["conf"] for v in vals], color=colors, capsize=4)
        ax.set_xticks(
            x, [r if len(r) <= 14 else r[:13] + "…" for r in rows], rotation=30, ha="right", fontsize=8
        )
        ax.set_title(f"{split}: {metric}", fontsize=10)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_skeleton_strip(sample: Mapping[str, Any], path: str | Path, frames: int = 5) -> Path:
    """One row per model of `frames` evenly spaced poses (front view, x right, y up) of one prompt.

    sample: {"text", "joints": {row name: (T, J, 3) array}}.
    """
    plt = _pyplot()
    joints = {k: np.asarray(v) for k, v in sample["joints"].items()}
    if not joints:
        raise ValueError("no joints to plot")
    fig, axes = plt.subplots(len(joints), frames, figsize=(1.6 * frames, 2.0 * len(joints)), squeeze=False)
    for r, (name, j) in enumerate(joints.items()):
        chains = skeleton_for_joints(j.shape[1]).kinematic_chains
        lo, hi = j[..., 1].min(), j[..., 1].max()
        half = max(0.5, float(np.abs(j[..., 0] - j[:, :1, 0]).max())) + 0.1
        for c, t in enumerate(np.linspace(0, len(j) - 1, frames).round().astype(int)):
            ax = axes[r, c]
            pose = j[t] - np.array([j[t, 0, 0], 0.0, 0.0])
            for chain in chains:
                ax.plot(pose[list(chain), 0], pose[list(chain), 1], lw=1.5)
            ax.set_xlim(-half, half)
            ax.set_ylim(lo - 0.1, hi + 0.1)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name if len(name) <= 16 else name[:15] + "…", fontsize=7)
            if r == 0:
                ax.set_title(f"t={t / 20:.1f}s", fontsize=7)
    fig.suptitle(sample["text"][:90], fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- files
def write_report(
    report: dict, out_dir: str | Path, samples: Mapping[str, Mapping] | None = None, plots: bool = True
) -> dict[str, Path]:
    """Write plots (metrics.png, skeletons_<kind>.png), report.md and report.json into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    report["plots"] = []
    if plots:
        p = plot_metrics(report, out_dir / "metrics.png")
        if p is not None:
            files["metrics"] = p
        for kind, sample in (samples or {}).items():
            files[f"skeletons_{kind}"] = plot_skeleton_strip(sample, out_dir / f"skeletons_{kind}.png")
        report["plots"] = [f.name for f in files.values()]
    files["markdown"] = out_dir / "report.md"
    files["markdown"].write_text(markdown_report(report), encoding="utf-8")
    files["json"] = out_dir / "report.json"
    files["json"].write_text(json.dumps(report, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return files


def _json_default(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
