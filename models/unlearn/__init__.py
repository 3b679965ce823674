"""Concept unlearning for MoMask/BAMM: LCR, UCE, RECE, ESD and fine-tuning.

Entry point: `models.unlearn.run.run_unlearning(UnlearnConfig(...))`; the config module
(`models.unlearn.config`) is torch-free, so this package imports nothing on its own.
"""
