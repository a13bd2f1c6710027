"""Error translation at the HTTP edge and the request-size limit.

Every error body is ``{"error": code, "message": text, "hint"?: text}``.
"""

from __future__ import annotations

import logging
import math

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.core.errors import AtollError, PayloadTooLarge, RateLimited, Unavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_input",
}


def _body(code: str, message: str, hint: str | None = None, **extra) -> dict:
    out = {"error": code, "message": message}
    if hint:
        out["hint"] = hint
    out.update(extra)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(AtollError)
    async def _atoll(request: Request, exc: AtollError) -> JSONResponse:
        headers = {"WWW-Authenticate": _challenge(request)} if exc.status == 401 else None
        if isinstance(exc, RateLimited | Unavailable) and exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
            problems.append(f"{loc}: {err.get('msg')}")
        return JSONResponse(
            _body(
                "invalid_input",
                "; ".join(problems) or "invalid request",
                "see the OpenAPI schema at /docs for the expected shape",
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            _body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            _body("internal", "internal error; see the server log"), status_code=500
        )


def _challenge(request: Request) -> str:
    return (
        'Basic realm="atoll-devices"' if "/ingest/" in request.url.path else 'Bearer realm="atoll"'
    )


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413 before they are buffered (also chunked ones)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = 0
                if size > limit:
                    await self._refuse(send, size)
                    return
        seen = 0
        too_large = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks may turn the receive error into their own 400; answer 413 instead.
            nonlocal refused
            if too_large:
                if not refused:
                    refused = True
                    await self._refuse(send, seen)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge:
            if not refused:
                refused = True
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        message = f"request body is {size} bytes; the limit is {self.max_bytes}"
        body = orjson.dumps(
            _body("payload_too_large", message, "split the batch into smaller requests")
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
