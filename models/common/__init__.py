"""Building blocks shared by the MoMask and BAMM models (import them from their modules).

The package itself imports nothing, so torch-free modules here (`sampling_config`) stay importable by the
gateway without loading torch.
"""
