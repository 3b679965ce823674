"""hmu: Human Motion Unlearning service and model code."""

__version__ = "0.1.0"
