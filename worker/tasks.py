"""Celery tasks (generate, unlearn, evaluate) and the job bodies they run.

A task's only argument is the job id; the request lives in the job record (core.jobstore). Tasks are
acked late and rejected (requeued) when the worker process is lost, so a killed worker's job is redelivered;
`WorkerRuntime.execute` makes redelivery safe (it never runs a finished or cancelled job).
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from celery import Celery

from core.jobstore import JobError, job_file_path
from core.queue import TASKS
from core.registry import NotFound, dataset_dir, model_dir, model_exists
from models.common.sampling_config import SamplingConfig
from models.pipelines import FPS, GeneratedMotion
from worker import adapters, timelines
from worker.batching import MicroBatcher
from worker.cache import ModelCache
from worker.runtime import JobContext, WorkerRuntime

DECIMALS = 5  # 0.01 mm: enough for joints in metres, keeps JSON results small


def register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """Bind the three tasks to `app`, running their jobs through `runtime`."""
    settings = runtime.settings
    def run_batch(key: BatchKey, items: list[GenerateItem]) -> list[list[GeneratedMotion]]:
        with runtime.cpus.generate_call():  # one at a time, on the CPUs no unlearn / evaluate job holds
            return generate_batch(runtime.models, key, items)

    def long_job(body):  # noqa: ANN001, ANN202
        def run(job: JobContext) -> Any:
            with runtime.cpus.long_call():
                return body(runtime, job)
        return run

    runtime.batcher = MicroBatcher(
        run=run_batch,
        window_s=settings.batch_window_ms / 1000, max_size=settings.batch_max_size,
        size_of=lambda item: item.num_samples,
        group_of=lambda item: length_bucket(item.length, settings.batch_length_bucket_frames),
    )
    options = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}
    # jobs re-queued by this worker (given back at shutdown, or reaped from a dead worker) are published again
    runtime.publish = lambda job_id, job_type: app.send_task(TASKS[job_type], args=[job_id], task_id=job_id)

    @app.task(name=TASKS["generate"], **options)
    def generate(self, job_id: str) -> str:
        return runtime.execute(job_id, lambda job: run_generate(runtime, job))

    @app.task(name=TASKS["unlearn"], **options)
    def unlearn(self, job_id: str) -> str:
        return runtime.execute(job_id, long_job(run_unlearn))

    @app.task(name=TASKS["evaluate"], **options)
    def evaluate(self, job_id: str) -> str:
        return runtime.execute(job_id, long_job(run_evaluate))


# ---------------------------------------------------------------------------------------------- generate
BatchKey = tuple[str, SamplingConfig]  # (model id, sampling knobs): requests that can share one model call


@dataclass(frozen=True)
class GenerateItem:
    """One generate request inside a batch: `num_samples` motions of `text`, sample j seeded `seed + j`."""

    text: str
    length: int | None
    num_samples: int
    seed: int


def length_bucket(length: int | None, bucket_frames: int) -> int | None:
    """The batching group of a requested length: its bucket of `bucket_frames` frames; -1 for "estimate the
    length" (unknown until the model estimates it); None when bucketing is off."""
    if bucket_frames <= 0:
        return None
    return -1 if length is None else (int(length) - 1) // bucket_frames


def generate_batch(models: ModelCache, key: BatchKey,
                   items: list[GenerateItem]) -> list[list[GeneratedMotion | None]]:
    """One model call for several requests of the same model and sampling knobs; motions per request (None:
    refused by the model's safety guard)."""
    model_id, config = key
    pipeline = models.get(model_id)
    texts, lengths, seeds = [], [], []
    for item in items:
        for j in range(item.num_samples):
            texts.append(item.text)
            lengths.append(item.length)
            seeds.append(item.seed + j)
    if models.metrics is not None:
        models.metrics.observe("hmu_generate_batch_size", (model_id,), len(texts))
    guard = models.guard(model_id)
    if guard is None:
        motions: list[GeneratedMotion | None] = list(pipeline.generate(texts, lengths, seeds=seeds, sampling=config))
    else:
        guarded = guard.generate(pipeline, texts, lengths, seeds, config)
        motions = guarded.motions
        if models.metrics is not None:
            models.metrics.inc_guard(model_id, guarded.counts.to_dict())
    out, start = [], 0
    for item in items:
        out.append(motions[start:start + item.num_samples])
        start += item.num_samples
    return out


def run_generate(runtime: WorkerRuntime, job: JobContext) -> dict[str, Any]:
    request = job.request
    model_id = job.record["model"]
    if not model_exists(runtime.settings, model_id):
        raise JobError("not_found", f"model {model_id!r} not found")
    seed = request.get("seed")
    item = GenerateItem(text=request["text"], length=request.get("length_frames"),
                        num_samples=int(request.get("num_samples", 1)),
                        seed=int(seed) if seed is not None else secrets.randbelow(2**31 - 16))
    config = SamplingConfig.from_dict(request.get("sampling"))
    job.check_cancelled()
    motions = timelines.run_timeline_or_edit(runtime, request, model_id, item.seed, config)
    if motions is None:
        motions = runtime.batcher.submit((model_id, config), item)
    else:
        motions = check_unbatched(runtime.models, model_id, motions)
    refused = sum(m is None for m in motions)
    if refused:
        raise JobError("unsafe_output", f"the model's safety guard refused {refused} of {len(motions)} motions "
                       "(still flagged after its resamples); no motion is returned")
    timelines.keep_features(runtime.settings.artifacts_dir, job.id, motions)
    fmt = request.get("format", "joints")
    if fmt in ("glb", "bvh"):
        samples = [file_payload(runtime, job, i, m, fmt) for i, m in enumerate(motions)]
    else:
        samples = [motion_payload(m, fmt) for m in motions]
    samples = [sample | timelines.sample_extras(m, request) for sample, m in zip(samples, motions, strict=True)]
    return {"job_id": job.id, "model": model_id, "format": fmt, "fps": int(request.get("fps") or FPS),
            "samples": samples}


def check_unbatched(models: ModelCache, model_id: str, motions: list[GeneratedMotion]) -> list[GeneratedMotion | None]:
    """Timelines and edits through the model's safety guard: a flagged motion is refused (not resampled: the
    whole timeline or edit would have to be generated again)."""
    guard = models.guard(model_id)
    if guard is None:
        return list(motions)
    checked = guard.refuse_flagged(motions)
    if models.metrics is not None:
        models.metrics.inc_guard(model_id, {"checks": len(motions), "refusals": sum(m is None for m in checked)})
    return checked


def motion_payload(motion: GeneratedMotion, fmt: str) -> dict[str, Any]:
    """A generated motion as JSON: joints (T, 22, 3), features (T, 263) or BVH text."""
    sample: dict[str, Any] = {"text": motion.text, "length": int(motion.length), "seed": motion.seed}
    if fmt == "joints":
        sample["joints"] = np.round(motion.joints.astype(np.float64), DECIMALS).tolist()
    elif fmt == "features":
        sample["features"] = np.round(motion.features.astype(np.float64), DECIMALS).tolist()
    elif fmt == "bvh":
        sample["bvh"] = adapters.joints_to_bvh(motion.joints, fps=FPS)
    else:
        raise JobError("bad_request", f"unknown format {fmt!r}")
    return sample


def file_payload(runtime: WorkerRuntime, job: JobContext, index: int, motion: GeneratedMotion,
                 fmt: str) -> dict[str, Any]:
    """A motion as a file: BVH text inline, a .glb written under the job's artifacts with its download URL.

    The job's export fields (skeleton, fps, root_motion, loop) choose the rig, frame rate and root motion;
    in place, the ground trajectory taken out of the skeleton comes as `root_trajectory` (frames, 3).
    """
    try:
        exported = adapters.export_file(motion.joints, fmt, job.request)
    except ValueError as error:
        raise JobError("bad_request", str(error)) from error
    sample: dict[str, Any] = {"text": motion.text, "length": exported.frames, "seed": motion.seed}
    if fmt == "bvh":
        sample["bvh"] = exported.data
    else:
        name = f"sample-{index}.glb"
        path = job_file_path(runtime.settings.artifacts_dir, job.id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(exported.data)
        tmp.replace(path)
        sample["file"] = {"name": name, "url": f"/jobs/{job.id}/artifacts/{name}", "bytes": len(exported.data),
                          "media_type": "model/gltf-binary"}
    if exported.trajectory is not None:
        sample["root_trajectory"] = np.round(exported.trajectory, DECIMALS).tolist()
    return sample


# ---------------------------------------------------------------------------------------------- unlearn
def run_unlearn(runtime: WorkerRuntime, job: JobContext) -> dict[str, Any]:
    settings, request = runtime.settings, job.request
    base_id, new_id = job.record["model"], request["new_model_id"]
    try:
        base_dir = model_dir(settings, base_id)
    except NotFound as error:
        raise JobError("not_found", str(error)) from error
    models_dir = Path(settings.models_dir)
    final = models_dir / new_id
    if model_exists(settings, new_id):
        raise JobError("conflict", f"model id {new_id!r} already exists")
    tmp = models_dir / f".tmp-{job.id}"
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of an interrupted earlier attempt
    tmp.mkdir(parents=True)
    try:
        job.progress(0.0, f"unlearning with {request['method']}")
        verify = request.get("verify", True)
        share = 0.6 if verify else 1.0
        manifest = adapters.run_unlearning(
            base_model_dir=base_dir, out_dir=tmp, method=request["method"], concept=request.get("concept"),
            keywords=request.get("keywords"), parameters=request.get("parameters") or {},
            data_dir=settings.unlearn_data_dir, device=settings.device,
            progress=lambda f, m: job.progress(share * f, m), guard=request.get("guard"))
        if not (tmp / "config.json").is_file():
            raise JobError("internal", "unlearning finished without writing a model (config.json missing)")
        job.check_cancelled()
        safety = adapters.verify_unlearned(tmp, base_dir, request.get("concept"), settings.verify_max_prompts,
                                           lambda f, m: job.progress(share + (1 - share) * f, m)) if verify else None
        job.check_cancelled()
        try:
            tmp.rename(final)
        except OSError as error:
            reason = error.strerror or type(error).__name__  # not str(error): it names the server's folders
            raise JobError("conflict", f"could not register model {new_id!r}: {reason}") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"model_id": new_id, "model_url": f"/models/{new_id}", "base_model": base_id,
            "method": request["method"], "result": runtime.store.scrub_tree(manifest.get("result")),
            "seconds": manifest.get("seconds"), "safety": safety}


# ---------------------------------------------------------------------------------------------- evaluate
def run_evaluate(runtime: WorkerRuntime, job: JobContext) -> dict[str, Any]:
    settings, request = runtime.settings, job.request
    try:
        models = {model_id: model_dir(settings, model_id) for model_id in request["models"]}
        if request.get("dataset"):
            root = dataset_dir(settings, request["dataset"])
            forget_dir, retain_dir = root / "forget", root / "retain"
        else:
            uploads = Path(settings.artifacts_dir)  # upload folders are stored relative to the shared volume
            forget_dir, retain_dir = uploads / request["forget_dir"], uploads / request["retain_dir"]
    except NotFound as error:
        raise JobError("not_found", str(error)) from error
    out_dir = Path(settings.artifacts_dir) / job.id / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    job.progress(0.0, "evaluating")
    report = adapters.run_evaluation(
        models=models, forget_dir=forget_dir, retain_dir=retain_dir, out_dir=out_dir,
        parameters=request.get("parameters") or {}, device=settings.device, progress=job.progress)
    # the report folder stays on the server; the report names its sets and models without their paths
    return {"models": list(models), "report": runtime.store.scrub_tree(report)}
