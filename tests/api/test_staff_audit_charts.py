"""The closed-loop page's charts over HTTP, on SQLite: charts.json to the fen from this test's own
events (days in China time), each chart's CSV (UTF-8 with a BOM) summing to the same, `as_of`
as the closed-loop page means it, and who may read them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.store import LedgerStore
from services.ledger.read import ProjectAudit
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from services.staff.domain.roles import Role
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually
from tests.fixtures.outputs import RecordingOutput
from tests.fixtures.staff import StaffApp, log_in, staff_app
from tests.ledger.ops.test_verify_and_rebuild import feed

CHARTS = "/staff/audit/projects/meals/charts"
D = f.disbursement


def at(moment: str, event: ev.Event) -> ev.Event:
    return replace(event, occurred_at=datetime.fromisoformat(moment).replace(tzinfo=UTC))


# Before the cut: a web gift on 1 May (China time), a QR gift at 01:00 on 2 May China time
# (still 1 May in UTC) and a cash box on the 2nd.
PHASE_ONE = [
    at("2026-05-01T02:00:00", f.confirmed("meals", 10_000, 60, donation_id="g1")),
    at("2026-05-01T17:00:00", f.confirmed("meals", 20_000, 120, channel="qr", venue_id="hall-1")),
    at("2026-05-02T03:00:00", f.offline("meals", 5_000, venue_id="hall-1")),
]
# After it: part of the web gift refunded on the 3rd, a disbursement paid on the 4th.
PHASE_TWO = [
    at("2026-05-03T03:00:00", f.refunded("meals", "g1", 1_000)),
    at("2026-05-03T04:00:00", D(ev.DisbursementRequested, "meals", "d1", "wang.min", amount_fen=8_000)),
    at("2026-05-03T05:00:00", D(ev.DisbursementApproved, "meals", "d1", "fin-a")),
    at("2026-05-04T02:00:00", D(ev.DisbursementPaid, "meals", "d1", "fin-a")),
]


@dataclass
class Charted:
    app: StaffApp
    cut: str  # an instant between the two phases, as ?as_of= takes it

    def as_(self, username: str) -> TestClient:
        client = TestClient(self.app.client.app)
        assert log_in(client, username).status_code == 303
        return client


@pytest.fixture(scope="module")
def charted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Charted]:
    directory = tmp_path_factory.mktemp("charts")
    url = f"sqlite:///{directory / 'ledger.db'}"
    with staff_app(directory, db_url=url, seed=PHASE_ONE) as app:
        cut = datetime.now(UTC)
        eventually(lambda: datetime.now(UTC) > cut, what="a later millisecond")
        store = LedgerStore(make_engine(url))
        feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), PHASE_TWO, start=1_000)
        app.add("audrey", Role.AUDITOR)
        app.add("wang.min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        app.add("li.lei", Role.PROJECT_MANAGER, projects=frozenset({"books"}))
        yield Charted(app, cut.isoformat())
        store.engine.dispose()


def days_of(doc: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(r["day"], r["in_fen"], r["out_fen"]) for r in doc["cumulative"]]


def test_the_series_to_the_fen_with_days_in_china_time(charted: Charted) -> None:
    doc = charted.as_("audrey").get(f"{CHARTS}.json").json()
    assert (doc["currency"], doc["time_zone"], doc["as_of"]) == ("CNY", "Asia/Shanghai", None)
    assert days_of(doc) == [
        ("2026-05-01", 9_940, 0),
        ("2026-05-02", 34_820, 0),
        ("2026-05-03", 34_820, 1_000),
        ("2026-05-04", 34_820, 9_000),
    ]
    assert doc["cumulative"][-1]["balance_fen"] == 25_820
    gifts = doc["gifts"]
    assert gifts["days"] == ["2026-05-01", "2026-05-02"]
    assert {c["key"]: (c["count"], c["gross_fen"]) for c in gifts["channels"]} == {
        "web": ([1, 0], [10_000, 0]),
        "qr:hall-1": ([0, 1], [0, 20_000]),
        "cash_box:hall-1": ([0, 1], [0, 5_000]),
    }
    links = {(k["source"], k["target"]): k["amount_fen"] for k in doc["flow"]["links"]}
    assert links == {
        ("in:web", "project"): 10_000,
        ("in:qr:hall-1", "project"): 20_000,
        ("in:cash_box:hall-1", "project"): 5_000,
        ("project", "fees"): 180,
        ("project", "refunded"): 1_000,
        ("project", "payee:助餐点"): 8_000,
        ("project", "available"): 25_820,
    }
    labels = {n["id"]: n["label_zh"] for n in doc["flow"]["nodes"]}
    assert labels["in:qr:hall-1"] == "扫码捐赠 · hall-1"


def test_as_of_an_instant_shows_the_ledger_as_it_stood_then(charted: Charted) -> None:
    client = charted.as_("audrey")
    doc = client.get(f"{CHARTS}.json", params={"as_of": charted.cut}).json()
    assert days_of(doc) == [("2026-05-01", 9_940, 0), ("2026-05-02", 34_820, 0)]
    links = {(k["source"], k["target"]): k["amount_fen"] for k in doc["flow"]["links"]}
    assert (links[("project", "fees")], links[("project", "available")]) == (180, 34_820)
    before = client.get(f"{CHARTS}.json", params={"as_of": "2000-01-01"}).json()
    assert (before["cumulative"], before["gifts"]["days"], before["flow"]["links"]) == ([], [], [])


def read_csv(answer: Any) -> list[list[str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))


def test_each_chart_has_its_csv_summing_to_the_same(charted: Charted) -> None:
    client = charted.as_("wang.min")  # the project's manager
    cumulative = read_csv(client.get(f"{CHARTS}/cumulative.csv"))
    assert cumulative[0][:3] == ["日期 · date", "累计收入（元） · in (yuan)", "累计支出（元） · out (yuan)"]
    assert cumulative[-1] == ["2026-05-04", "348.20", "90.00", "80.00", "10.00", "0.00", "258.20"]
    gifts = read_csv(client.get(f"{CHARTS}/gifts.csv"))
    assert sum(Decimal(row[3]) for row in gifts[1:]) == Decimal("350.00")
    assert gifts[1] == ["2026-05-01", "网上捐赠 · Online", "1", "100.00", "99.40"]
    flow = read_csv(client.get(f"{CHARTS}/flow.csv"))
    into = sum(Decimal(row[2]) for row in flow[1:] if row[1].startswith("本项目"))
    out = sum(Decimal(row[2]) for row in flow[1:] if row[0].startswith("本项目"))
    assert into == out == Decimal("350.00")
    assert ["本项目 · This project", "收款人 · 助餐点 · Payee · 助餐点", "80.00"] in flow
    past = read_csv(client.get(f"{CHARTS}/cumulative.csv", params={"as_of": charted.cut}))
    assert past[-1][:3] == ["2026-05-02", "348.20", "0.00"]


def test_the_charts_page_shows_each_chart_with_its_table_and_csv(charted: Charted) -> None:
    page = charted.as_("audrey").get(CHARTS)
    assert page.status_code == 200
    text = page.text
    for name in ("cumulative", "gifts", "flow"):
        assert f'data-chart="{name}"' in text
        assert f'href="{CHARTS}/{name}.csv"' in text
    assert f'data-charts="{CHARTS}.json"' in text
    assert text.count('<details class="chart-table">') == 3
    assert "<td>2026-05-04</td>" in text and '<td class="amount">258.20</td>' in text
    assert '<script src="/static/vendor/echarts.min.js" defer></script>' in text
    assert "<script>" not in text and "style=" not in text


def test_as_of_that_is_no_time_is_a_422_naming_it(charted: Charted) -> None:
    client = charted.as_("audrey")
    assert client.get(f"{CHARTS}.json", params={"as_of": "yesterday"}).status_code == 422
    assert client.get(f"{CHARTS}/flow.csv", params={"as_of": "2026-05-01T00:00:00"}).status_code == 422
    page = client.get(CHARTS, params={"as_of": "yesterday"})
    assert page.status_code == 422 and "as_of" in page.text and "data-charts" not in page.text


def test_only_the_projects_auditors_and_its_manager_see_them(charted: Charted) -> None:
    assert charted.as_("li.lei").get(f"{CHARTS}.json").status_code == 403
    assert charted.as_("li.lei").get("/staff/audit/projects/books/charts.json").status_code == 200
    assert charted.as_("wang.min").get(f"{CHARTS}/gifts.csv").status_code == 200
    assert charted.as_("audrey").get("/staff/audit/projects/nowhere/charts.json").status_code == 404


def test_the_closed_loop_page_includes_the_charts(charted: Charted) -> None:
    page = charted.as_("audrey").get("/staff/audit/projects/meals", params={"as_of": "2026-12-31"})
    assert page.status_code == 200
    assert f'data-charts="{CHARTS}.json?as_of=2026-12-31"' in page.text
    assert f'href="{CHARTS}/gifts.csv?as_of=2026-12-31"' in page.text


def test_the_flow_says_what_the_closed_loop_page_says(charted: Charted) -> None:
    """The charts sum their own way (per day, in SQL); at the same cut, their flow and the page's
    closed loop (services/ledger/read ProjectAudit) must be the same figures."""
    doc = charted.as_("audrey").get(f"{CHARTS}.json").json()
    links = {(k["source"], k["target"]): k["amount_fen"] for k in doc["flow"]["links"]}
    queries = charted.app.client.app.state.queries  # type: ignore[attr-defined]
    view = ProjectAudit(queries.engine).view("meals", None, datetime.now(UTC))
    assert view is not None and view.cut_seq == doc["cut_seq"]
    came = {c.channel.key: c.gross_fen for c in view.channels}
    came |= {channel.key: fen for channel, fen in view.loop.offline_by_channel.items()}
    assert {
        source.removeprefix("in:"): fen for (source, _), fen in links.items() if source != "project"
    } == came
    r = view.reconciliation
    went = {"fees": r.fees_fen, "refunded": r.refunded_fen, "held": r.held_fen, "available": r.available_fen}
    went |= {"leftover": r.leftover_fen} | {f"payee:{p}": paid for p, _, paid, _ in view.payees() if paid}
    assert {target: fen for (source, target), fen in links.items() if source == "project"} == {
        node: fen for node, fen in went.items() if fen
    }
