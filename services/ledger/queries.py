"""The read models the API may use: read-only views of the ledger database."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, select

from services.ledger import tables as t
from services.ledger.domain.state import ProjectTotals
from services.ledger.store import project_from_row


def totals_view(p: ProjectTotals) -> dict[str, Any]:
    return {
        "project_id": p.project_id,
        "name": p.plan.get("name", p.project_id),
        "name_en": p.plan.get("name_en"),
        "organisation": p.plan.get("organisation"),
        "certificate_no": p.plan.get("certificate_no"),
        "status": str(p.status),
        "currency": p.currency,
        "goal_fen": p.goal_fen,
        "raised_fen": p.raised_fen,
        "gross_fen": p.gross_fen,
        "fees_fen": p.fees_fen,
        "net_fen": p.net_fen,
        "offline_cash_fen": p.offline_cash_fen,
        "offline_sales_fen": p.offline_sales_fen,
        "by_channel": p.by_channel,
        "donations_count": p.donations_count,
        "refunded_fen": p.refunded_fen,
        "held_fen": p.held_fen,
        "disbursed_fen": p.disbursed_fen,
        "suspense_fen": p.suspense_fen,
        "leftover_fen": p.leftover_fen,
        "available_fen": p.fund_fen,
        "as_of_seq": p.last_entry_seq,
    }


class LedgerQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def project(self, project_id: str) -> ProjectTotals | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.project_totals).where(t.project_totals.c.project_id == project_id))
                .mappings()
                .first()
            )
        return project_from_row(row) if row else None

    def projects(self) -> list[ProjectTotals]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.project_totals).order_by(t.project_totals.c.project_id)).mappings()
            return [project_from_row(r) for r in rows]

    def journal_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.journal)) or 0)

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.journal).where(t.journal.c.entry_id == entry_id)).mappings().first()
            if row is None:
                return None
            legs = conn.execute(
                select(t.postings).where(t.postings.c.seq == row["seq"]).order_by(t.postings.c.leg)
            ).mappings()
            entry = dict(row)
            entry["body"] = json.loads(entry["body"])
            entry["postings"] = [[p["account"], p["currency"], p["amount"]] for p in legs]
            return entry
