"""What every error answer of the API looks like, and how routes declare theirs.

Every 4xx and 5xx the API answers is an `ErrorBody`: a sentence in `detail` and,
field by field, the `problems` (empty unless the request itself was invalid).
Routes list the errors they can answer with `errors(...)`, so the OpenAPI
document states each status code with this schema instead of FastAPI's own
validation-error shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.ledger.read import DATABASE_AWAY

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5


class Problem(BaseModel):
    field: str = Field(description="the offending input, dotted (e.g. 'gross_fen'), or 'body' for the whole")
    problem: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    detail: str = Field(description="what went wrong, in one sentence")
    problems: list[Problem] = Field(description="for 422: each invalid input and why; otherwise empty")


class Invalid(StarletteHTTPException):
    """A 422 that names its problems, like a request that failed validation."""

    def __init__(self, detail: str, problems: list[Problem]) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
        self.problems = problems


# Descriptions of the errors several routes share.
STAFF_ONLY: Mapping[int, str] = {
    401: "no valid staff token: send `Authorization: Bearer <CHARITY_STAFF_TOKEN>`",
    403: "staff endpoints are disabled: the server has no staff token configured",
}
# Routes people use through a staff session, and machine clients with their token.
STAFF_ACCESS: Mapping[int, str] = {
    401: "nobody is logged in (the staff session cookie) and no machine client's token was sent "
    "(`Authorization: Bearer …`)",
    403: "the person's role, or the projects assigned to them, do not allow this; the refusal is "
    "in the access log",
}
INVALID: Mapping[int, str] = {422: "the request is invalid; `problems` names each offending input"}
# What routes that take a body answer besides: a body that is not text FastAPI can decode.
INVALID_BODY: Mapping[int, str] = {400: "the body could not be read (not UTF-8 text)", **INVALID}
PUBLISHES: Mapping[int, str] = {
    503: "the event log did not acknowledge the event (`detail` says whether it may still be "
    "recorded), or the ledger database cannot be reached. Retrying the same request is safe; "
    "wait `Retry-After` seconds."
}
DATABASE_AWAY_DETAIL = "the ledger database cannot be reached just now; nothing was done, retry later"
# Every route that reads the ledger may answer this (see install_error_handlers).
DATABASE_AWAY_503 = (
    "the ledger database cannot be reached (or, for a route that publishes, the event log "
    "did not acknowledge the event; `detail` says which). Wait `Retry-After` seconds and retry."
)
_RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 3600},
}
_WWW_AUTHENTICATE = {
    "description": "`Bearer` on staff routes; `WECHATPAY2-SHA256-RSA2048` on payment notifications",
    "required": True,
    "schema": {"type": "string"},
}


def errors(
    described: Mapping[int, str], *, retry_after: Collection[int] = (503,), json_route: bool = True
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its description and the ErrorBody schema.

    A route whose own answers are not JSON (`json_route=False`) still answers errors
    as JSON; FastAPI would file a `model` under the route's own media type.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    described = {503: DATABASE_AWAY_503, **described}
    for code, description in sorted(described.items()):
        response: dict[str, Any] = {"description": description}
        if json_route:
            response["model"] = ErrorBody
        else:
            response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        headers = {}
        if code in retry_after or code == 503:
            headers["Retry-After"] = _RETRY_AFTER
        if code == 401:
            headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
        if headers:
            response["headers"] = headers
        responses[code] = response
    return responses


def _readable(error: Mapping[str, Any]) -> Problem:
    field = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return Problem(field=field or "body", problem=str(error.get("msg", "invalid")))


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed_methods(request: Request, first_route_allows: str) -> str:
    """Every method the OpenAPI document lists for this path.

    Starlette's 405 names the methods of the first route whose path matches, so
    `DELETE /api/projects` said `Allow: POST` although GET is served there too.
    """
    methods = {method.strip() for method in first_route_allows.split(",") if method.strip()}
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    for template, operations in paths.items():
        # /api/projects/{project_id}/totals -> /api/projects/[^/]+/totals
        pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations if method in _METHODS}
    return ", ".join(sorted(methods))


def _answer(
    status_code: int, detail: str, problems: list[Problem], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(detail=detail, problems=problems)
    return JSONResponse(status_code=status_code, content=body.model_dump(), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app answers, its own or the framework's, as an ErrorBody."""

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [_readable(e) for e in exc.errors()]
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems)
        return _answer(status.HTTP_422_UNPROCESSABLE_CONTENT, summary, problems)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
        return _answer(exc.status_code, str(exc.detail), getattr(exc, "problems", []), headers)

    async def database_away(_: Request, exc: Exception) -> JSONResponse:
        log.warning("answering 503: the ledger database is away (%s)", type(exc).__name__)
        return _answer(
            status.HTTP_503_SERVICE_UNAVAILABLE, DATABASE_AWAY_DETAIL, [], {"Retry-After": str(RETRY_AFTER_S)}
        )

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for away in DATABASE_AWAY:
        app.add_exception_handler(away, database_away)


def page_errors(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an HTML page: its own errors are pages too (a form shown again with the
    reason); a request FastAPI refuses before the route (422) or a database away (503) is JSON."""
    responses = errors(described, retry_after=(429, 503), json_route=False)
    for code, response in responses.items():
        if code in described:
            response.setdefault("content", {})["text/html"] = {"schema": {"type": "string"}}
    return responses
