"""DATASET_CARD.md of a build: the package template `templates/dataset_card.md` filled from the summary."""

from __future__ import annotations

from models.common.markdown import render, table
from models.common.package_data import read_json
from models.data.config import FPS, SPLITS
from models.data.skeletons import SOURCE_SKELETONS

# source -> licence paragraph
LICENCES: dict[str, str] = {k: v for k, v in read_json(__file__, "tables/licences.json").items() if k != "about"}


def _contents_table(sources: dict[str, dict]) -> str:
    header = ["source", "clips", "clips used", "dropped (too short)", "windows", "feature frames", "hours"]
    keys = ("clips", "clips_used", "dropped_short", "windows", "feature_frames")
    rows = [[s, *(v.get(k, 0) for k in keys), f"{v.get('feature_frames', 0) / FPS / 3600:.2f}"]
            for s, v in sources.items()]
    return table(header, rows)


def _splits_table(splits: dict[str, dict]) -> str:
    rows = [[s, v.get("clips", 0), v.get("motions", 0), v.get("frames", 0)] for s, v in splits.items()]
    return table(["split", "source clips", "motions (incl. mirrors)", "feature frames"], rows)


def _violent_table(violent: dict[str, dict]) -> str:
    header = ["kind", "train clips (windows)", "val clips (windows)", "test clips (windows)", "test clips"]
    rows = [[k, *(f"{len(v[s]['clips'])} ({v[s]['windows']})" for s in SPLITS), ", ".join(v["test"]["clips"])]
            for k, v in violent.items()]
    return table(header, rows)


def _labels_table(labels: list[dict]) -> str:
    header = ["source", "label", "violent", "clips", "windows", "train", "val", "test"]
    rows = [[r["source"], r["label"], "yes" if r.get("violent") else "", r["clips"],
             *(r.get(k, 0) for k in ("windows", "train", "val", "test"))] for r in labels]
    return table(header, rows)


def render_card(summary: dict) -> str:
    """DATASET_CARD.md text from a build summary (deterministic: no dates, no paths)."""
    cfg = summary["config"]
    notes = "".join(f"\n* {n}" for n in summary["notes"])
    return render(
        __file__, "templates/dataset_card.md",
        format_version=summary["format_version"],
        contents_table=_contents_table(summary["sources"]),
        motions=summary["motions"],
        mirrors=" + mirrors" if cfg["mirror"] else "",
        min_clip_frames=cfg["min_frames"] + 1,
        min_frames=cfg["min_frames"],
        max_frames=cfg["max_frames"],
        splits_table=_splits_table(summary["splits"]),
        seed=cfg["seed"],
        train_fraction=f"{1 - cfg['val_fraction'] - cfg['test_fraction']:.2f}",
        val_fraction=f"{cfg['val_fraction']:.2f}",
        test_fraction=f"{cfg['test_fraction']:.2f}",
        violent_test_fraction=f"{cfg['violent_test_fraction']:.2f}",
        violent_table=_violent_table(summary["violent"]),
        labels_table=_labels_table(summary["labels"]),
        styles=", ".join(f"{k} {v}" for k, v in summary["styles"].items()),
        skeletons="\n".join(f"* **{name}**: {sk.synthesised}." for name, sk in SOURCE_SKELETONS.items()),
        bvh_scale=cfg["bvh_scale"],
        captions_per_motion=cfg["captions_per_motion"],
        kitml_min_coverage=f"{cfg['kitml_min_coverage']:.0%}",
        kitml_motions=summary["kitml_motions"],
        licences="\n".join(f"* **{s}**: {LICENCES[s]}" for s in summary["sources"]),
        notes=f"\n\n## Notes\n{notes}" if notes else "",
    )
