"""The closed-loop view of one project, read from the journal as it stood at one sequence number.

Every figure is taken up to one journal sequence number (the cut): the journal's head, or the
last entry recorded by an instant. The cut is a prefix of the journal, so the figures are
exactly those the ledger had decided then, they reconcile, and a signed tree head of that size
vouches for them. Sums are made in SQL (the project accounts' legs grouped by counterparty, the
fees, the balances); the gifts are streamed once, in journal order, for the channels and the
first-in-first-out lineage, never held as rows; the timeline is read a page at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, and_, bindparam, case, cast, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import iter_seqs
from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain.audit import (
    ClosedLoop,
    LineageSummary,
    Movement,
    Reconciliation,
    closed_loop,
    reconcile,
    summarise_lineage,
)
from services.ledger.domain.channels import Channel, channel_of
from services.ledger.domain.disclosure import next_disclosure_due
from services.ledger.domain.journal import JournalEntry, Posting
from services.ledger.domain.lineage import trace
from services.ledger.domain.money import Money
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.state import ProjectTotals
from services.ledger.domain.view import LedgerView
from services.ledger.read.queries import LedgerQueries

# Entries of money coming in and going back: many per project, streamed, never held as rows.
MONEY_IN_KINDS = (
    "DonationPledged",
    "DonationConfirmed",
    "DonationFailed",
    "OfflineDonationRecorded",
    "DonationRefunded",
)
DISBURSEMENT_KINDS = (
    "DisbursementRequested",
    "DisbursementApproved",
    "DisbursementRejected",
    "DisbursementPaid",
    "EvidenceAttached",
)
_GIFT, _REFUND, _OFFLINE = "DonationConfirmed", "DonationRefunded", "OfflineDonationRecorded"
_HOLDS = ("DisbursementApproved", "DisbursementRejected")  # a hold placed, a hold released
# What the lineage follows, in journal order (domain/lineage.py).
LINEAGE_KINDS = (_GIFT, _OFFLINE, _REFUND, *_HOLDS)
# The fields of a body the stream reads, by their JSON names, and the kinds that have them (the
# database extracts each only from those: most rows are gifts, and each extraction parses).
_STREAMED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("channel", (_GIFT,)),
    ("venue_id", (_GIFT,)),
    ("donation_id", (_GIFT, _REFUND)),
    ("record_id", (_OFFLINE,)),
    ("gross_fen", (_GIFT,)),
    ("fee_fen", (_GIFT,)),
    ("amount_fen", (_OFFLINE, _REFUND)),
    ("disbursement_id", _HOLDS),
    ("held", _HOLDS),
)


@dataclass(frozen=True, slots=True)
class ChannelLine:
    """Online gifts through one channel (and venue, for QR codes and venue terminals)."""

    channel: Channel
    gifts: int
    gross_fen: int
    fee_fen: int

    @property
    def net_fen(self) -> int:
        return self.gross_fen - self.fee_fen


@dataclass(slots=True)
class Disbursement:
    """One disbursement as the journal tells it up to the cut."""

    disbursement_id: str
    payee: str = ""
    purpose: str = ""
    amount_fen: int = 0
    requested_by: str = ""
    status: str = "requested"  # requested, held, paid, rejected, refused (its request was)
    paid_ref: str = ""
    documents: list[str] = field(default_factory=list)  # supporting documents of the request
    evidence: list[dict[str, str]] = field(default_factory=list)  # sha256, description, by


@dataclass(frozen=True, slots=True)
class TimelineLine:
    seq: int
    kind: str
    actor: str
    effective_at: str
    recorded_at: str
    decision: str
    reason: str
    amount_fen: int | None


@dataclass(slots=True)
class ClosedLoopView:
    project_id: str
    cut_seq: int  # every figure counts entries up to this journal sequence number
    as_of: datetime | None  # the instant asked for; None: now
    standing: ProjectTotals  # the project's state, plan and dates at the cut
    loop: ClosedLoop
    reconciliation: Reconciliation
    channels: list[ChannelLine]
    offline_records: int
    disbursements: list[Disbursement]
    lineage: LineageSummary
    disclosure_due: datetime | None
    disclosure_rule: str
    disclosure_overdue: bool  # due before the instant asked for (or now)
    timeline: list[TimelineLine]
    timeline_total: int
    projection: ProjectTotals | None  # project_totals now; compared only when the cut is now

    @property
    def online_from_bodies_fen(self) -> tuple[int, int]:
        """(net, fees) of the gifts' own bodies: the postings must say the same."""
        return sum(c.net_fen for c in self.channels), sum(c.fee_fen for c in self.channels)

    def by_venue(self) -> list[tuple[str, int, int, int]]:
        """(venue, online gross through its QR codes and terminals, cash boxes, charity sales)."""
        venues: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for c in self.channels:
            if c.channel.venue_id:
                venues[c.channel.venue_id][0] += c.gross_fen
        for channel, fen in self.loop.offline_by_channel.items():
            if channel.venue_id:
                venues[channel.venue_id][1 if channel.name == "cash_box" else 2] += fen
        return [(v, *amounts) for v, amounts in sorted(venues.items())]  # type: ignore[misc]

    def payees(self) -> list[tuple[str, str, int, int]]:
        """Money out by payee and purpose: (payee, purpose, paid, held)."""
        out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for d in self.disbursements:
            if d.status == "paid":
                out[(d.payee, d.purpose)][0] += d.amount_fen
            elif d.status == "held":
                out[(d.payee, d.purpose)][1] += d.amount_fen
        return [(payee, purpose, *amounts) for (payee, purpose), amounts in sorted(out.items())]  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class _Figures:
    """Everything but the timeline and the projection, at one cut: never changes."""

    standing: ProjectTotals
    disbursements: list[Disbursement]
    loop: ClosedLoop
    reconciliation: Reconciliation
    channels: list[ChannelLine]
    offline_records: int
    lineage: LineageSummary
    redirections_in: tuple[int, ...]  # seqs of other projects' entries that moved money here


class ProjectAudit:
    """The closed-loop view of a project; reads the ledger database only.

    The journal is append-only, so the figures at a cut never change: the last `remembered`
    are kept (an auditor paging through the timeline, switching back to a date, or opening a
    project nothing happened to since is not summed again). One per process.
    """

    def __init__(self, engine: Engine, remembered: int = 32) -> None:
        self.engine = engine
        self.remembered = remembered
        self._figures: OrderedDict[tuple[str, int], _Figures] = OrderedDict()
        self._lock = threading.Lock()

    def cut(self, as_of: datetime | None) -> int:
        """The journal sequence number the figures stand at: the head, or the last entry
        recorded by `as_of` (0 before the first).

        Entries are recorded in seq order (a batch's time is taken as it is processed), so the
        entry is found by bisecting the seqs, a lookup by primary key each, instead of
        scanning a journal of millions for its times (were a clock ever set back, the cut
        could only land among the entries recorded around that moment)."""
        head_query = select(func.max(t.journal.c.seq))
        with self.engine.connect() as conn:
            head = int(conn.scalar(head_query) or 0)
            if as_of is None:
                return head
            instant = _utc(as_of)
            recorded = select(t.journal.c.recorded_at).where(t.journal.c.seq == bindparam("seq"))
            low, high = 0, head  # recorded by the instant: every seq up to low; none past high
            while low < high:
                middle = (low + high + 1) // 2
                when = conn.scalar(recorded, {"seq": middle})
                if when is not None and _aware(when) <= instant:
                    low = middle
                else:
                    high = middle - 1
            return low

    def view(
        self, project_id: str, as_of: datetime | None, now: datetime, page: int = 0, per_page: int = 200
    ) -> ClosedLoopView | None:
        """Everything the page shows, at one cut; None if the project was not registered by then."""
        cut = self.cut(as_of)
        projection, last = None, cut
        if as_of is None:
            # Read after the cut, it holds every entry up to it; one it holds beyond (committed
            # meanwhile) moves the cut there, since entries commit in seq order. Nothing after
            # its last entry touched the project, so the figures are summed at that entry: the
            # federation's other gifts do not make a quiet project's be summed again.
            projection = LedgerQueries(self.engine).project(project_id)
            if projection is not None:
                last = projection.last_entry_seq
                cut = max(cut, last)
        figures = self._figures_at(project_id, last)
        if figures is None:
            return None
        with self.engine.connect() as conn:
            timeline, total = _timeline(conn, project_id, last, page, per_page, figures.redirections_in)
        due, rule = next_disclosure_due(figures.standing)
        return ClosedLoopView(
            project_id=project_id,
            cut_seq=cut,
            as_of=as_of,
            standing=figures.standing,
            loop=figures.loop,
            reconciliation=figures.reconciliation,
            channels=figures.channels,
            offline_records=figures.offline_records,
            disbursements=figures.disbursements,
            lineage=figures.lineage,
            disclosure_due=due,
            disclosure_rule=rule,
            disclosure_overdue=due is not None and (as_of or now) > due,
            timeline=timeline,
            timeline_total=total,
            projection=projection,
        )

    def _figures_at(self, project_id: str, cut: int) -> _Figures | None:
        key = (project_id, cut)
        with self._lock:
            if key in self._figures:
                self._figures.move_to_end(key)
                return self._figures[key]
        figures = self._sum(project_id, cut)
        if figures is not None:
            with self._lock:
                self._figures[key] = figures
                while len(self._figures) > self.remembered:
                    self._figures.popitem(last=False)
        return figures

    def _sum(self, project_id: str, cut: int) -> _Figures | None:
        standing, disbursements = self._standing(project_id, cut)
        if standing is None:
            return None
        with self.engine.connect() as conn:
            movements = _movements(conn, project_id, cut)
            balances = _balances(conn, project_id, cut)
            fees = _fees(conn, project_id, cut)
            holds = _holds(conn, project_id, cut)
        channels, offline_records, lineage = _stream_money(
            self.engine, project_id, standing.currency, cut, holds
        )
        loop = closed_loop(project_id, movements)
        redirected = any(channel.name == "redirected" for channel in loop.offline_by_channel)
        with self.engine.connect() as conn:
            redirections = _redirections_in(conn, project_id, cut) if redirected else ()
        return _Figures(
            standing=standing,
            disbursements=disbursements,
            loop=loop,
            reconciliation=reconcile(loop, balances, project_id, fees),
            channels=channels,
            offline_records=offline_records,
            lineage=lineage,
            redirections_in=redirections,
        )

    def _standing(self, project_id: str, cut: int) -> tuple[ProjectTotals | None, list[Disbursement]]:
        """The project's state, plan and dates at the cut, replayed from its entries other than
        money coming in (a few: steps, reports, disbursements), and its disbursements."""
        condition = and_(
            t.journal.c.project_id == project_id,
            t.journal.c.seq <= cut,
            t.journal.c.kind.not_in(MONEY_IN_KINDS),
        )
        with self.engine.connect() as conn:
            seqs = list(conn.scalars(select(t.journal.c.seq).where(condition).order_by(t.journal.c.seq)))
        view = LedgerView()
        disbursements: dict[str, Disbursement] = {}
        for stored in iter_seqs(self.engine, seqs):
            if stored.entry is not None:
                apply_entry(stored.entry, view)
            if stored.record["kind"] in DISBURSEMENT_KINDS:
                _disbursement_step(disbursements, stored.record)
        return view.projects.get(project_id), list(disbursements.values())


def _aware(moment: datetime) -> datetime:
    """A time read back from the database: SQLite's have no zone, and are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    # SQLite keeps the journal's times as UTC wall-clock text; PostgreSQL compares any zone.
    return moment.astimezone(UTC)


def _project_accounts(project_id: str) -> list[str]:
    return [acc.project_fund(project_id), acc.project_held(project_id), acc.suspense(project_id)]


def _movements(conn: Connection, project_id: str, cut: int) -> list[Movement]:
    """Each project account's legs summed per counterparty: the other leg of its transfer
    (transfers are pairs of legs 2k, 2k+1: journal.transfer)."""
    leg, other = t.postings.alias("leg"), t.postings.alias("other")
    other_leg = leg.c.leg + 1 - 2 * (leg.c.leg % 2)
    rows = conn.execute(
        select(leg.c.account, other.c.account, func.sum(leg.c.amount), func.count())
        .join(other, and_(other.c.seq == leg.c.seq, other.c.leg == other_leg))
        .where(leg.c.account.in_(_project_accounts(project_id)), leg.c.seq <= cut)
        .group_by(leg.c.account, other.c.account, leg.c.amount > 0)
    ).all()
    return [Movement(account, counterparty, int(amount), int(n)) for account, counterparty, amount, n in rows]


def _redirections_in(conn: Connection, project_id: str, cut: int) -> tuple[int, ...]:
    """The entries of other projects that redirected money out of their suspense into this
    project's fund (journaled under the project whose suspense it was)."""
    leg, other = t.postings.alias("leg"), t.postings.alias("other")
    seqs = conn.scalars(
        select(leg.c.seq)
        .join(other, and_(other.c.seq == leg.c.seq, other.c.leg == leg.c.leg - 1))
        .where(
            leg.c.account == acc.project_fund(project_id),
            leg.c.amount > 0,
            leg.c.seq <= cut,
            other.c.account.startswith("suspense:"),
            other.c.account != acc.suspense(project_id),
        )
        .distinct()
    )
    return tuple(sorted(seqs))


def _balances(conn: Connection, project_id: str, cut: int) -> dict[str, int]:
    """Every leg of the project's accounts summed, pairs or not."""
    p = t.postings
    rows = conn.execute(
        select(p.c.account, func.sum(p.c.amount))
        .where(p.c.account.in_(_project_accounts(project_id)), p.c.seq <= cut)
        .group_by(p.c.account)
    ).all()
    return {account: int(total) for account, total in rows}


def _fees(conn: Connection, project_id: str, cut: int) -> int:
    """The providers' fees on the gifts the project took (posted, not those in suspense)."""
    jn, p = t.journal, t.postings
    total = conn.scalar(
        select(func.sum(p.c.amount))
        .join(jn, jn.c.seq == p.c.seq)
        .where(
            jn.c.project_id == project_id,
            jn.c.kind == "DonationConfirmed",
            jn.c.decision == j.POSTED,
            jn.c.seq <= cut,
            p.c.account.startswith("fees:"),
            p.c.amount > 0,
        )
    )
    return int(total or 0)


def _holds(conn: Connection, project_id: str, cut: int) -> dict[int, int]:
    """The holds placed, by the sequence number of the approval that placed them."""
    p = t.postings
    rows = conn.execute(
        select(p.c.seq, p.c.amount).where(
            p.c.account == acc.project_held(project_id), p.c.seq <= cut, p.c.amount > 0
        )
    ).all()
    return {int(seq): int(amount) for seq, amount in rows}


def _timeline(
    conn: Connection, project_id: str, cut: int, page: int, per_page: int, also: tuple[int, ...] = ()
) -> tuple[list[TimelineLine], int]:
    """One page of the project's entries (and `also`: others' entries that moved money into
    it), newest first, and how many there are."""
    jn = t.journal
    where = and_(jn.c.project_id == project_id, jn.c.seq <= cut)
    if also:
        where = or_(where, jn.c.seq.in_(also))
    total = int(conn.scalar(select(func.count()).select_from(jn).where(where)) or 0)
    # The page's seqs first (a sort of numbers), then only their entries' text.
    seqs = list(
        conn.scalars(
            select(jn.c.seq).where(where).order_by(jn.c.seq.desc()).limit(per_page).offset(page * per_page)
        )
    )
    rows = conn.execute(
        select(jn.c.seq, jn.c.canonical).where(jn.c.seq.in_(seqs)).order_by(jn.c.seq.desc())
    ).all()
    lines = []
    for seq, canonical in rows:
        r = orjson.loads(canonical)  # what was hashed, never the query columns
        body = r.get("body") or {}
        amount = body.get("amount_fen", body.get("gross_fen"))
        lines.append(
            TimelineLine(
                seq=int(seq),
                kind=r["kind"],
                actor=str(body.get("actor", "")),
                effective_at=r["effective_at"],
                recorded_at=r["recorded_at"],
                decision=r["decision"],
                reason=r["reason"],
                amount_fen=amount if isinstance(amount, int) else None,
            )
        )
    return lines, total


def _disbursement_step(found: dict[str, Disbursement], record: dict[str, Any]) -> None:
    body = record["body"]
    d = found.setdefault(body["disbursement_id"], Disbursement(body["disbursement_id"]))
    kind, decision = record["kind"], record["decision"]
    if kind == "DisbursementRequested":
        if decision == j.REJECTED:
            if not d.requested_by:  # the request itself was refused, not a repeated one
                d.payee, d.purpose, d.amount_fen = body["payee"], body["purpose"], body["amount_fen"]
                d.status = "refused"
            return
        d.payee, d.purpose, d.amount_fen = body["payee"], body["purpose"], body["amount_fen"]
        d.requested_by, d.status = body["actor"], "requested"
        d.documents = list(body.get("document_sha256s") or [])
    elif decision == j.REJECTED:
        return
    elif kind == "DisbursementApproved" and body.get("held"):
        d.status = "held"
    elif kind == "DisbursementRejected":
        d.status = "rejected"
    elif kind == "DisbursementPaid":
        d.status, d.paid_ref = "paid", body.get("payout_ref", "")
    elif kind == "EvidenceAttached":
        d.evidence.append(
            {
                "sha256": body["document_sha256"],
                "description": body.get("description", ""),
                "by": body["actor"],
            }
        )


def _field(dialect: str, document: Any, name: str) -> ColumnElement[Any]:
    """A body field of an entry's canonical JSON, as SQL."""
    if dialect == "postgresql":
        return document["body"][name].astext  # type: ignore[no-any-return]
    return func.json_extract(document, f"$.body.{name}")


def _money_rows(engine: Engine, project_id: str, cut: int) -> Iterator[tuple[Any, ...]]:
    """The posted entries the channels and the lineage need, in journal order, with only the
    body fields they read (extracted by the database, not parsed here)."""
    jn = t.journal
    dialect = engine.dialect.name
    document: Any = cast(jn.c.canonical, JSONB) if dialect == "postgresql" else jn.c.canonical
    query = (
        select(
            jn.c.seq,
            jn.c.kind,
            jn.c.entry_id,
            *(case((jn.c.kind.in_(kinds), _field(dialect, document, name))) for name, kinds in _STREAMED),
        )
        .where(
            jn.c.project_id == project_id,
            jn.c.seq <= cut,
            jn.c.decision == j.POSTED,
            jn.c.kind.in_(LINEAGE_KINDS),
        )
        .order_by(jn.c.seq)
    )
    with engine.connect() as conn:
        yield from conn.execution_options(stream_results=True, yield_per=5000).execute(query)


def _stream_money(
    engine: Engine, project_id: str, currency: str, cut: int, holds: dict[int, int]
) -> tuple[list[ChannelLine], int, LineageSummary]:
    """One pass over the gifts: online gifts by channel and venue, and the lineage."""
    # Summed by the body's own channel and venue, classified once per group afterwards.
    raw: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    offline = 0
    fund, held = acc.project_fund(project_id), acc.project_held(project_id)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)  # the lineage reads no times

    def entries() -> Iterator[JournalEntry]:
        nonlocal offline
        for row in _money_rows(engine, project_id, cut):
            (
                seq,
                kind,
                entry_id,
                channel,
                venue_id,
                donation_id,
                record_id,
                gross,
                fee,
                amount,
                d_id,
                held_,
            ) = row
            body: dict[str, Any]
            postings: tuple[Posting, ...] = ()
            if kind == "DonationConfirmed":
                line = raw[(channel, venue_id)]
                line[0] += 1
                line[1] += int(gross)
                line[2] += int(fee)
                body = {"donation_id": donation_id, "gross_fen": int(gross), "fee_fen": int(fee)}
            elif kind == "OfflineDonationRecorded":
                offline += 1
                body = {"record_id": record_id, "amount_fen": int(amount)}
            elif kind == "DonationRefunded":
                body = {"donation_id": donation_id, "amount_fen": int(amount)}
            else:
                body = {"disbursement_id": d_id, "held": held_ in (True, 1, "true")}
                hold = holds.get(int(seq))
                if kind == "DisbursementApproved" and hold:
                    money = Money(hold, currency)
                    postings = (Posting(fund, -money), Posting(held, money))
            yield JournalEntry(entry_id, kind, project_id, epoch, j.POSTED, "", body, postings)

    lineage = summarise_lineage(trace(entries()))
    channels: dict[Channel, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (channel, venue_id), sums in raw.items():
        merged = channels[channel_of("DonationConfirmed", channel, venue_id=venue_id)]
        for i, value in enumerate(sums):
            merged[i] += value
    lines = [
        ChannelLine(channel, gifts, gross, fee)
        for channel, (gifts, gross, fee) in sorted(channels.items(), key=lambda kv: kv[0].key)
    ]
    return lines, offline, lineage
