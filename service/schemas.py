"""Request and response bodies of the HTTP API (pydantic v2; every field is bounded)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.registry import ID_MAX_LENGTH, ID_PATTERN
from models.common.sampling_config import SamplingConfig

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobType = Literal["generate", "unlearn", "evaluate"]
MotionFormat = Literal["joints", "features", "bvh", "glb"]
RigName = Literal["smpl", "mixamo", "ue5_mannequin"]
RootMotion = Literal["world", "in_place"]
ExportFps = Literal[20, 24, 30, 60]
UnlearnMethod = Literal["lcr", "uce", "rece", "esd", "ft", "code_ban"]
DEFAULT_UNLEARN_METHOD = "code_ban"  # the recommended method (BENCHMARKS.md, issue 13)
Scalar = bool | int | Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=256)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$")]
ParamValue = Scalar | Annotated[list[Scalar], Field(max_length=64)] | Annotated[dict[Name, Scalar],
                                                                                 Field(max_length=64)]
Parameters = Annotated[dict[Name, ParamValue], Field(max_length=32)]


def id_field(description: str) -> Any:
    """An optional model or dataset id (the registry's one pattern: no '..', no path separators)."""
    return Field(None, pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description=description)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain a non-blank character")
    return value


# ---------------------------------------------------------------------------------------------- generate
# Timelines and edits (torch-free copies of models/pipelines/{timeline,edit,constants}.py; a test compares them)
TIMELINE_MAX_SECONDS = 60.0
TIMELINE_MAX_SEGMENTS = 12
EDIT_MAX_FRAMES = 196
EDIT_MAX_KEEP = 16
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
Frame = Annotated[int, Field(ge=0, le=EDIT_MAX_FRAMES)]


class TimelineSegment(Strict):
    text: str = Field(min_length=1, max_length=512, description="what this part of the timeline shows")
    seconds: float = Field(ge=0.4, le=TIMELINE_MAX_SECONDS, allow_inf_nan=False,
                           description="duration (floored to a multiple of 0.2 s)")

    _text = field_validator("text")(lambda value: _not_blank(value))


class EditRequest(Strict):
    source: str = Field(pattern=JOB_ID_PATTERN, description="id of a finished generate job (sample `sample` of "
                                                            "it) or of an uploaded motion (POST /motions)")
    sample: int = Field(0, ge=0, le=7, description="which sample of the source job")
    keep: list[tuple[Frame, Frame]] = Field(min_length=1, max_length=EDIT_MAX_KEEP,
                                            description="[start, end) frame ranges kept unchanged; the other "
                                                        "frames are regenerated from `text`")

    @field_validator("keep")
    @classmethod
    def _ranges(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for start, end in value:
            if start >= end:
                raise ValueError(f"keep range [{start}, {end}] is empty (start must be below end)")
        ordered = sorted(value)
        for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
            if start < end:
                raise ValueError(f"keep ranges overlap (one ends at frame {end}, the next starts at {start})")
        return ordered


class GenerateRequest(Strict):
    text: str | None = Field(None, min_length=1, max_length=512,
                             description="what the motion shows (with `edit`: what the regenerated frames show); "
                                         "required unless `segments` is given")
    segments: list[TimelineSegment] | None = Field(
        None, min_length=1, max_length=TIMELINE_MAX_SEGMENTS,
        description="a timeline instead of `text`: parts played in order, each generated after the end of the "
                    "previous one (at most 60 s in all); runs unbatched")
    edit: EditRequest | None = Field(None, description="in-betweening: regenerate a finished motion outside "
                                                       "`keep` from `text`; runs unbatched")
    model: str | None = id_field("model id (default model)")
    length_frames: int | None = Field(None, ge=40, le=196, description="frames at 20 fps (estimated)")
    num_samples: int = Field(1, ge=1, le=8)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="sample i uses seed + i; random if absent")
    format: MotionFormat = "joints"
    timesteps: int | None = Field(None, ge=1, le=100, description="MoMask mask-predict iterations")
    cond_scale: float | None = Field(None, ge=0, le=20, description="classifier-free guidance (base layer)")
    res_cond_scale: float | None = Field(None, ge=0, le=20, description="classifier-free guidance (residual)")
    temperature: float | None = Field(None, ge=0.01, le=5)
    topk_filter_thres: float | None = Field(None, ge=0, lt=1)
    wait_seconds: float = Field(10, ge=0, le=60, description="wait for the result this long, then answer 202")
    skeleton: RigName | None = Field(None, description="bvh/glb: target rig (bone names, hierarchy, rest pose); "
                                                       "default: our 22 HumanML3D joints")
    fps: ExportFps = Field(20, description="bvh/glb: frame rate of the file (rotations slerped)")
    root_motion: RootMotion = Field("world", description="bvh/glb: `in_place` keeps height and facing and "
                                                         "returns the ground trajectory separately")
    loop: bool = Field(False, description="bvh/glb: blend the last 0.5 s into the first frame")

    _text = field_validator("text")(lambda value: value if value is None else _not_blank(value))

    @model_validator(mode="after")
    def _one_kind(self) -> GenerateRequest:
        if (self.text is None) == (self.segments is None):
            raise ValueError("give exactly one of 'text' (one motion) or 'segments' (a timeline)")
        if self.segments is not None:
            total = sum(s.seconds for s in self.segments)
            if total > TIMELINE_MAX_SECONDS + 1e-9:
                raise ValueError(f"a timeline lasts at most {TIMELINE_MAX_SECONDS:g} s, got {total:g} s")
        if self.length_frames is not None and (self.segments is not None or self.edit is not None):
            raise ValueError("length_frames does not apply to timelines (use seconds) or edits (the source's "
                             "length)")
        return self

    @model_validator(mode="after")
    def _export_fields(self) -> GenerateRequest:
        changed = [name for name in ("skeleton", "fps", "root_motion", "loop") if name in self.model_fields_set
                   and getattr(self, name) != GenerateRequest.model_fields[name].default]
        if changed and self.format not in ("bvh", "glb"):
            raise ValueError(f"{', '.join(changed)} apply to format 'bvh' or 'glb' only, not {self.format!r}")
        return self

    def export_fields(self) -> dict[str, Any]:
        """The file options of this request (skeleton, fps, root_motion, loop) for the job record."""
        return {"skeleton": self.skeleton, "fps": self.fps, "root_motion": self.root_motion, "loop": self.loop}

    def sampling(self) -> SamplingConfig:
        """The sampling knobs of this request (None: the model's default)."""
        return SamplingConfig(timesteps=self.timesteps, cond_scale=self.cond_scale,
                              res_cond_scale=self.res_cond_scale, temperature=self.temperature,
                              topk_filter_thres=self.topk_filter_thres)


class MotionFile(BaseModel):
    name: str
    url: str = Field(description="GET it with the key that created the job (/jobs/{id}/artifacts/{name})")
    bytes: int
    media_type: str
class SegmentSpan(BaseModel):
    text: str
    start: int = Field(description="first frame")
    end: int = Field(description="frame after the last")


class MotionUploaded(BaseModel):
    job_id: str = Field(description="use it as `edit.source` of POST /generate")
    frames: int
    feature_dim: int
    status_url: str


class MotionSample(BaseModel):
    text: str
    length: int = Field(description="frames at `fps`")
    seed: int | None
    joints: list[list[list[float]]] | None = Field(None, description="(frames, 22, 3) metres, Y up")
    features: list[list[float]] | None = Field(None, description="(frames, 263) HumanML3D features")
    bvh: str | None = None
    file: MotionFile | None = Field(None, description="glb: the file to download (not inline)")
    root_trajectory: list[list[float]] | None = Field(None, description="in place: (frames, 3) ground trajectory "
                                                                         "taken out of the skeleton, metres")
    segments: list[SegmentSpan] | None = Field(None, description="a timeline's parts, in frames")
    kept: list[list[int]] | None = Field(None, description="an edit's kept [start, end) frame ranges")


class GenerateResult(BaseModel):
    job_id: str
    model: str
    format: MotionFormat
    fps: int = Field(20, description="frames per second of the samples")
    samples: list[MotionSample]


# ---------------------------------------------------------------------------------------------- jobs
class JobErrorInfo(BaseModel):
    code: str = Field(description="bad_request, not_found, conflict, not_available, worker_lost, cancelled, "
                                  "internal")
    message: str


class JobAccepted(BaseModel):
    job_id: str
    type: JobType
    state: JobState
    status_url: str


class JobStatus(BaseModel):
    id: str
    type: JobType
    state: JobState
    progress: float = Field(ge=0, le=1)
    message: str | None = None
    model: str | None = None
    attempts: int = 0
    created_at: float | None = Field(None, description="Unix time (s)")
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: JobErrorInfo | None = None


# ---------------------------------------------------------------------------------------------- unlearn
class UnlearnRequest(Strict):
    base_model: str | None = id_field("default model")
    method: UnlearnMethod = Field(DEFAULT_UNLEARN_METHOD, description="unlearning method; default code_ban "
                                  "(recommended); the paper's lcr, uce, rece, esd, ft stay selectable")
    concept: str | None = Field(None, pattern=r"^[a-z0-9_-]{1,64}$", description="a predefined concept name")
    keywords: list[str] | None = Field(None, min_length=1, max_length=64, description="inline concept words")
    parameters: Parameters = Field(default_factory=dict, description="method-specific settings")
    new_model_id: str | None = id_field("id of the result")
    guard: bool | None = Field(None, description="attach the shipped safety guard (a motion classifier that "
                               "checks every output: resample, else 422 unsafe_output); default: for violence")
    verify: bool = Field(True, description="after writing the model, measure it on the concept's frozen prompt "
                         "sets (fast profile) and record the safety report; GET /models/{id} shows `verified`")

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for word in value:
            if not 1 <= len(word.strip()) <= 64:
                raise ValueError(f"keyword {word[:70]!r} must be 1..64 characters")
        return [w.strip() for w in value]

    @model_validator(mode="after")
    def _one_concept(self) -> UnlearnRequest:
        if (self.concept is None) == (self.keywords is None):
            raise ValueError("give exactly one of 'concept' (a predefined name) or 'keywords' (words)")
        return self


# ---------------------------------------------------------------------------------------------- models
class ModelSummary(BaseModel):
    id: str
    kind: str | None
    dataset: str | None
    parent: str | None = None
    method: str | None = None
    default: bool = False
    shipped: bool = False
    verified: bool | None = Field(None, description="unlearned models: the safety verification reached its "
                                  "targets (null: not verified)")


class ModelFile(BaseModel):
    name: str
    bytes: int


class ModelDetail(ModelSummary):
    card: str | None = None
    provenance: dict[str, Any] | None = None
    safety: dict[str, Any] | None = Field(None, description="the safety report (manifest.json safety_report)")
    config: dict[str, Any] = Field(default_factory=dict)
    files: list[ModelFile] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------- health
class Health(BaseModel):
    status: Literal["ok"]
    version: str
    auth: Literal["api-keys", "open"]


class Ready(BaseModel):
    """Without a valid API key (when keys are configured) only `status` is given."""

    status: Literal["ready", "no_worker", "unavailable"]
    redis: bool | None = None
    workers: list[dict[str, Any]] | None = None
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong, in words")
    errors: list[dict[str, Any]] | None = Field(None, description="per-field problems of an invalid request")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses (all answered with `ErrorBody`)."""
    return {status: {"model": ErrorBody} for status in statuses}


AUTH_ERRORS = error_responses(401, 403, 422, 429, 503)  # every authenticated router (429: rate limit)
