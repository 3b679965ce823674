"""Write the gateway's OpenAPI document: `python -m service.openapi [openapi.yaml]`.

The committed `openapi.yaml` must equal this output (tests/test_service_units.py checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from core.settings import REPO_ROOT, Settings
from service.main import create_app

OPENAPI_PATH = REPO_ROOT / "openapi.yaml"


def openapi_yaml() -> str:
    """The OpenAPI document as YAML (independent of the environment: built from fixed settings)."""
    settings = Settings(redis_url="redis://localhost:6379/0", api_keys={"doc": ["admin"]})
    spec = create_app(settings).openapi()
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else OPENAPI_PATH
    out.write_text(openapi_yaml())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
