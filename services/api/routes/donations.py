"""The stand-in for payment-provider callbacks: records a confirmed donation.

Staff-token protected: it is never public. The payment-provider integration
replaces it with signed provider callbacks. It runs on the event loop (no
worker thread per request): the project check is mostly answered from memory
(see open_projects.py) and publishing awaits the broker's acknowledgement.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from services.api.deps import OpenProjectsDep, PublisherDep, StaffDep
from services.api.errors import INVALID_BODY, PUBLISHES, STAFF_ONLY, errors
from services.api.models import ConfirmedDonationIn
from services.api.submission import publish_or_503
from services.contracts import events as ev
from services.ledger.read import ProjectStatus

router = APIRouter(prefix="/api/internal", tags=["payments (stand-in)"])


@router.post(
    "/donations/confirmed",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(
        {
            **STAFF_ONLY,
            404: "no project with this project_id is registered",
            409: "the project does not take gifts now (not fundraising), or takes them in another currency",
            **INVALID_BODY,
            **PUBLISHES,
        }
    ),
)
async def confirm_donation(
    body: ConfirmedDonationIn, _staff: StaffDep, publisher: PublisherDep, open_projects: OpenProjectsDep
) -> dict[str, Any]:
    project = await open_projects.project(body.project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {body.project_id!r}")
    if project.status != ProjectStatus.FUNDRAISING:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"project {body.project_id!r} is {project.status}, not fundraising"
        )
    if body.currency != project.currency:
        # A valid currency, but not the project's: a conflict with the project, like its status.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"currency {body.currency} does not match the project's {project.currency}",
        )
    event = ev.DonationConfirmed(
        # One donation is one event, however often the provider calls back.
        event_id=ev.derived_id("confirmed", body.donation_id),
        occurred_at=ev.utc_ms(body.confirmed_at) if body.confirmed_at else ev.utc_now_ms(),
        actor=body.provider,
        **body.model_dump(exclude={"confirmed_at"}),
    )
    await publish_or_503(publisher, event)
    return {"accepted": True, "event_id": event.event_id, "donation_id": body.donation_id}
