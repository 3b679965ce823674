"""The violence rate: the motion classifier of a run and its pooled counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.data.concepts import Concept
from models.evaluator.violence_classifier import ViolenceClassifier, train_violence_classifier, wilson_interval
from models.pipelines import default_model_dir

Progress = Callable[[float, str], None]


def load_classifier(
    spec: str | Path | ViolenceClassifier | None,
    data_dir: Path | None,
    concept: Concept,
    out_dir: Path,
    progress: Progress,
) -> tuple[ViolenceClassifier | None, str | None]:
    """(classifier, reason it is missing). spec: "default" (weights/violence-classifier, skipped if absent),
    "train" (train on data_dir into out_dir/violence_classifier), a folder, an instance, or None/"none"."""
    if isinstance(spec, ViolenceClassifier):
        return spec, None
    if spec is None or str(spec) == "none":
        return None, "no classifier requested"
    if str(spec) == "train":
        if data_dir is None:
            raise ValueError("classifier='train' needs data_dir (a dataset with a train split)")
        model, _ = train_violence_classifier(
            data_dir,
            out_dir / "violence_classifier",
            concept,
            progress=lambda f, m: progress(0.02 + 0.03 * f, m),
        )
        model.info["path"] = str(out_dir / "violence_classifier")
        return model, None
    path = default_model_dir("violence-classifier") if str(spec) == "default" else Path(spec)
    if not path.is_dir():
        if str(spec) == "default":
            return None, f"no default classifier at {path} (use classifier='train' or a folder)"
        raise FileNotFoundError(f"classifier folder {path} not found")
    model = ViolenceClassifier.from_pretrained(path)
    model.info["path"] = str(path)
    return model, None


def count_flagged(clf: ViolenceClassifier, motions: list[np.ndarray], counter: list[int]) -> float:
    flagged = clf.predict(motions)
    counter[0] += int(flagged.sum())
    counter[1] += len(flagged)
    return float(flagged.mean())


def wilson_rate(flagged: int, n: int) -> dict[str, float]:
    lo, hi = wilson_interval(flagged, n)
    return {"rate": flagged / n, "ci_low": lo, "ci_high": hi, "flagged": flagged, "n": n}
