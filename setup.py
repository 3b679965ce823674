"""Build hook (the project is configured in pyproject.toml): the wheel carries the repository's run-time
folders (`configs/`, `weights/`) inside the `models` package as `models/shipped/`, where
`models.common.package_data.shipped_path` finds them when the project is installed non-editable."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_FOLDERS = ("configs", "weights")  # as models.common.package_data.SHIPPED_FOLDERS


class BuildWithShippedFolders(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's folders
            return
        for folder in SHIPPED_FOLDERS:
            target = Path(self.build_lib) / "models" / "shipped" / folder
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithShippedFolders})
