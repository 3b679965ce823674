"""`hmu data ...` sub-commands (registered by hmu.cli)."""

from __future__ import annotations

import argparse

from models.data.build import add_arguments, run


def register(sub: argparse._SubParsersAction) -> None:
    """Add `hmu data build` to the `hmu` sub-command parser."""
    data = sub.add_parser("data", help="build datasets from mocap / BVH")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    build = data_sub.add_parser(
        "build", help="build a HumanML3D-format dataset from the shared mocap and BVH files"
    )
    add_arguments(build)
    build.set_defaults(func=run)
