"""The one way routes publish: validate, publish, and turn broker trouble into 503."""

from __future__ import annotations

from fastapi import HTTPException, status

from services.api.producer import BrokerUnavailable, EventPublisher
from services.contracts.events import Event
from services.contracts.validation import problems_with

RETRY_AFTER_S = "5"


async def publish_or_503(publisher: EventPublisher, event: Event) -> None:
    problems = problems_with(event)
    if problems:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"error": "invalid event", "problems": problems}
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
            headers={"Retry-After": RETRY_AFTER_S},
        ) from exc
