"""Limits enforced before a route runs (a pure ASGI middleware): a request with a body must carry a valid
API key before any of the body is read (when keys are configured), and the body is bounded while it
streams, Content-Length or chunked (JSON bodies to `json_max_bytes`, others to `body_max_bytes`).
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.deps import Services, principal_for

PUBLIC = ("/healthz", "/readyz", "/metrics", "/", "/docs", "/redoc", "/openapi.json")  # no key needed


def _needs_key(path: str) -> bool:
    return path not in PUBLIC and not path.startswith("/static/")


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length", "")
    return "chunked" in headers.get("transfer-encoding", "").lower() or (length.strip() not in ("", "0"))


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


class RequestGuard:
    """Auth before the body, then the body size: 401 / 413 with a clear message, counted per reason."""

    def __init__(self, app: ASGIApp, services: Services):
        self.app, self.services = app, services

    def limit_for(self, headers: Headers) -> int:
        settings = self.services.settings
        json_body = headers.get("content-type", "").split(";")[0].strip().lower().endswith("json")
        return settings.json_max_bytes if json_body else settings.body_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if not _has_body(headers):
            return await self.app(scope, receive, send)
        keys = self.services.settings.api_keys
        key = headers.get("x-api-key")
        if _needs_key(scope["path"]) and principal_for(key, keys) is None:  # refused unread
            words = "invalid API key" if key else "missing API key: send it in the X-API-Key header"
            return await self.refuse(send, 401, words, "unauthenticated", {"WWW-Authenticate": "ApiKey"})
        limit = self.limit_for(headers)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return await self.refuse(send, 413, _too_large(limit), "body_too_large")
        await self.app(scope, self.bounded(receive, limit), send)

    def bounded(self, receive: Receive, limit: int) -> Receive:
        """`receive` that counts the body bytes and stops the request past `limit` (413 via the handlers)."""
        seen = 0
        refused = self.services.http_metrics.refused

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused.labels("body_too_large").inc()
                    raise HTTPException(413, _too_large(limit))
            return message

        return wrapped

    async def refuse(self, send: Send, status: int, detail: str, reason: str,
                     headers: dict[str, str] | None = None) -> None:
        self.services.http_metrics.refused.labels(reason).inc()
        body = json.dumps({"detail": detail}).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
