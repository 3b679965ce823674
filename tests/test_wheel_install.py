"""Deployment as shipped (issue 14): the wheel, installed non-editable into a fresh venv outside the checkout
(as Dockerfile.gpu's `pip install /app`), generates, unlearns (LCR on a dataset built here) and evaluates,
and its gateway accepts `POST /unlearn` (the concepts file, configs and weights travel in the wheel).

The fresh venv holds only the wheel; its dependencies (torch included) come from the test's own environment
through a `.pth` line, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_BVH = Path(os.environ.get("HMU_SHARED_DIR", ROOT.parent / "shared")) / "data" / "bvh"
TOP_NOT_COPIED = {".git", ".venv", "data", "artifacts", "runs", "build", "dist", ".pytest_cache", ".ruff_cache"}
ANYWHERE_NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
GATEWAY_CHECK = """
import json, sys
from fastapi.testclient import TestClient
import models
from core.settings import Settings
from service.main import create_app
settings = Settings(redis_url=sys.argv[1], models_dir="models-dir", artifacts_dir="jobs")
with TestClient(create_app(settings)) as http:
    unlearn = http.post("/unlearn", json={"method": "lcr", "concept": "violence", "new_model_id": "safe-1"})
    listed = http.get("/models").json()
    page = http.get("/")
print(json.dumps({"models_file": models.__file__, "weights_dir": str(settings.weights_dir),
                  "unlearn": [unlearn.status_code, unlearn.json()], "models": [m["id"] for m in listed],
                  "viewer": [page.status_code, "<html" in page.text.lower()]}))
"""


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def local_setuptools_will_do() -> bool:
    """True when this environment's setuptools meets pyproject's build requirement (setuptools>=68)."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    return int(importlib.metadata.version("setuptools").split(".")[0]) >= 68


def build_wheel(out: Path) -> Path:
    """`pip wheel` of a copy of the checkout (no stale build/ folder, nothing written into the checkout)."""
    source = out / "source"

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = TOP_NOT_COPIED.intersection(names) if Path(folder) == ROOT else set()
        return top | ANYWHERE_NOT_COPIED(folder, names)

    shutil.copytree(ROOT, source, ignore=ignore, symlinks=True)
    isolation = ["--no-build-isolation"] if local_setuptools_will_do() else []  # else pip fetches it
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", *isolation, "-q", "-w", str(out)],
        cwd=out, env=dict(os.environ), timeout=300)
    (wheel,) = out.glob("hmu-*.whl")
    return wheel


def fresh_venv(folder: Path, wheel: Path) -> Path:
    """A venv outside the checkout with the wheel installed; dependencies from this interpreter's site."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)], cwd=folder, env=dict(os.environ))
    return python


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installed_outside_the_checkout_generates_unlearns_and_evaluates(tmp_path: Path, redis_url: str):
    assert SHARED_BVH.is_dir(), f"the shared BVH files are needed at {SHARED_BVH}"
    wheel = build_wheel(tmp_path / "wheel")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("models/shipped/configs/concepts.json", "models/shipped/configs/train/vq.json",
                 "models/shipped/weights/momask-small/config.json", "models/data/prompts/violence.json",
                 "service/static/index.html", "models/eval/templates/report.md", "models/motion/skeletons.json"):
        assert name in names, f"{name} is not in the wheel"

    python = fresh_venv(tmp_path / "venv", wheel)
    work = tmp_path / "work"  # outside the checkout; no HMU_* paths pointing back into it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMU_") and k != "PYTHONPATH"}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    hmu = [str(python.parent / "hmu")]

    gateway = json.loads(run([str(python), "-c", GATEWAY_CHECK, redis_url], cwd=work, env=env).splitlines()[-1])
    venv = str(tmp_path / "venv")
    assert gateway["models_file"].startswith(venv) and gateway["weights_dir"].startswith(venv), gateway
    assert gateway["unlearn"][0] == 202, gateway["unlearn"]  # before: 500 (configs/concepts.json not shipped)
    assert "momask-small" in gateway["models"] and gateway["viewer"] == [200, True]

    run(hmu + ["data", "build", "--out", "ds", "--no-shared", "--bvh", str(SHARED_BVH)], cwd=work, env=env)
    run(hmu + ["generate", "--text", "a person kicks", "--length", "40", "--seed", "1", "--out", "kick.npy"],
        cwd=work, env=env)
    assert (work / "kick.npy").stat().st_size > 40 * 22 * 3 * 4
    # the tiny dataset has its two violent clips in test: LCR counts codes over every split
    out = run(hmu + ["unlearn", "--method", "lcr", "--concept", "violence", "--data", "ds", "--param",
                     'splits=["all"]', "--out", "safe", "--quiet", "--verify-max-prompts", "2"], cwd=work, env=env)
    summary, verification = map(json.loads, out.splitlines()[-2:])
    assert summary["method"] == "lcr" and isinstance(verification["verified"], bool)  # prompt sets shipped
    assert (work / "safe" / "safety_guard" / "policy.json").is_file()  # the classifier travels in the wheel
    assert (work / "safe" / "manifest.json").is_file() and (work / "safe" / "private").is_dir()
    run(hmu + ["evaluate", "--model", "safe", "--data", "ds", "--split", "all", "--concept", "violence", "--out",
               "report", "--repeats", "1", "--mm-batches", "0", "--prompt-seeds", "0", "--max-items", "4",
               "--no-plots", "--no-progress"], cwd=work, env=env)
    report = json.loads((work / "report" / "report.json").read_text())
    assert report and (work / "report" / "report.md").is_file()
