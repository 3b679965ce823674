"""Request and response bodies of the HTTP API (pydantic v2; every field is bounded)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.registry import ID_MAX_LENGTH, ID_PATTERN
from models.common.sampling_config import SamplingConfig

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobType = Literal["generate", "unlearn", "evaluate"]
MotionFormat = Literal["joints", "features", "bvh"]
UnlearnMethod = Literal["lcr", "uce", "rece", "esd", "ft"]
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
class GenerateRequest(Strict):
    text: str = Field(min_length=1, max_length=512, description="what the motion shows")
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

    _text = field_validator("text")(_not_blank)

    def sampling(self) -> SamplingConfig:
        """The sampling knobs of this request (None: the model's default)."""
        return SamplingConfig(timesteps=self.timesteps, cond_scale=self.cond_scale,
                              res_cond_scale=self.res_cond_scale, temperature=self.temperature,
                              topk_filter_thres=self.topk_filter_thres)


class MotionSample(BaseModel):
    text: str
    length: int = Field(description="frames at `fps`")
    seed: int | None
    joints: list[list[list[float]]] | None = Field(None, description="(frames, 22, 3) metres, Y up")
    features: list[list[float]] | None = Field(None, description="(frames, 263) HumanML3D features")
    bvh: str | None = None


class GenerateResult(BaseModel):
    job_id: str
    model: str
    format: MotionFormat
    fps: int = 20
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
    method: UnlearnMethod
    concept: str | None = Field(None, pattern=r"^[a-z0-9_-]{1,64}$", description="a predefined concept name")
    keywords: list[str] | None = Field(None, min_length=1, max_length=64, description="inline concept words")
    parameters: Parameters = Field(default_factory=dict, description="method-specific settings")
    new_model_id: str | None = id_field("id of the result")

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


class ModelFile(BaseModel):
    name: str
    bytes: int


class ModelDetail(ModelSummary):
    card: str | None = None
    provenance: dict[str, Any] | None = None
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
