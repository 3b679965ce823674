"""Checkpoint I/O: the official MoMask/BAMM layout and our native format."""
