"""The charts' sums, from this test's own events through the real processor, on SQLite and
PostgreSQL: to the fen, days in Asia/Shanghai, "as of" an instant."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.store import LedgerStore
from services.ledger.read import ChartData, ChartQueries, LedgerQueries, cumulative, flow
from services.ledger.service.processor import BatchProcessor
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.domain.test_suspense_rules import approved, requested
from tests.ledger.ops.test_verify_and_rebuild import feed

pytestmark = pytest.mark.integration  # the store runs on the PostgreSQL server too

D = f.disbursement


def at(moment: str, event: ev.Event) -> ev.Event:
    """The event at an effective time given in UTC."""
    return dataclasses.replace(event, occurred_at=datetime.fromisoformat(moment).replace(tzinfo=UTC))


def day(n: int) -> date:
    return date(2026, 3, n)


@dataclasses.dataclass
class Charts:
    queries: ChartQueries
    cuts: list[int]  # the journal's last seq after each batch


@pytest.fixture
def charts(store: LedgerStore) -> Charts:
    """'p1' takes gifts on 1-2 March (Shanghai), a redirection from 'p2's suspense on the 3rd,
    refunds one, pays one disbursement on the 4th and holds another."""
    web = f.confirmed("p1", 5000, 30, donation_id="web-1")
    to_p2 = f.confirmed("p2", 1500, 0)  # p2 is not fundraising: to its suspense
    redirect = requested("p2", "alice", amount_fen=1500, target_project_id="p1")
    batches: list[list[ev.Event]] = [
        [*f.opened_project("p1"), f.registered("p2")],
        [
            at("2026-03-01T01:00:00", web),
            at("2026-03-01T15:59:59.999", f.confirmed("p1", 2000, 12, channel="qr", venue_id="hall-1")),
            # Midnight in Shanghai, still 1 March in UTC: a gift of the 2nd.
            at("2026-03-01T16:00:00", f.confirmed("p1", 3000, 0, channel="qr", venue_id="hall-1")),
            at("2026-03-02T02:00:00", f.offline("p1", 1200, venue_id="hall-1")),
            at("2026-03-02T03:00:00", f.offline("p1", 800, "charity_sale", venue_id="hall-2", item="书")),
            at("2026-03-02T04:00:00", to_p2),
            at("2026-03-03T01:00:00", redirect),
            at("2026-03-03T02:00:00", approved("p2", redirect.resolution_id, "bob")),
            at("2026-03-03T03:00:00", f.refunded("p1", "web-1", 1000)),
        ],
        [
            at("2026-03-03T04:00:00", D(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=4000)),
            at("2026-03-03T05:00:00", D(ev.DisbursementApproved, "p1", "x1", "bob")),
            at("2026-03-04T02:00:00", D(ev.DisbursementPaid, "p1", "x1", "bob")),
            at(
                "2026-03-04T03:00:00",
                D(ev.DisbursementRequested, "p1", "x2", "alice", amount_fen=1000, payee="米店"),
            ),
            at("2026-03-04T04:00:00", D(ev.DisbursementApproved, "p1", "x2", "bob")),
        ],
    ]
    processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
    start, cuts = 0, []
    for batch in batches:
        feed(processor, batch, start=start)
        start += len(batch)
        cuts.append(LedgerQueries(store.engine).journal_size())
    return Charts(ChartQueries(store.engine), cuts)


def gifts_of(data: ChartData) -> list[tuple[date, str, int, int, int]]:
    return [(g.day, g.channel.key, g.count, g.gross_fen, g.net_fen) for g in data.gifts]


def test_gifts_per_shanghai_day_and_channel_to_the_fen(charts: Charts) -> None:
    assert gifts_of(charts.queries.chart_data("p1")) == [
        (day(1), "qr:hall-1", 1, 2000, 1988),
        (day(1), "web", 1, 5000, 4970),
        (day(2), "cash_box:hall-1", 1, 1200, 1200),
        (day(2), "charity_sale:hall-2", 1, 800, 800),
        (day(2), "qr:hall-1", 1, 3000, 3000),
        (day(3), "redirected", 1, 1500, 1500),
    ]


def test_money_in_and_out_accumulate_day_by_day(charts: Charts) -> None:
    rows = cumulative(charts.queries.chart_data("p1").flows)
    assert [(r.day, r.in_fen, r.out_fen, r.balance_fen) for r in rows] == [
        (day(1), 6958, 0, 6958),
        (day(2), 11958, 0, 11958),
        (day(3), 13458, 1000, 12458),
        (day(4), 13458, 5000, 8458),
    ]
    assert (rows[-1].disbursed_fen, rows[-1].refunded_fen, rows[-1].leftover_fen) == (4000, 1000, 0)


def test_the_flow_from_channels_to_payees_closes_to_the_fen(charts: Charts) -> None:
    data = charts.queries.chart_data("p1")
    assert (data.held_fen, data.available_fen, data.paid_by_payee) == (1000, 7458, {"助餐点": 4000})
    nodes, links = flow(data)
    amounts = {(link.source, link.target): link.amount_fen for link in links}
    assert amounts == {
        ("in:web", "project"): 5000,
        ("in:qr:hall-1", "project"): 5000,
        ("in:cash_box:hall-1", "project"): 1200,
        ("in:charity_sale:hall-2", "project"): 800,
        ("in:redirected", "project"): 1500,
        ("project", "fees"): 42,
        ("project", "refunded"): 1000,
        ("project", "payee:助餐点"): 4000,
        ("project", "held"): 1000,
        ("project", "available"): 7458,
    }
    came = sum(a for (_, target), a in amounts.items() if target == "project")
    assert came == sum(a for (source, _), a in amounts.items() if source == "project") == 13500
    labels = {n.id: (n.label_zh, n.label_en) for n in nodes}
    assert labels["in:qr:hall-1"] == ("扫码捐赠 · hall-1", "QR code · hall-1")
    assert labels["payee:助餐点"] == ("收款人 · 助餐点", "Payee · 助餐点")


def test_figures_at_a_cut_count_the_journal_up_to_it(charts: Charts) -> None:
    data = charts.queries.chart_data("p1", charts.cuts[1])  # before the disbursements
    assert [(r.day, r.in_fen, r.out_fen) for r in cumulative(data.flows)] == [
        (day(1), 6958, 0),
        (day(2), 11958, 0),
        (day(3), 13458, 1000),
    ]
    assert (data.held_fen, data.available_fen, data.paid_by_payee) == (0, 12458, {})
    _, links = flow(data)
    assert sum(link.amount_fen for link in links if link.source == "project") == 13500
    before = charts.queries.chart_data("p1", charts.cuts[0])
    assert (before.gifts, before.flows, before.available_fen) == ([], [], 0)


def test_a_project_without_money_has_empty_series(charts: Charts) -> None:
    data = charts.queries.chart_data("p2")
    assert (data.gifts, data.flows, data.paid_by_payee, data.available_fen) == ([], [], {}, 0)
    nodes, links = flow(data)
    assert ([n.id for n in nodes], links) == (["project"], [])


def test_figures_remembered_at_a_cut_add_up_with_the_entries_after_it(charts: Charts) -> None:
    remembering = charts.queries  # one per process, as the API keeps it
    first = [remembering.chart_data("p1", cut) for cut in charts.cuts]  # each from the one before
    again = [remembering.chart_data("p1", cut) for cut in reversed(charts.cuts)]  # earlier: read whole
    for cut, step, back in zip(charts.cuts, first, reversed(again), strict=True):
        fresh = ChartQueries(remembering.engine).chart_data("p1", cut)
        assert step == back == fresh
    everything = remembering.chart_data("p1")
    assert (everything.gifts, everything.flows) == (first[-1].gifts, first[-1].flows)
    assert everything.paid_by_payee == first[-1].paid_by_payee
