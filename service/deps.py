"""FastAPI dependencies: the app's services (settings, Redis job store, Celery) and API-key auth."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from prometheus_client import CollectorRegistry

from core.jobstore import JobStore
from core.metrics import HttpMetrics
from core.settings import SCOPES, Scope, Settings


@dataclass
class Services:
    """Everything a request handler may use; built once per app by `service.main.create_app`."""

    settings: Settings
    redis: redis.Redis
    store: JobStore
    celery: Celery
    registry: CollectorRegistry
    http_metrics: HttpMetrics


def get_services(request: Request) -> Services:
    return request.app.state.services


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="API key; not needed when the server runs in open local mode")


@dataclass(frozen=True)
class Principal:
    """The caller: its scopes (all of them in open mode)."""

    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def authenticate(key: str | None = Security(api_key_header),
                 services: Services = Depends(get_services)) -> Principal:
    """Any valid key (or open mode); 401 otherwise."""
    keys = services.settings.api_keys
    if not keys:
        return Principal(frozenset(SCOPES))
    if not key:
        raise HTTPException(401, "missing API key: send it in the X-API-Key header",
                            headers={"WWW-Authenticate": "ApiKey"})
    scopes: list[str] | None = None
    for candidate, candidate_scopes in keys.items():  # compare every key in constant time
        if hmac.compare_digest(candidate.encode(), key.encode()):
            scopes = list(candidate_scopes)
    if scopes is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "ApiKey"})
    return Principal(frozenset(scopes))


def require_scope(scope: Scope, principal: Principal) -> None:
    if not principal.allows(scope):
        raise HTTPException(403, f"this API key lacks the '{scope}' scope")


def require(scope: Scope) -> Any:
    """Dependency: a valid key with `scope` (admin keys have every scope)."""

    def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        require_scope(scope, principal)
        return principal

    return Depends(dependency)
