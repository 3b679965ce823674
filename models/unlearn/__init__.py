"""Concept unlearning for MoMask/BAMM: concepts, LCR, UCE, RECE, ESD and fine-tuning."""
