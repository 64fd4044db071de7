"""Public proofs: tree heads, receipts with inclusion proofs, consistency proofs, audit views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse

from services.api.deps import QueriesDep, SettingsDep
from services.ledger.read import LedgerQueries, NotYetCovered, Transparency, published_public_key

router = APIRouter(tags=["transparency"])


def _transparency(request: Request) -> Transparency:
    transparency: Transparency = request.app.state.transparency
    return transparency


@router.get("/api/transparency/public-key", response_class=PlainTextResponse)
def public_key(settings: SettingsDep) -> str:
    """The Ed25519 key that signs tree heads, as PEM, as the ledger published it."""
    pem = published_public_key(settings.signing_key_path)
    if pem is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the ledger has not published its public key yet",
            headers={"Retry-After": "5"},
        )
    return pem


@router.get("/api/transparency/tree-heads")
def tree_heads(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
    return _transparency(request).heads(limit)


@router.get("/api/transparency/consistency")
def consistency(
    request: Request, first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)]
) -> dict[str, Any]:
    t = _transparency(request)
    old, new = t.head(first), t.head(second)
    if old is None or new is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "both sizes must be those of published tree heads")
    try:
        proof = t.consistency(first, second)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return {"first": old, "second": new, "consistency_proof": proof}


@router.get("/api/receipts/{entry_id}")
def receipt(request: Request, entry_id: str) -> dict[str, Any]:
    """A receipt anyone can check with services/verifier/receipt.py and the public key."""
    try:
        found = _transparency(request).receipt(entry_id)
    except NotYetCovered as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{exc}; tree heads are signed every few seconds",
            headers={"Retry-After": "5"},
        ) from exc
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no journal entry {entry_id!r}")
    return found


def _project_or_404(queries: LedgerQueries, project_id: str) -> None:
    if queries.project(project_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")


@router.get("/api/projects/{project_id}/statement")
def statement(project_id: str, queries: QueriesDep) -> dict[str, Any]:
    _project_or_404(queries, project_id)
    return {"project_id": project_id, "lines": queries.statement(project_id)}


@router.get("/api/projects/{project_id}/balances")
def balances_as_of(project_id: str, queries: QueriesDep, as_of: datetime) -> dict[str, Any]:
    """Point-in-time balances: ?as_of=2026-06-30T23:59:59Z."""
    _project_or_404(queries, project_id)
    if as_of.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "as_of needs a time zone, e.g. ...Z or +08:00"
        )
    return {"project_id": project_id, "as_of": as_of.isoformat(), **queries.balances_as_of(project_id, as_of)}


@router.get("/api/projects/{project_id}/lineage")
def lineage(project_id: str, queries: QueriesDep) -> dict[str, Any]:
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


@router.get("/api/donations/{donation_id}")
def donation(donation_id: str, queries: QueriesDep) -> dict[str, Any]:
    """For a donor: the gift, where it went, and the id of its receipt."""
    found = queries.donation(donation_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no confirmed donation {donation_id!r}")
    went = queries.lineage(found["project_id"]).where_it_went(donation_id)
    return {
        **found,
        "spent_on": [{"disbursement_id": s.source, "amount_fen": s.amount_fen} for s in went],
        "receipt_url": f"/api/receipts/{found['entry_id']}",
    }
