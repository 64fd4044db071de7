"""The one way routes publish: validate, publish, and turn broker trouble into 503."""

from __future__ import annotations

from fastapi import HTTPException, status

from services.api.errors import RETRY_AFTER_S, Invalid, Problem
from services.api.producer import BrokerUnavailable, EventPublisher
from services.contracts.events import Event
from services.contracts.validation import problems_with


async def publish_or_503(publisher: EventPublisher, event: Event) -> None:
    # The request models check the same rules, field by field: this is the backstop.
    problems = problems_with(event)
    if problems:
        raise Invalid(
            f"invalid event: {'; '.join(problems)}", [Problem(field="body", problem=p) for p in problems]
        )
    try:
        await publisher.publish(event)
    except BrokerUnavailable as exc:
        if exc.maybe_recorded:
            # Event ids are derived from what the request names (donation, project), so
            # the ledger applies a retried event once, whether or not the first landed.
            what = "it may still be recorded (a retry of the same request is applied at most once)"
        else:
            what = "nothing was recorded; retry later"
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the event log is unavailable, {what} ({exc})",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
