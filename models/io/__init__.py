"""Checkpoint formats: the official MoMask/BAMM layout (opt.txt + weights-only .tar) and our native format
(config.json + safetensors). Readers return a `models.io.checkpoint.Checkpoint`, writers take one; this layer
builds the components from their configs and never imports `models.pipelines`."""
