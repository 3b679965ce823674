"""The timeline and edit fields of POST /generate: checked here, stored in the job for the worker."""

from __future__ import annotations

from fastapi import HTTPException

from service import dispatch
from service.deps import Principal, Services
from service.schemas import EDIT_MAX_FRAMES, GenerateRequest


async def timeline_or_edit(body: GenerateRequest, services: Services, principal: Principal) -> dict:
    """The job fields of a timeline (`segments`) or an edit (`edit`, its source checked here: 404 for an unknown
    job or another key's, 409 while it is not finished, 422 when `keep` does not fit it); {} otherwise."""
    if body.segments is not None:
        return {"segments": [s.model_dump() for s in body.segments]}
    if body.edit is None:
        return {}
    edit = body.edit
    source = await dispatch.read(services, edit.source, principal)
    if source["type"] != "generate":
        raise HTTPException(404, f"job {edit.source} is not a generate job or an uploaded motion")
    if source["state"] != "succeeded":
        raise HTTPException(409, f"source job {edit.source} is {source['state']}; edit a finished motion")
    samples = (source.get("result") or {}).get("samples") or []
    if edit.sample >= len(samples):
        raise HTTPException(422, f"source job {edit.source} has {len(samples)} sample(s); no sample {edit.sample}")
    frames = int(samples[edit.sample]["length"]) // 4 * 4
    if frames > EDIT_MAX_FRAMES:
        raise HTTPException(422, f"the source has {frames} frames; edits take motions of at most "
                                 f"{EDIT_MAX_FRAMES} frames")
    for start, end in edit.keep:
        if end > frames:
            raise HTTPException(422, f"keep range [{start}, {end}] ends after the source's {frames} frames")
    return {"edit": {"source": edit.source, "sample": edit.sample, "keep": [list(r) for r in edit.keep]}}
