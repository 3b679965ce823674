"""The job core shared by the gateway (`service/`) and the workers (`worker/`).

Settings, the Redis client, Celery queue and task names, the job store, the model registry and the metrics
live here. `core` sits above `models/` and below `service/` and `worker/`, which never import each other.
"""
