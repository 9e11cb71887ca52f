"""Errors of the HTTP intake as ``application/problem+json`` (RFC 9457), naming the field.

Every error a client can cause is a 4xx problem with one line of detail;
a shared service being down is a 503; nothing a client sends may produce a
500 (the fuzz tests hold the API to that).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from worker.errors import ConfigError, MailpipeError, UnavailableError, UnknownProfileError
from worker.intake import InvalidMessageError
from worker.store.database import StoreUnavailableError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An HTTP error with a one-line detail, and the field it is about when there is one."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.headers = dict(headers or {})


def response(problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.field is not None:
        body["field"] = problem.field
    return JSONResponse(body, problem.status, headers=problem.headers, media_type=MEDIA_TYPE)


def from_error(exc: MailpipeError) -> Problem:
    """Our errors, as what the client should hear."""
    if isinstance(exc, InvalidMessageError):
        return Problem(422, "Invalid notification", str(exc), field=exc.field)
    if isinstance(exc, UnknownProfileError):
        # Not str(exc): it lists every profile, and a key may use only some.
        return Problem(422, "Unknown profile", f"unknown profile '{exc.name}'", field="profile")
    if isinstance(exc, UnavailableError):
        # Which part, never where it is: the driver's text names hosts and ports (logged).
        log.warning("answered 503: %s", exc)
        part = "the database" if isinstance(exc, StoreUnavailableError) else "Redis"
        return Problem(
            503,
            "Service unavailable",
            f"{part} is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, ConfigError):
        return Problem(500, "Configuration error", str(exc))
    return Problem(422, "Unprocessable", str(exc))


def field_of(location: Sequence[Any]) -> str:
    """``("body", "to", 0)`` → ``to[0]``; ``("query", "profile")`` → ``profile``."""
    parts = [p for p in location if p not in ("body", "query", "header", "path")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(exc)

    @app.exception_handler(MailpipeError)
    async def _ours(request: Request, exc: MailpipeError) -> JSONResponse:
        problem = from_error(exc)
        if problem.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return response(problem)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = field_of(first.get("loc", ()))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return response(Problem(422, "Invalid request", f"{field}: {message}{more}", field=field))
