"""The charts' series built from given daily sums, without a database: running totals, the flow
closing to the fen, and each chart's table and CSV."""

from __future__ import annotations

import csv
import io
from datetime import date

from services.ledger.domain.channels import Channel
from services.ledger.read import ChartData, cumulative, flow, tables
from services.ledger.read.charts import DayFlow, DayGifts

MAY = [date(2026, 5, d) for d in range(1, 4)]
DATA = ChartData(
    project_id="p",
    cut_seq=None,
    flows=[
        DayFlow(MAY[0], in_fen=9_970),
        DayFlow(MAY[1], in_fen=1_200, refunded_fen=1_000),
        DayFlow(MAY[2], disbursed_fen=5_000, leftover_fen=5_170),
    ],
    gifts=[
        DayGifts(MAY[0], Channel("web"), 2, 10_000, 9_970),
        DayGifts(MAY[1], Channel("cash_box", "hall-1"), 1, 1_200, 1_200),
    ],
    paid_by_payee={"助餐点": 5_000},
)


def test_running_totals_day_by_day() -> None:
    rows = cumulative(DATA.flows)
    assert [(r.in_fen, r.out_fen, r.balance_fen) for r in rows] == [
        (9_970, 0, 9_970),
        (11_170, 1_000, 10_170),
        (11_170, 11_170, 0),
    ]
    assert (rows[-1].disbursed_fen, rows[-1].refunded_fen, rows[-1].leftover_fen) == (5_000, 1_000, 5_170)


def test_the_flow_closes_and_leaves_out_what_is_zero() -> None:
    nodes, links = flow(DATA)
    assert [(k.source, k.target, k.amount_fen) for k in links] == [
        ("in:cash_box:hall-1", "project", 1_200),
        ("in:web", "project", 10_000),
        ("project", "fees", 30),
        ("project", "refunded", 1_000),
        ("project", "payee:助餐点", 5_000),
        ("project", "leftover", 5_170),
    ]
    assert [n.id for n in nodes] == [
        "project",
        "in:cash_box:hall-1",
        "in:web",
        *(k.target for k in links[2:]),
    ]


def test_each_table_is_a_csv_with_a_bom_in_yuan_to_the_fen() -> None:
    made = tables(DATA)
    assert list(made) == ["cumulative", "gifts", "flow"]
    body = made["gifts"].csv()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1:] == [
        ["2026-05-01", "网上捐赠 · Online", "2", "100.00", "99.70"],
        ["2026-05-02", "募捐箱 · hall-1 · Cash box · hall-1", "1", "12.00", "12.00"],
    ]
    assert made["cumulative"].rows[-1] == (
        "2026-05-03",
        "111.70",
        "111.70",
        "50.00",
        "10.00",
        "51.70",
        "0.00",
    )
    assert made["flow"].rows[-1] == ("本项目 · This project", "结项剩余资金 · Leftover at closing", "51.70")
