"""Schemathesis against the committed openapi.yaml: no 5xx, documented statuses, conforming bodies.

A fast subset of `bench/fuzz.py` (which runs >= 1,000 cases): the real gateway in-process on a private
embedded Redis, no worker (valid jobs stay queued).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from schemathesis.generation.modes import GenerationMode

from bench.fuzz import KEYS, fuzz_app, fuzz_settings
from service.main import create_app


@pytest.mark.parametrize(("mode", "keys", "examples"), [
    (GenerationMode.POSITIVE, None, 60),
    (GenerationMode.NEGATIVE, None, 60),
    (GenerationMode.NEGATIVE, KEYS, 50),
], ids=["positive-open", "negative-open", "negative-api-keys"])
def test_generated_requests_never_give_5xx_and_conform(tmp_path: Path, tiny_model_dir: Path, mode, keys,
                                                       examples: int):
    with fuzz_settings(tmp_path, tiny_model_dir, keys) as settings:
        report = fuzz_app(create_app(settings), examples, mode, random_seed=7)
    assert report.cases >= examples * 0.9, report
    assert not report.failures, "\n".join(report.failures)
    assert not any(isinstance(code, int) and code >= 500 for code in report.statuses), report.statuses
    if mode is GenerationMode.NEGATIVE and not keys:  # invalid requests were really sent and refused
        assert report.statuses[422] > 0, report.statuses
    if keys:  # no key, or a made-up one: refused before anything (body included) is validated
        assert report.statuses[401] > 0, report.statuses
        assert set(report.statuses) <= {200, 401}, report.statuses  # 200: /healthz, /readyz, /metrics
