"""Public proofs: tree heads, receipts with inclusion proofs, consistency proofs, audit views."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from services.api.deps import QueriesDep
from services.api.errors import INVALID, RETRY_AFTER_S, errors
from services.api.models import MAX_INT64, Instant, PathId
from services.api.routes.projects import UNKNOWN_PROJECT
from services.ledger.read import LedgerQueries, NotYetCovered, Transparency

router = APIRouter(tags=["transparency"])

# A tree size counts journal entries: at least 1, at most what the database's integers hold.
TreeSize = Annotated[int, Query(ge=1, le=MAX_INT64)]
# Entry ids are event ids: UUIDs, in any form Python's uuid.UUID reads.
EntryId = Annotated[str, Path(pattern=r"^[A-Za-z0-9{}:-]{1,64}$", description="a journal entry's id")]


def _transparency(request: Request) -> Transparency:
    transparency: Transparency = request.app.state.transparency
    return transparency


@router.get(
    "/api/transparency/public-key",
    response_class=PlainTextResponse,
    responses=errors(
        {503: "the ledger has not registered its key yet, or the database cannot be reached"},
        json_route=False,
    ),
)
def public_key(request: Request) -> str:
    """The Ed25519 key that signs new tree heads, as PEM (older heads name theirs by
    `key_id`: see /api/transparency/public-keys)."""
    pem = _transparency(request).current_public_key()
    if pem is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the ledger has not published its public key yet",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return pem


class PublicKey(BaseModel):
    key_id: str = Field(description="hex SHA-256 of the raw public key; tree heads name it")
    algorithm: str = Field(description="'Ed25519'")
    valid_from: str = Field(description="when the key came into use, UTC, ISO 8601")
    public_key: str = Field(description="SubjectPublicKeyInfo PEM")


@router.get("/api/transparency/public-keys", responses=errors({}))
def public_keys(request: Request) -> list[PublicKey]:
    """Every key that has signed tree heads, oldest first; rotation adds one."""
    return [PublicKey(**key) for key in _transparency(request).public_keys()]


@router.get("/api/transparency/tree-heads", responses=errors(INVALID))
def tree_heads(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
    return _transparency(request).heads(limit)


@router.get(
    "/api/transparency/consistency",
    responses=errors(
        {
            404: "`first` or `second` is not the size of a published tree head",
            422: "invalid sizes, or `first` is greater than `second`",
        }
    ),
)
def consistency(request: Request, first: TreeSize, second: TreeSize) -> dict[str, Any]:
    """A proof that the tree head of size `second` extends the one of size `first` (`first` is not
    greater than `second`)."""
    t = _transparency(request)
    old, new = t.head(first), t.head(second)
    if old is None or new is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "both sizes must be those of published tree heads")
    try:
        proof = t.consistency(first, second)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return {"first": old, "second": new, "consistency_proof": proof}


@router.get(
    "/api/receipts/{entry_id}",
    responses=errors(
        {
            404: "no journal entry with this id",
            409: "the entry is recorded but no signed tree head covers it yet; retry after `Retry-After`",
            **INVALID,
        },
        retry_after=(409,),
    ),
)
def receipt(request: Request, entry_id: EntryId) -> dict[str, Any]:
    """A receipt anyone can check with services/verifier/receipt.py and the public key."""
    try:
        found = _transparency(request).receipt(entry_id)
    except NotYetCovered as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{exc}; tree heads are signed every few seconds",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no journal entry {entry_id!r}")
    return found


def _project_or_404(queries: LedgerQueries, project_id: str) -> None:
    if queries.project(project_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")


@router.get("/api/projects/{project_id}/statement", responses=errors({**UNKNOWN_PROJECT, **INVALID}))
def statement(project_id: PathId, queries: QueriesDep) -> dict[str, Any]:
    _project_or_404(queries, project_id)
    return {"project_id": project_id, "lines": queries.statement(project_id)}


@router.get("/api/projects/{project_id}/balances", responses=errors({**UNKNOWN_PROJECT, **INVALID}))
def balances_as_of(
    project_id: PathId,
    queries: QueriesDep,
    as_of: Annotated[Instant, Query(description="with its time zone, e.g. ...Z or +08:00")],
) -> dict[str, Any]:
    """Point-in-time balances: ?as_of=2026-06-30T23:59:59Z."""
    _project_or_404(queries, project_id)
    return {"project_id": project_id, "as_of": as_of.isoformat(), **queries.balances_as_of(project_id, as_of)}


@router.get("/api/projects/{project_id}/lineage", responses=errors({**UNKNOWN_PROJECT, **INVALID}))
def lineage(project_id: PathId, queries: QueriesDep) -> dict[str, Any]:
    _project_or_404(queries, project_id)
    traced = queries.lineage(project_id)
    return {
        "project_id": project_id,
        "method": "first in, first out",
        "disbursements": {
            d: [{"source": s.source, "amount_fen": s.amount_fen} for s in slices]
            for d, slices in traced.funded_by.items()
        },
        "unspent": [{"source": s.source, "amount_fen": s.amount_fen} for s in traced.unspent],
    }
