"""The read models the API may use: read-only views of the ledger database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.engine import Connection

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import StoredEntry, iter_seqs
from services.ledger.adapters.store import project_from_row
from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain.chain import iso_ms
from services.ledger.domain.disclosure import next_disclosure_due
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.lineage import Lineage, trace
from services.ledger.domain.state import ProjectTotals


def totals_view(p: ProjectTotals) -> dict[str, Any]:
    due, rule = next_disclosure_due(p)
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
        "redirected_in_fen": p.redirected_in_fen,
        "leftover_fen": p.leftover_fen,
        "available_fen": p.fund_fen,
        "as_of_seq": p.last_entry_seq,
        "disclosure_due": due.isoformat() if due else None,
        "disclosure_rule": rule,
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
        entry: dict[str, Any] = json.loads(row["canonical"])  # exactly what was hashed
        return {**entry, "source": row["source"], "entry_hash": row["entry_hash"]}

    def suspense_resolutions(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """Requests to redirect or refund money in suspense (of one project, or all), newest
        last, with their status as the ledger decided it."""
        r = t.suspense_resolutions
        query = select(r).order_by(r.c.project_id, r.c.resolution_id)
        if project_id is not None:
            query = query.where(r.c.project_id == project_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def donors_count(self, project_id: str) -> int:
        """Distinct donors: one per donor_ref, and each gift without a ref counts as one donor."""
        d = t.donations
        where = and_(d.c.project_id == project_id, d.c.to_suspense.is_(False))
        with self.engine.connect() as conn:
            known = conn.scalar(select(func.count(func.distinct(d.c.donor_ref))).where(where)) or 0
            anonymous = conn.scalar(select(func.count()).where(where, d.c.donor_ref.is_(None))) or 0
        return int(known) + int(anonymous)

    def balances_as_of(self, project_id: str, instant: datetime) -> dict[str, int]:
        """The project's accounts as they stood at an effective time (later corrections included).

        The instant is compared in UTC: SQLite keeps the times as UTC text, and would
        compare an instant in another zone by its wall clock."""
        instant = instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)
        accounts = {"available_fen": acc.project_fund(project_id), "held_fen": acc.project_held(project_id)}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.postings.c.account, func.sum(t.postings.c.amount))
                .join(t.journal, t.journal.c.seq == t.postings.c.seq)
                .where(t.postings.c.account.in_(accounts.values()), t.journal.c.effective_at <= instant)
                .group_by(t.postings.c.account)
            ).all()
        sums = {account: int(total) for account, total in rows}
        return {name: sums.get(account, 0) for name, account in accounts.items()}

    def project_entries(self, project_id: str, kinds: Iterable[str] | None = None) -> list[StoredEntry]:
        """The project's entries in journal order; only those of `kinds` when given."""
        condition = t.journal.c.project_id == project_id
        if kinds is not None:
            condition = and_(condition, t.journal.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            seqs = list(conn.scalars(select(t.journal.c.seq).where(condition).order_by(t.journal.c.seq)))
        return list(iter_seqs(self.engine, seqs))

    def statement(self, project_id: str) -> list[dict[str, Any]]:
        """Every entry of the project with its effect on the fund and the running balance."""
        fund, held = acc.project_fund(project_id), acc.project_held(project_id)
        balance = 0
        lines = []
        for stored in self.project_entries(project_id):
            r = stored.record
            change = sum(amount for account, _, amount in r["postings"] if account == fund)
            held_change = sum(amount for account, _, amount in r["postings"] if account == held)
            balance += change
            lines.append(
                {
                    "seq": r["seq"],
                    "entry_id": r["entry_id"],
                    "kind": r["kind"],
                    "decision": r["decision"],
                    "reason": r["reason"],
                    "effective_at": r["effective_at"],
                    "recorded_at": r["recorded_at"],
                    "fund_change_fen": change,
                    "held_change_fen": held_change,
                    "available_after_fen": balance,
                }
            )
        return lines

    def lineage(self, project_id: str) -> Lineage:
        entries: list[JournalEntry] = [
            s.entry for s in self.project_entries(project_id) if s.entry is not None
        ]
        return trace(entries)

    def donation(self, donation_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = _donation_row(conn, donation_id)
            if row is None:
                return None
            confirmation = _confirmation(conn, row["project_id"], donation_id)
        return {**dict(row), "entry_id": confirmation["entry_id"] if confirmation else None}

    def gift(self, donation_id: str) -> dict[str, Any] | None:
        """A confirmed gift as its receipt shows it, or None if no gift has this id.

        The money, the receipt number and the entry's place and decision are read
        from the journal entry that booked the gift (what a receipt proves); only
        `refunded_fen`, which later entries change, from the donations projection.
        """
        with self.engine.connect() as conn:
            row = _donation_row(conn, donation_id)
            if row is None:
                return None
            entry = _confirmation(conn, row["project_id"], donation_id)
        if entry is None:
            return None  # a projection row without its entry: the journal is the authority
        body = entry["body"]
        return {
            "donation_id": donation_id,
            "project_id": entry["project_id"],
            "currency": body["currency"],
            "gross_fen": body["gross_fen"],
            "fee_fen": body["fee_fen"],
            "refunded_fen": row["refunded_fen"],
            "receipt_no": body.get("receipt_no"),  # absent from entries of gifts before v2
            "entry_id": entry["entry_id"],
            "seq": entry["seq"],
            "effective_at": entry["effective_at"],
            "recorded_at": entry["recorded_at"],
            "decision": entry["decision"],
            "reason": entry["reason"],
        }

    def gift_uses(self, donation_id: str) -> list[dict[str, Any]]:
        """The disbursements a gift paid for, in the order their funds were held.

        What each took of this gift follows the fund lineage (first in, first out,
        domain/lineage.py); purpose and dates come from the project's journal
        entries, status, payee and evidence from the disbursements projection.
        [] for an unknown gift and for one not spent yet.
        """
        with self.engine.connect() as conn:
            row = _donation_row(conn, donation_id)
        if row is None:
            return []
        stored = self.project_entries(row["project_id"])
        entries = [s.entry for s in stored if s.entry is not None]
        went = trace(entries).where_it_went(donation_id)
        if not went:
            return []
        wanted = {s.source for s in went}
        dates = _disbursement_dates(entries, wanted)
        with self.engine.connect() as conn:
            rows = {
                r["disbursement_id"]: r
                for r in conn.execute(
                    select(t.disbursements).where(t.disbursements.c.disbursement_id.in_(wanted))
                ).mappings()
            }
        return [
            {
                "disbursement_id": s.source,
                "purpose": dates[s.source].get("purpose"),
                "payee": rows[s.source]["payee"],
                "currency": rows[s.source]["currency"],
                "amount_fen": s.amount_fen,  # what this gift paid of it
                "disbursement_amount_fen": rows[s.source]["amount_fen"],
                "status": rows[s.source]["status"],
                "requested_at": dates[s.source].get("requested_at"),
                "approved_at": dates[s.source].get("approved_at"),
                "paid_at": dates[s.source].get("paid_at"),
                "evidence_sha256": json.loads(rows[s.source]["evidence"]),
            }
            for s in went
        ]


def _donation_row(conn: Connection, donation_id: str) -> Any:
    return (
        conn.execute(select(t.donations).where(t.donations.c.donation_id == donation_id)).mappings().first()
    )


def _confirmation(conn: Connection, project_id: str, donation_id: str) -> dict[str, Any] | None:
    """The journal entry that booked the gift, parsed from its hashed bytes.

    A second confirmation of the same gift is an entry too, rejected: the one
    that booked the money is the first that was not.
    """
    canonical = conn.scalar(
        select(t.journal.c.canonical)
        .where(
            t.journal.c.project_id == project_id,
            t.journal.c.kind == "DonationConfirmed",
            t.journal.c.decision != j.REJECTED,
            t.journal.c.canonical.contains(f'"donation_id":"{donation_id}"', autoescape=True),
        )
        .order_by(t.journal.c.seq)
        .limit(1)
    )
    if canonical is None:
        return None
    entry: dict[str, Any] = orjson.loads(canonical)
    return entry


def _disbursement_dates(entries: Iterable[JournalEntry], wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Purpose, and when each wanted disbursement was requested, approved (its funds
    held) and paid, from the entries that moved it on (rejected ones moved nothing).

    The wanted ones funded a gift, so their holds stand: none was released.
    """
    facts: dict[str, dict[str, Any]] = {d: {} for d in wanted}
    for e in entries:
        found = facts.get(e.body.get("disbursement_id", ""))
        if found is None or e.decision == j.REJECTED:
            continue
        when = iso_ms(e.effective_at)
        if e.kind == "DisbursementRequested":
            found.update(purpose=e.body["purpose"], requested_at=when)
        elif e.kind == "DisbursementApproved" and e.body.get("held"):
            found["approved_at"] = when
        elif e.kind == "DisbursementPaid":
            found["paid_at"] = when
    return facts
