"""hmu: the command line (`hmu`) on top of the service, the worker and the model code."""

from models.version import package_version

__version__ = package_version()
