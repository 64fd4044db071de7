"""The donor's year-end statement: the gifts of the receipts they hold, each opened by its number
and verification code (services/api/donor_statements.py says why receipts, not a person).

A wrong number or code is a 404 naming the line, and counts against the asker (a keyed hash
of their address): past LookupGuard's limit the form answers 429 with Retry-After, so codes
cannot be guessed through it. The form posts (CSRF) so the codes stay out of addresses and logs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse

from services.api.deps import DonorStoreDep, QueriesDep, WebSecretDep
from services.api.donor_statements import (
    CHINA,
    WRONG,
    DonorStatement,
    LookupGuard,
    donor_statement,
    parse_request,
)
from services.api.errors import Problem, page_errors
from services.api.routes.giving_api import client_hash
from services.api.web import check_csrf, render

router = APIRouter(tags=["pages"], include_in_schema=True)


def guard_of(request: Request) -> LookupGuard:
    guard: LookupGuard = request.app.state.lookup_guard
    return guard


@router.get("/statements", response_class=HTMLResponse, responses=page_errors({}))
def statement_form(request: Request) -> HTMLResponse:
    return render(
        request, "donor_statement.html", receipts="", year=str(datetime.now(CHINA).year), problems=[]
    )


@router.post(
    "/statements",
    response_class=HTMLResponse,
    responses=page_errors(
        {
            403: "the form's CSRF token does not match (an old form, or another site's)",
            404: "a receipt number and code that do not match: the form again, naming the line",
            409: "a receipt whose gift the ledger has not recorded yet: the form again, naming it",
            422: "a line that is not NUMBER CODE, or a bad year: the form again, naming it",
            429: "too many wrong receipt numbers or codes from here just now; wait `Retry-After`",
        }
    ),
)
async def statement(
    request: Request,
    store: DonorStoreDep,
    queries: QueriesDep,
    secret: WebSecretDep,
    receipts: Annotated[str, Form(max_length=2000)] = "",
    year: Annotated[str, Form(max_length=4)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> HTMLResponse:
    check_csrf(request, secret, csrf_token)
    guard, client = guard_of(request), client_hash(request, secret)
    # Codes are not shown again: the donor types them anew, as on the receipt lookup.
    numbers = "\n".join(line.split()[0] for line in receipts.splitlines() if line.split())

    def again(code: int, problems: list[Problem], found: DonorStatement | None = None) -> HTMLResponse:
        return render(
            request, "donor_statement.html", code, problems=problems, receipts=numbers, year=year, s=found
        )

    wait = guard.retry_after_s(client)
    if wait:
        busy = "错误次数过多，请稍后再试 · too many wrong numbers or codes; try again later"
        response = again(status.HTTP_429_TOO_MANY_REQUESTS, [Problem(field="receipts", problem=busy)])
        response.headers["Retry-After"] = str(wait)
        return response
    asked, wanted_year, problems = parse_request(receipts, year, with_codes=True)
    if problems:
        return again(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)
    # Counted as wrong before they are checked (no await in between), so forms sent together
    # cannot check more codes than the limit leaves; those not wrong are given back after.
    budget = guard.reserve(client, len(asked))
    wrong = 0
    try:
        found, problems = await asyncio.to_thread(
            donor_statement, store, queries, asked, wanted_year, max_wrong=budget
        )
        wrong = sum(p.field.endswith(WRONG) for p in problems)
    finally:
        guard.settle(client, budget, wrong)
    if problems:
        return again(status.HTTP_404_NOT_FOUND if wrong else status.HTTP_409_CONFLICT, problems)
    return again(status.HTTP_200_OK, [], found)
