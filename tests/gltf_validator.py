"""The Khronos glTF validator (npm `gltf-validator`, installed into tests/gltf/node_modules by `.ci/run`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

GLTF_DIR = Path(__file__).resolve().parent / "gltf"
INSTALL = "cd tests/gltf && npm ci --no-audit --no-fund"


def validate(paths: list[Path]) -> dict[str, dict]:
    """{file: issues} of the validator's report for each .glb (numErrors, numWarnings, messages, ...)."""
    node = shutil.which("node")
    assert node, "node (Node.js) is needed for the glTF validator; `.ci/run` installs it"
    assert (GLTF_DIR / "node_modules" / "gltf-validator").is_dir(), f"gltf-validator missing: run `{INSTALL}`"
    done = subprocess.run([node, str(GLTF_DIR / "validate.js"), *map(str, paths)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {report["file"]: report["issues"] for report in reports}


def serious(issues: dict) -> list[tuple[str, str]]:
    """(code, pointer) of the errors and warnings of one report."""
    return [(m["code"], m.get("pointer", "")) for m in issues["messages"] if m["severity"] <= 1]
