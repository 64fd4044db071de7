"""A project's charts, summed by the database: money in and out per day, gifts per day by
channel, and the flow from channels through the project to where its money went.

Days are calendar days in the federation's time zone, Asia/Shanghai (UTC+8, no daylight
saving since 1991), by each entry's effective time. Every figure is grouped in SQL (a
project may have 100,000 gifts: the database returns a row per day and channel, not per
gift); Python only classifies those groups (domain/channels.py) and adds up days. Figures
"as of" an instant stand at the closed-loop page's cut (`ProjectAudit.cut`: the journal up
to the last entry recorded by then), so the charts and the page count the same entries.

Money in and out are the movements of the project's own accounts (fund and held): in is
what reached the fund (gifts net of the providers' fees, money counted at venues,
redirections from other projects' suspense), out what left them (paid disbursements,
refunds, leftover at closing); holds move money between the two and count as neither.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Date, Engine, and_, cast, func, literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement

from services.ledger.adapters import tables as t
from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain.channels import GIFT_KINDS, REDIRECTION_KIND, Channel, channel_of
from services.ledger.read.export_format import BOM, yuan

ZONE_NAME = "Asia/Shanghai"
ZONE = ZoneInfo(ZONE_NAME)
# SQLite has no time zones: the zone's fixed offset (it has had no daylight saving since 1991).
_SQLITE_SHIFT = "'+8 hours'"

_NO_CUT = 2**62  # a cut past any journal
Window = tuple[int, int]  # the entries after the first seq, up to the second
# The gifts of a project, grouped by day and the body fields that name their channel. Each
# entry's canonical JSON is parsed once (a parse a row is most of the cost: 100,000 gifts in
# about 2 s on SQLite), in a materialised step, then grouped; amounts come from the bodies,
# which the ledger posted exactly (gross, fee; an offline record's amount).
_GIFTS_SQL = {
    "sqlite": """
WITH g AS MATERIALIZED (
  SELECT date(effective_at, '+8 hours') AS day, kind,
         json_extract(canonical, '$.body.channel', '$.body.kind', '$.body.venue_id',
                      '$.body.gross_fen', '$.body.fee_fen', '$.body.amount_fen') AS f
  FROM journal
  WHERE project_id = :project_id AND kind IN (:gift, :offline) AND decision = :posted
    AND seq > :after AND seq <= :cut
)
SELECT day, kind, json_extract(f, '$[0]'), json_extract(f, '$[1]'), json_extract(f, '$[2]'), count(*),
       sum(coalesce(json_extract(f, '$[3]'), json_extract(f, '$[5]'))),
       sum(coalesce(json_extract(f, '$[4]'), 0))
FROM g GROUP BY 1, 2, 3, 4, 5""",
    "postgresql": f"""
WITH g AS MATERIALIZED (
  SELECT CAST(timezone('{ZONE_NAME}', effective_at) AS date) AS day, kind,
         CAST(canonical AS jsonb) -> 'body' AS b
  FROM journal
  WHERE project_id = :project_id AND kind IN (:gift, :offline) AND decision = :posted
    AND seq > :after AND seq <= :cut
)
SELECT day, kind, b ->> 'channel', b ->> 'kind', b ->> 'venue_id', count(*),
       sum(coalesce(CAST(b ->> 'gross_fen' AS bigint), CAST(b ->> 'amount_fen' AS bigint))),
       sum(coalesce(CAST(b ->> 'fee_fen' AS bigint), 0))
FROM g GROUP BY 1, 2, 3, 4, 5""",
}

# Where money went out of the project, by the kind of the entry that moved it.
OUT_KINDS = {"DisbursementPaid": "disbursed", "DonationRefunded": "refunded", "ProjectClosed": "leftover"}


@dataclass(frozen=True, slots=True)
class DayFlow:
    """What reached the project's accounts and what left them on one day."""

    day: date
    in_fen: int = 0
    disbursed_fen: int = 0
    refunded_fen: int = 0
    leftover_fen: int = 0

    @property
    def out_fen(self) -> int:
        return self.disbursed_fen + self.refunded_fen + self.leftover_fen


@dataclass(frozen=True, slots=True)
class DayGifts:
    """The gifts of one channel on one day: how many, what the givers gave, what the fund got."""

    day: date
    channel: Channel
    count: int
    gross_fen: int
    net_fen: int


@dataclass(slots=True)
class ChartData:
    """Everything the three charts show, up to one journal sequence number (None: all)."""

    project_id: str
    cut_seq: int | None
    time_zone: str = ZONE_NAME  # whose calendar days the series are
    flows: list[DayFlow] = field(default_factory=list)
    gifts: list[DayGifts] = field(default_factory=list)
    paid_by_payee: dict[str, int] = field(default_factory=dict)
    held_fen: int = 0
    available_fen: int = 0


class ChartQueries:
    """The charts' sums over the ledger database (read-only).

    One per process remembers each project's latest figures (the `remembered` most recently
    asked for): every figure is a sum over journal entries, so the figures at a later cut are
    those remembered plus the entries after them, and only those are read. A project with
    100,000 gifts is read whole once, then a few new entries at a time."""

    def __init__(self, engine: Engine, remembered: int = 256) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.remembered = remembered
        self._latest: OrderedDict[str, ChartData] = OrderedDict()
        self._lock = threading.Lock()

    def chart_data(self, project_id: str, cut_seq: int | None = None) -> ChartData:
        """The charts' figures counting the journal up to `cut_seq` (None: all of it, not
        remembered)."""
        if cut_seq is None:
            return self._read(project_id, 0, None)
        with self._lock:
            known = self._latest.get(project_id)
        if known is None or known.cut_seq is None or known.cut_seq > cut_seq:
            data = self._read(project_id, 0, cut_seq)  # as of an earlier cut: read whole
        elif known.cut_seq == cut_seq:
            return known
        else:
            data = _added(known, self._read(project_id, known.cut_seq, cut_seq))
        with self._lock:
            latest = self._latest.get(project_id)
            if latest is None or (latest.cut_seq or 0) <= cut_seq:
                self._latest[project_id] = data
                self._latest.move_to_end(project_id)
                while len(self._latest) > self.remembered:
                    self._latest.popitem(last=False)
        return data

    def _read(self, project_id: str, after: int, cut_seq: int | None) -> ChartData:
        """The figures of the entries after seq `after` up to `cut_seq` (None: the end)."""
        window = (after, cut_seq if cut_seq is not None else _NO_CUT)
        flows, redirected = self._flows(project_id, window)
        balances = self._balances(project_id, window)
        return ChartData(
            project_id=project_id,
            cut_seq=cut_seq,
            flows=flows,
            gifts=sorted([*self._gifts(project_id, window), *redirected], key=lambda g: (g.day, g.channel)),
            paid_by_payee=self._paid_by_payee(project_id, window),
            held_fen=balances.get(acc.project_held(project_id), 0),
            available_fen=balances.get(acc.project_fund(project_id), 0),
        )

    def _day(self) -> ColumnElement[Any]:
        """The calendar day in Asia/Shanghai of an entry's effective time."""
        moment = t.journal.c.effective_at
        if self.dialect == "postgresql":
            return cast(func.timezone(literal_column(f"'{ZONE_NAME}'"), moment), Date)
        return func.date(moment, literal_column(_SQLITE_SHIFT))

    def _body(self, name: str) -> ColumnElement[Any]:
        """A top-level field of the entry's body, as text, from its canonical JSON."""
        canonical = t.journal.c.canonical
        if self.dialect == "postgresql":
            return func.json_extract_path_text(
                cast(canonical, JSON), literal_column("'body'"), literal_column(f"'{name}'")
            )
        return func.json_extract(canonical, literal_column(f"'$.body.{name}'"))

    @staticmethod
    def _within(seq: ColumnElement[int], window: Window) -> ColumnElement[bool]:
        return and_(seq > window[0], seq <= window[1])

    def _flows(self, project_id: str, window: Window) -> tuple[list[DayFlow], list[DayGifts]]:
        """Per day, the project's accounts' movements by the kind of entry; redirections in
        come back as gifts of their channel too."""
        p = t.postings
        accounts = [acc.project_fund(project_id), acc.project_held(project_id)]
        day = self._day().label("day")
        query = (
            select(day, t.journal.c.kind, func.sum(p.c.amount), func.count(func.distinct(p.c.seq)))
            .join(t.journal, t.journal.c.seq == p.c.seq)
            .where(p.c.account.in_(accounts), self._within(t.journal.c.seq, window))
            .group_by(day, t.journal.c.kind)
            .order_by(day)
        )
        sums: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        redirected = []
        with self.engine.connect() as conn:
            for raw_day, kind, amount, count in conn.execute(query):
                on, moved = _as_date(raw_day), int(amount)
                if kind in OUT_KINDS:
                    sums[on][OUT_KINDS[kind]] -= moved
                elif moved > 0:  # holds and their releases net to nothing within a kind
                    sums[on]["in"] += moved
                if kind == REDIRECTION_KIND and moved > 0:
                    redirected.append(DayGifts(on, channel_of(kind), int(count), moved, moved))
        flows = [
            DayFlow(
                on,
                in_fen=s["in"],
                disbursed_fen=s["disbursed"],
                refunded_fen=s["refunded"],
                leftover_fen=s["leftover"],
            )
            for on, s in sorted(sums.items())
        ]
        return flows, redirected

    def _gifts(self, project_id: str, window: Window) -> list[DayGifts]:
        """Gifts and money counted at venues that reached the fund, per day and channel: how
        many, what was given and what the fund received (given less the provider's fee)."""
        query = text(_GIFTS_SQL[self.dialect]).bindparams(
            project_id=project_id,
            gift=GIFT_KINDS[0],
            offline=GIFT_KINDS[1],
            posted=j.POSTED,
            after=window[0],
            cut=window[1],
        )
        by_channel: dict[tuple[date, Channel], list[int]] = defaultdict(lambda: [0, 0, 0])
        with self.engine.connect() as conn:
            for raw_day, kind, name, offline, venue_id, count, gross, fees in conn.execute(query):
                sums = by_channel[(_as_date(raw_day), channel_of(kind, name, offline, venue_id))]
                sums[0] += int(count)
                sums[1] += int(gross)
                sums[2] += int(gross) - int(fees)
        return [DayGifts(on, ch, *sums) for (on, ch), sums in by_channel.items()]

    def _paid_by_payee(self, project_id: str, window: Window) -> dict[str, int]:
        """What was paid out to each payee: the paid disbursements' legs out of the held account."""
        p, jr, d = t.postings, t.journal, t.disbursements
        disbursement = self._body("disbursement_id").label("disbursement_id")
        query = (
            select(disbursement, -func.sum(p.c.amount))
            .join(p, p.c.seq == jr.c.seq)
            .where(
                jr.c.project_id == project_id,
                jr.c.kind == "DisbursementPaid",
                jr.c.decision == j.POSTED,
                p.c.account == acc.project_held(project_id),
                self._within(t.journal.c.seq, window),
            )
            .group_by(disbursement)
        )
        with self.engine.connect() as conn:
            paid = {str(ref): int(amount) for ref, amount in conn.execute(query)}
            payees = dict(
                conn.execute(select(d.c.disbursement_id, d.c.payee).where(d.c.project_id == project_id)).all()
            )
        totals: dict[str, int] = defaultdict(int)
        for ref, amount in paid.items():
            totals[payees.get(ref, ref)] += amount
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def _balances(self, project_id: str, window: Window) -> dict[str, int]:
        p = t.postings
        accounts = [acc.project_fund(project_id), acc.project_held(project_id)]
        query = (
            select(p.c.account, func.sum(p.c.amount))
            .where(p.c.account.in_(accounts), self._within(p.c.seq, window))
            .group_by(p.c.account)
        )
        with self.engine.connect() as conn:
            return {account: int(total) for account, total in conn.execute(query)}


# The flow's nodes beside the channels and payees: (id, Chinese, English).
PROJECT_NODE = ("project", "本项目", "This project")
OUT_NODES = {
    "fees": ("支付手续费", "Payment fees"),
    "refunded": ("退款", "Refunds"),
    "held": ("已批准待支付", "Held for approved disbursements"),
    "available": ("可用余额", "Available"),
    "leftover": ("结项剩余资金", "Leftover at closing"),
}


@dataclass(frozen=True, slots=True)
class Cumulative:
    """Money in and out up to the end of a day, and what the project's accounts held then."""

    day: date
    in_fen: int
    out_fen: int
    disbursed_fen: int
    refunded_fen: int
    leftover_fen: int

    @property
    def balance_fen(self) -> int:
        return self.in_fen - self.out_fen


def cumulative(flows: list[DayFlow]) -> list[Cumulative]:
    """The running totals of the days' flows, day by day."""
    rows = []
    came = disbursed = refunded = leftover = 0
    for f in flows:
        came, disbursed = came + f.in_fen, disbursed + f.disbursed_fen
        refunded, leftover = refunded + f.refunded_fen, leftover + f.leftover_fen
        rows.append(Cumulative(f.day, came, disbursed + refunded + leftover, disbursed, refunded, leftover))
    return rows


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label_zh: str
    label_en: str


@dataclass(frozen=True, slots=True)
class Link:
    source: str
    target: str
    amount_fen: int


def flow(data: ChartData) -> tuple[list[Node], list[Link]]:
    """Channels → the project → fees, refunds, each payee, held, available, leftover.

    Channels carry what givers gave, so the providers' fees flow out of the project again;
    what flows in equals what flows out to the fen when the project's books close."""
    by_channel: dict[Channel, int] = defaultdict(int)
    for g in data.gifts:
        by_channel[g.channel] += g.gross_fen
    nodes = [Node(*PROJECT_NODE)]
    links = []
    for ch, amount in sorted(by_channel.items()):
        nodes.append(Node(f"in:{ch.key}", ch.label_zh, ch.label_en))
        links.append(Link(f"in:{ch.key}", PROJECT_NODE[0], amount))
    outs = {
        "fees": sum(g.gross_fen - g.net_fen for g in data.gifts),
        "refunded": sum(f.refunded_fen for f in data.flows),
        **{f"payee:{payee}": amount for payee, amount in data.paid_by_payee.items()},
        "held": data.held_fen,
        "available": data.available_fen,
        "leftover": sum(f.leftover_fen for f in data.flows),
    }
    for node_id, amount in outs.items():
        if amount:
            payee = node_id.removeprefix("payee:")
            zh, en = OUT_NODES.get(node_id, (f"收款人 · {payee}", f"Payee · {payee}"))
            nodes.append(Node(node_id, zh, en))
            links.append(Link(PROJECT_NODE[0], node_id, amount))
    return nodes, [link for link in links if link.amount_fen]


@dataclass(frozen=True, slots=True)
class ChartTable:
    """A chart as text: what its CSV and the table under it show, headings in both languages."""

    name: str
    header: tuple[str, ...]
    rows: list[tuple[str | int, ...]]

    def csv(self) -> bytes:
        """UTF-8 with a byte-order mark, so spreadsheet programs show the Chinese."""
        buffer = io.StringIO()
        buffer.write(BOM)
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(self.header)
        # Every text cell opens with a date, a number or a Chinese label: none reads as a formula.
        writer.writerows(self.rows)
        return buffer.getvalue().encode()


def tables(data: ChartData) -> dict[str, ChartTable]:
    """Each chart's text equivalent, amounts in yuan to the fen."""
    nodes, links = flow(data)
    label = {n.id: f"{n.label_zh} · {n.label_en}" for n in nodes}
    found = [
        ChartTable(
            "cumulative",
            (
                "日期 · date",
                "累计收入（元） · in (yuan)",
                "累计支出（元） · out (yuan)",
                "其中拨付 · disbursed",
                "其中退款 · refunded",
                "其中结项剩余 · leftover",
                "余额（元） · balance (yuan)",
            ),
            [
                (
                    r.day.isoformat(),
                    yuan(r.in_fen),
                    yuan(r.out_fen),
                    yuan(r.disbursed_fen),
                    yuan(r.refunded_fen),
                    yuan(r.leftover_fen),
                    yuan(r.balance_fen),
                )
                for r in cumulative(data.flows)
            ],
        ),
        ChartTable(
            "gifts",
            (
                "日期 · date",
                "渠道 · channel",
                "笔数 · gifts",
                "捐赠金额（元） · given (yuan)",
                "到账金额（元） · received (yuan)",
            ),
            [
                (
                    g.day.isoformat(),
                    f"{g.channel.label_zh} · {g.channel.label_en}",
                    g.count,
                    yuan(g.gross_fen),
                    yuan(g.net_fen),
                )
                for g in data.gifts
            ],
        ),
        ChartTable(
            "flow",
            ("来源 · from", "去向 · to", "金额（元） · amount (yuan)"),
            [(label[link.source], label[link.target], yuan(link.amount_fen)) for link in links],
        ),
    ]
    return {table.name: table for table in found}


def _added(known: ChartData, more: ChartData) -> ChartData:
    """The figures of two consecutive windows of the journal together (every one is a sum)."""
    flows: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for f in (*known.flows, *more.flows):
        sums = flows[f.day]
        for i, amount in enumerate((f.in_fen, f.disbursed_fen, f.refunded_fen, f.leftover_fen)):
            sums[i] += amount
    gifts: dict[tuple[date, Channel], list[int]] = defaultdict(lambda: [0, 0, 0])
    for g in (*known.gifts, *more.gifts):
        sums = gifts[(g.day, g.channel)]
        for i, amount in enumerate((g.count, g.gross_fen, g.net_fen)):
            sums[i] += amount
    paid: dict[str, int] = defaultdict(int)
    for payee, amount in (*known.paid_by_payee.items(), *more.paid_by_payee.items()):
        paid[payee] += amount
    return ChartData(
        project_id=known.project_id,
        cut_seq=more.cut_seq,
        flows=[DayFlow(day, *sums) for day, sums in sorted(flows.items())],
        gifts=[DayGifts(day, ch, *sums) for (day, ch), sums in sorted(gifts.items())],
        paid_by_payee=dict(sorted(paid.items(), key=lambda item: (-item[1], item[0]))),
        held_fen=known.held_fen + more.held_fen,
        available_fen=known.available_fen + more.available_fen,
    )


def _as_date(value: Any) -> date:
    """PostgreSQL answers a date; SQLite its ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))
