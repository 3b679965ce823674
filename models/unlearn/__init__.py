"""Concept unlearning for MoMask/BAMM: concepts, LCR, UCE, RECE, ESD and fine-tuning."""

from models.unlearn.run import parse_params, restore_overlay, run_unlearning

__all__ = ["parse_params", "restore_overlay", "run_unlearning"]
