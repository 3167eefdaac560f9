"""The test helper's HTTP server: a Starlette app factory, `create_app(network, ...)`.

POST / takes a control request and answers the control measurement; GET / is a health check.
Bad input gets one JSON error shape, `{"error": {"code": ..., "message": ...}}`, with 400
(bad JSON / fields), 405, 413 (body over the cap), 415 (not application/json) or 503 (more
requests in flight than allowed).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dideban.netx import Network
from dideban.netx.network import GlobalOnlyDialer
from dideban.testhelper.control import (
    REFUSED_DESTINATION,
    BadControlRequest,
    measure_control,
    parse_control_request,
)

log = logging.getLogger(__name__)

MAX_BODY = 16 << 20
MAX_IN_FLIGHT = 64


def error(status: int, code: str, message: str) -> JSONResponse:
    """The one error shape of the helper."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, cap: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > cap:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    network: Network,
    *,
    lab_mode: bool | None = None,
    max_in_flight: int = MAX_IN_FLIGHT,
    max_body: int = MAX_BODY,
) -> Starlette:
    """The helper as an ASGI app. `lab_mode` defaults to whether `network` is a lab network
    (then lab destinations are allowed, through the lab's control view)."""
    lab = network.lab is not None if lab_mode is None else lab_mode
    if not lab:
        # Every dial (endpoints, the URL's addresses, redirect targets) must be public.
        network = dataclasses.replace(
            network, dialer=GlobalOnlyDialer(network.dialer, REFUSED_DESTINATION)
        )
    state = {"in_flight": 0}

    async def health(request: Request) -> Response:
        del request
        return JSONResponse({"status": "ok", "service": "dideban-testhelper", "lab_mode": lab})

    async def control(request: Request) -> Response:
        if state["in_flight"] >= max_in_flight:
            return error(503, "overloaded", f"more than {max_in_flight} requests in flight")
        state["in_flight"] += 1
        try:
            return await _control(request)
        finally:
            state["in_flight"] -= 1

    async def _control(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(415, "unsupported_media_type", "the body must be application/json")
        try:
            raw = await _read_capped(request, max_body)
        except _TooLarge:
            return error(413, "body_too_large", f"the body is over {max_body} bytes")
        try:
            data: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, "bad_json", f"the body is not JSON: {exc}")
        try:
            req = parse_control_request(data)
        except BadControlRequest as exc:
            return error(400, "bad_request", str(exc))
        try:
            answer = await measure_control(network, req, lab_mode=lab)
        except Exception:  # a bug, not bad input: still the one error shape
            log.exception("control measurement failed")
            return error(500, "internal_error", "the control measurement failed")
        return JSONResponse(answer)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        del request, exc
        return error(405, "method_not_allowed", "use GET / (health) or POST / (control)")

    async def not_found(request: Request, exc: Exception) -> Response:
        del exc
        return error(404, "not_found", f"no such path: {request.url.path}")

    return Starlette(
        routes=[Route("/", health, methods=["GET"]), Route("/", control, methods=["POST"])],
        exception_handlers={405: not_allowed, 404: not_found},
    )
