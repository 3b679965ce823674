"""GET /models, GET /models/{id} (card + provenance) and GET /models/{id}/files (the bundle as a tar)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from core import registry
from service.deps import Principal, Services, authenticate, get_services, require
from service.schemas import AUTH_ERRORS, ModelDetail, ModelSummary, error_responses

router = APIRouter(prefix="/models", tags=["models"], dependencies=[Depends(authenticate)],
                   responses=AUTH_ERRORS)
ModelId = Annotated[str, Path(pattern=registry.ID_PATTERN, max_length=registry.ID_MAX_LENGTH, description="model id")]


def _lookup(services: Services, model_id: str, what):
    try:
        return what(services.settings, model_id)
    except registry.NotFound as error:
        raise HTTPException(404, str(error)) from error
    except registry.InvalidId as error:
        raise HTTPException(422, str(error)) from error


@router.get("", response_model=list[ModelSummary])
async def list_models(services: Services = Depends(get_services)):
    """Shipped and registered (e.g. unlearned) models."""
    return await run_in_threadpool(registry.list_models, services.settings)


@router.get("/{model_id}", response_model=ModelDetail, responses=error_responses(404))
async def get_model(model_id: ModelId, services: Services = Depends(get_services)):
    """Model card, provenance (manifest.json) and files."""
    return await run_in_threadpool(_lookup, services, model_id, registry.model_detail)


class _Chunks:
    """A write-only file object that collects what tarfile writes, for streaming."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def tar_stream(folder: FsPath, name: str) -> Iterator[bytes]:
    """Stream an uncompressed tar of the bundle files under `name/`."""
    sink = _Chunks()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for path in registry.bundle_files(folder):
            info = tarfile.TarInfo(f"{name}/{path.name}")
            info.size, info.mtime, info.mode = path.stat().st_size, int(path.stat().st_mtime), 0o644
            with path.open("rb") as handle:
                archive.addfile(info, handle)
            yield sink.take()
    yield sink.take()


@router.get("/{model_id}/files", response_class=StreamingResponse, responses={
    200: {"content": {"application/x-tar": {}},
          "description": "tar of config.json, *.safetensors, MODEL_CARD.md, manifest.json"},
    **error_responses(404)})
async def download_model(model_id: ModelId, services: Services = Depends(get_services),
                         _: Principal = require("models:download")):
    """Download the model bundle (safetensors + JSON + card) as a tar archive (scope `models:download`)."""
    folder = await run_in_threadpool(_lookup, services, model_id, registry.model_dir)
    return StreamingResponse(tar_stream(folder, model_id), media_type="application/x-tar",
                             headers={"Content-Disposition": f'attachment; filename="{model_id}.tar"'})
