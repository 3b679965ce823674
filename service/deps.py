"""FastAPI dependencies: the app's services (settings, Redis job store, Celery) and API-key auth."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from celery import Celery
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from prometheus_client import CollectorRegistry

from core.jobstore import JobStore
from core.limits import RateLimiter
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
    limiter: RateLimiter
    done_signals: redis.asyncio.Redis | None = None  # async client for waiting on jobs; set by the app's lifespan


def get_services(request: Request) -> Services:
    return request.app.state.services


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="API key; not needed when the server runs in open local mode")


@dataclass(frozen=True)
class Principal:
    """The caller: its scopes (all of them in open mode) and the fingerprint of its key (its jobs' owner)."""

    scopes: frozenset[str]
    owner: str = ""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def owns(self, record: dict[str, Any]) -> bool:
        """Whether this caller may see and cancel a job: its own, or any job for an admin key."""
        return self.is_admin or (bool(self.owner) and record.get("owner") == self.owner)


OPEN = Principal(frozenset(SCOPES))


def key_fingerprint(key: str) -> str:
    """A non-secret, stable label of an API key (stored in job records as their owner)."""
    return "key-" + hashlib.sha256(b"hmu-api-key\0" + key.encode()).hexdigest()[:16]


def principal_for(key: str | None, keys: dict[str, list[str]]) -> Principal | None:
    """The caller of `key` (every key compared in constant time); OPEN without keys; None if not valid."""
    if not keys:
        return OPEN
    if not key:
        return None
    scopes: list[str] | None = None
    for candidate, candidate_scopes in keys.items():
        if hmac.compare_digest(candidate.encode(), key.encode()):
            scopes = list(candidate_scopes)
    return None if scopes is None else Principal(frozenset(scopes), key_fingerprint(key))


def authenticate(key: str | None = Security(api_key_header),
                 services: Services = Depends(get_services)) -> Principal:
    """Any valid key (or open mode); 401 otherwise."""
    principal = principal_for(key, services.settings.api_keys)
    if principal is None:
        words = "invalid API key" if key else "missing API key: send it in the X-API-Key header"
        raise HTTPException(401, words, headers={"WWW-Authenticate": "ApiKey"})
    wait = services.limiter.retry_after(principal.owner)
    if wait is not None:
        services.http_metrics.refused.labels("rate_limited").inc()
        raise HTTPException(429, f"rate limit: this API key sent more than {services.limiter.per_minute} "
                                 f"requests this minute; retry in {wait} s", headers={"Retry-After": str(wait)})
    return principal


def optional_principal(key: str | None = Security(api_key_header),
                       services: Services = Depends(get_services)) -> Principal | None:
    """The caller when it sent a valid key (or in open mode); None otherwise (never refuses)."""
    return principal_for(key, services.settings.api_keys)


def require_scope(scope: Scope, principal: Principal) -> None:
    if not principal.allows(scope):
        raise HTTPException(403, f"this API key lacks the '{scope}' scope")


def require(scope: Scope) -> Any:
    """Dependency: a valid key with `scope` (admin keys have every scope)."""

    def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        require_scope(scope, principal)
        return principal

    return Depends(dependency)
