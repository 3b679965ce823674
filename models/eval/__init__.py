"""The benchmark (issue 5): evaluation sets, passes, per-pass metrics and the report.

Modules by stage: `sets` / `implicit` (what is evaluated) -> `passes` (drawn batches) -> `sources` /
`generation` (motions of a model for a pass) -> `space` / `scores` (embeddings and metrics) -> `run`
(the runner) -> `report`. `config.EvalConfig` is torch-free; this package imports nothing on its own.
"""
