"""Projects: staff register them and move them through their lifecycle; anyone reads totals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel

from services.api.deps import PublisherDep, QueriesDep
from services.api.errors import INVALID, INVALID_BODY, PUBLISHES, STAFF_ACCESS, Problem, errors
from services.api.models import (
    ClosureIn,
    CorrectionIn,
    PathId,
    ProgressIn,
    ProjectIn,
    ReasonIn,
    TransitionIn,
)
from services.api.producer import EventPublisher
from services.api.staff_auth import Actor, StaffAuth, StaffAuthDep, require
from services.api.submission import publish_or_503
from services.contracts import events as ev
from services.ledger.read import LedgerQueries, totals_view
from services.staff.domain.roles import Permission, Role

router = APIRouter(prefix="/api/projects", tags=["projects"])

UNKNOWN_PROJECT = {404: "no project with this id is registered"}

# The actor comes from the session (a person) or a machine client's token, never from the body.
Registrar = Annotated[Actor, Depends(require(Permission.REGISTER_PROJECT))]
Approver = Annotated[Actor, Depends(require(Permission.APPROVE_PROJECT, project_id="project_id"))]
Fundraiser = Annotated[Actor, Depends(require(Permission.RUN_FUNDRAISING, project_id="project_id"))]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(
        {
            **STAFF_ACCESS,
            409: "a project with this project_id is already registered",
            **INVALID_BODY,
            **PUBLISHES,
        }
    ),
)
async def register_project(
    body: ProjectIn, actor: Registrar, publisher: PublisherDep, queries: QueriesDep, auth: StaffAuthDep
) -> dict[str, Any]:
    """Registers a project; 409 if a project with this id is already registered.

    The check reads what the ledger has applied, so it cannot see a registration
    still on its way: two registrations of one new id sent at about the same
    moment can both be answered 202. The ledger still keeps only the first. Both
    carry the event id derived from the project id, so the later one is skipped
    as a redelivery or, differing in any field (its time included), dead-lettered
    as a conflicting duplicate; a registration of a known id under another event
    id is journaled as rejected.
    """
    return await publish_registration(body, actor, publisher, queries, auth)


async def publish_registration(
    body: ProjectIn, actor: Actor, publisher: EventPublisher, queries: LedgerQueries, auth: StaffAuth
) -> dict[str, Any]:
    """Publish a registration; the API and the console's form both come through here."""
    if await asyncio.to_thread(queries.project, body.project_id) is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"project {body.project_id!r} is already registered; nothing was published",
        )
    event = ev.ProjectRegistered(
        # Derived from what the request names, so a retried request is the same event.
        event_id=ev.derived_id("registered", body.project_id),
        occurred_at=ev.utc_now_ms(),
        actor=actor.name,
        **{**body.model_dump(), "starts_on": body.starts_on.isoformat(), "ends_on": body.ends_on.isoformat()},
    )
    await publish_or_503(publisher, event)
    if actor.person is not None and actor.person.role is Role.PROJECT_MANAGER:
        # The manager who registers a project runs it: it joins their scope.
        await asyncio.to_thread(auth.store.assign, actor.person.username, project_id=body.project_id)
    return {"accepted": True, "event_id": event.event_id, "project_id": body.project_id}


async def publish_transition(
    project_id: str,
    event_type: type[ev.Event],
    actor: Actor,
    publisher: EventPublisher,
    queries: LedgerQueries,
    **fields: Any,
) -> dict[str, Any]:
    """Publish a lifecycle event; the API and the console's forms both come through here."""
    if await asyncio.to_thread(queries.project, project_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    event = event_type(
        event_id=str(uuid.uuid4()),
        occurred_at=ev.utc_now_ms(),
        actor=actor.name,
        project_id=project_id,
        **fields,
    )
    await publish_or_503(publisher, event)
    # The ledger decides whether the transition is legal; the outcome topic says.
    return {"accepted": True, "event_id": event.event_id, "event": event.type_name}


TRANSITION_ERRORS = errors({**STAFF_ACCESS, **UNKNOWN_PROJECT, **INVALID, **PUBLISHES})


@router.post("/{project_id}/approve", status_code=status.HTTP_202_ACCEPTED, responses=TRANSITION_ERRORS)
async def approve(
    project_id: PathId, actor: Approver, publisher: PublisherDep, queries: QueriesDep
) -> dict[str, Any]:
    ref = f"APPROVAL-{project_id}"
    return await publish_transition(
        project_id, ev.ProjectApproved, actor, publisher, queries, approval_ref=ref
    )


@router.post(
    "/{project_id}/open-fundraising", status_code=status.HTTP_202_ACCEPTED, responses=TRANSITION_ERRORS
)
async def open_fundraising(
    project_id: PathId, actor: Fundraiser, publisher: PublisherDep, queries: QueriesDep
) -> dict[str, Any]:
    return await publish_transition(project_id, ev.FundraisingOpened, actor, publisher, queries)


@router.post(
    "/{project_id}/close-fundraising",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors({**STAFF_ACCESS, **UNKNOWN_PROJECT, **INVALID_BODY, **PUBLISHES}),
)
async def close_fundraising(
    project_id: PathId, body: TransitionIn, actor: Fundraiser, publisher: PublisherDep, queries: QueriesDep
) -> dict[str, Any]:
    return await publish_transition(
        project_id, ev.FundraisingClosed, actor, publisher, queries, reason=body.reason
    )


def correction_problems(queries: LedgerQueries, project_id: str, body: CorrectionIn) -> list[Problem]:
    """A correction names an event of this project's journal; that event stays as it is."""
    corrected = queries.entry(body.corrects_event_id)
    if corrected is None or corrected.get("project_id") != project_id:
        return [
            Problem(
                field="corrects_event_id",
                problem=f"no event {body.corrects_event_id} in the journal of project {project_id}",
            )
        ]
    return []


def closure_problems(queries: LedgerQueries, project_id: str, body: ClosureIn) -> list[Problem]:
    """Leftover funds transferred go to another project that is fundraising, in the same currency."""
    target_id = body.leftover_target_project_id
    if target_id is None:
        return []
    target, closing = queries.project(target_id), queries.project(project_id)
    problem = ""
    if target_id == project_id:
        problem = "a project cannot take its own leftover funds"
    elif target is None or str(target.status) != "fundraising":
        problem = f"project {target_id!r} is not open for fundraising"
    elif closing is not None and target.currency != closing.currency:
        problem = f"project {target_id!r} raises {target.currency}, not {closing.currency}"
    return [Problem(field="leftover_target_project_id", problem=problem)] if problem else []


class Conflict(HTTPException):
    """A 409 naming its problems: the body names something the ledger does not hold as the step
    needs it (an event of another project, a receiving project that is not fundraising)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(status.HTTP_409_CONFLICT, "; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class LaterStep:
    """A step of a project's life after registration that carries a body: its event, who may
    take it, the body (the console's form has the same fields; `across` names the field a rule
    across fields is about), and the checks that need the ledger's read side. Whether the step
    is legal in the project's state is the ledger's call."""

    event_type: type[ev.Event]
    permission: Permission
    body: type[BaseModel]
    doc: str
    check: Callable[[LedgerQueries, str, Any], list[Problem]] | None = None
    across: str = ""

    def problems(self, queries: LedgerQueries, project_id: str, body: BaseModel) -> list[Problem]:
        return self.check(queries, project_id, body) if self.check is not None else []


LATER_STEPS: dict[str, LaterStep] = {
    "report-progress": LaterStep(
        ev.ProgressReported,
        Permission.REPORT_PROGRESS,
        ProgressIn,
        "Publishes a progress report (ProgressReported), disclosed on the project's public page.",
    ),
    "publish-correction": LaterStep(
        ev.CorrectionPublished,
        Permission.REPORT_PROGRESS,
        CorrectionIn,
        "Publishes a correction note (CorrectionPublished) beside the event it corrects; 409 if "
        "that event is not in this project's journal. Nothing is edited: both stay disclosed.",
        correction_problems,
    ),
    "suspend": LaterStep(
        ev.ProjectSuspended,
        Permission.SUSPEND_PROJECT,
        ReasonIn,
        "Suspends the project (ProjectSuspended); the ledger refuses it unless the project is open.",
    ),
    "resume": LaterStep(
        ev.ProjectResumed,
        Permission.SUSPEND_PROJECT,
        ReasonIn,
        "Resumes a suspended project (ProjectResumed) in the state it was suspended from.",
    ),
    "close": LaterStep(
        ev.ProjectClosed,
        Permission.CLOSE_PROJECT,
        ClosureIn,
        "Closes the project (ProjectClosed) saying what becomes of its leftover funds; 409 if the "
        "receiving project is this one, not fundraising or in another currency. The ledger refuses "
        "the closure while fundraising, while funds are held, or with money left and no disposition.",
        closure_problems,
        across="leftover_target_project_id",
    ),
}
LATER_STEP_ERRORS = errors(
    {
        **STAFF_ACCESS,
        **UNKNOWN_PROJECT,
        409: "the body names what the ledger does not hold as the step needs it; nothing was published",
        **INVALID_BODY,
        **PUBLISHES,
    }
)


def _add_later_step(path: str, step: LaterStep) -> None:
    async def take(
        project_id: PathId, body: BaseModel, actor: Actor, publisher: PublisherDep, queries: QueriesDep
    ) -> dict[str, Any]:
        if await asyncio.to_thread(queries.project, project_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
        problems = await asyncio.to_thread(step.problems, queries, project_id, body)
        if problems:
            raise Conflict(problems)
        return await publish_transition(
            project_id, step.event_type, actor, publisher, queries, **body.model_dump()
        )

    # Each step's own body and permission, which FastAPI reads from the annotations.
    take.__annotations__.update(
        body=step.body, actor=Annotated[Actor, Depends(require(step.permission, project_id="project_id"))]
    )
    take.__name__ = take.__qualname__ = path.replace("-", "_")
    take.__doc__ = step.doc
    router.post(f"/{{project_id}}/{path}", status_code=status.HTTP_202_ACCEPTED, responses=LATER_STEP_ERRORS)(
        take
    )


for _path, _step in LATER_STEPS.items():
    _add_later_step(_path, _step)


@router.get("", responses=errors({}))
def list_projects(queries: QueriesDep) -> list[dict[str, Any]]:
    return [totals_view(p) for p in queries.projects()]


@router.get("/{project_id}/totals", responses=errors({**UNKNOWN_PROJECT, **INVALID}))
def project_totals(project_id: PathId, queries: QueriesDep) -> dict[str, Any]:
    project = queries.project(project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    return {**totals_view(project), "donors_count": queries.donors_count(project_id)}
