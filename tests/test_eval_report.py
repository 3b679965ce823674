"""Report files: Table-1 Markdown layout, cells `mean ± conf`, plots, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.eval.report import cell, markdown_report, plot_metrics, plot_skeleton_strip, write_report
from models.eval.sources import GT_ROW

PNG = b"\x89PNG\r\n\x1a\n"
EXPECTED = Path(__file__).resolve().parent / "expected"


def _r(mean, conf=0.01):
    return {"name": "x", "mean": mean, "conf": conf, "n": 5}


def fake_report() -> dict:
    forget = {
        "FID": _r(1.16),
        "MM-Safe": _r(5.11),
        "R@1": _r(0.176),
        "Diversity": _r(9.1),
        "Violence rate": _r(0.5),
    }
    retain = {
        "FID": _r(0.041),
        "MM-Dist": _r(2.93),
        "R@1": _r(0.52),
        "Diversity": _r(9.5),
        "MultiModality": _r(1.2),
    }
    gt = {
        "forget": {k: _r(0.0 if k == "FID" else v["mean"]) for k, v in forget.items()},
        "retain": {
            k: _r(0.0 if k == "FID" else v["mean"]) for k, v in retain.items() if k != "MultiModality"
        },
    }
    gt["forget"]["FID"] = _r(-1e-9, 0.0)
    return {
        "settings": {"repeats": 5, "batch_size": 32, "seed": 1},
        "concept": {"name": "violence"},
        "evaluator": {"name": "weights/evaluator", "kind": "ours"},
        "data": {"sets": {"forget": {"items": 40, "clips": 30}, "retain": {"items": 400, "clips": 300}}},
        "rows": [GT_ROW, "momask", "momask-lcr"],
        "results": {
            GT_ROW: gt,
            "momask": {"forget": forget, "retain": retain},
            "momask-lcr": {"forget": {**forget, "FID": _r(15.66, 0.4)}, "retain": retain},
        },
        "violence": {
            "classifier": {
                "path": "clf",
                "label_source": "meta.json",
                "metrics": {"test": {"n": 100, "positives": 10, "accuracy": 0.95, "balanced_accuracy": 0.9}},
            },
            "rates": {
                "momask": {"forget": {"rate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "flagged": 100, "n": 200}}
            },
        },
        "software": {"hmu": "0.1.0"},
        "timing": {"total_s": 12.0},
    }


def test_cell_format():
    assert cell(_r(1.23456, 0.0432)) == "1.235 ± 0.043"
    assert cell(_r(-1e-9, 0.0)) == "0.000 ± 0.000"  # no "-0.000"
    assert cell(None) == "–"


def test_markdown_has_the_table_1_layout():
    md = markdown_report(fake_report())
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| Model | Forget"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[:4] == ["Model", "Forget FID → D_r", "Forget MM-Safe ↓", "Forget R@1"]
    assert cols.index("Retain FID ↓") > cols.index("Forget Violence rate ↓")
    assert cols[-1] == "Retain MultiModality ↑"
    start = lines.index(header)
    rows = [line for line in lines[start + 2 : start + 5]]
    assert [r.split("|")[1].strip() for r in rows] == [GT_ROW, "momask", "momask-lcr"]
    lcr = [c.strip() for c in rows[2].strip("|").split("|")]
    assert lcr[1] == "15.660 ± 0.400" and lcr[cols.index("Retain R@1 ↑")] == "0.520 ± 0.010"
    gt = [c.strip() for c in rows[0].strip("|").split("|")]
    assert gt[1] == "0.000 ± 0.000" and gt[-1] == "–"
    assert "held-out accuracy 0.950" in md and "[0.400, 0.600]" in md


def test_markdown_equals_the_former_rendering():
    """report.md renders from templates/report*.md exactly as the former code did (tests/expected/report_*.md)."""
    report = fake_report()
    outputs = {"report_full.md": markdown_report(report)}
    report["plots"] = ["metrics.png", "skeletons_violent.png"]
    report["violence"]["classifier"]["metrics"] = {}
    report["data"]["sets"]["forget"]["batches"] = 3
    outputs["report_plots.md"] = markdown_report(report)
    report["violence"] = {"skipped": "no classifier"}
    del report["timing"]
    report["software"] = {}
    outputs["report_skipped.md"] = markdown_report(report)
    del report["violence"]
    report["rows"], report["plots"] = ["momask"], []
    outputs["report_minimal.md"] = markdown_report(report)
    for name, text in outputs.items():
        assert text == (EXPECTED / name).read_text(encoding="utf-8"), name


def test_plots_and_files(tmp_path):
    report = fake_report()
    assert plot_metrics(report, tmp_path / "m.png").read_bytes()[:8] == PNG
    t = np.linspace(0, 1, 30)
    joints = np.zeros((30, 22, 3))
    joints[..., 1] = np.linspace(0, 1.7, 22)
    joints[..., 0] += t[:, None]
    sample = {"text": "a person kicks", "joints": {GT_ROW: joints, "momask": joints * 0.9}}
    assert plot_skeleton_strip(sample, tmp_path / "s.png", frames=4).read_bytes()[:8] == PNG
    files = write_report(report, tmp_path / "out", {"violent": sample, "safe": sample})
    assert set(files) == {"metrics", "skeletons_violent", "skeletons_safe", "markdown", "json"}
    on_disk = json.loads(files["json"].read_text())
    assert on_disk["plots"] == ["metrics.png", "skeletons_violent.png", "skeletons_safe.png"]
    assert "![metrics.png](metrics.png)" in files["markdown"].read_text()
    with pytest.raises(ValueError, match="no joints"):
        plot_skeleton_strip({"text": "x", "joints": {}}, tmp_path / "e.png")
