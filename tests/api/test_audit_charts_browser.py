"""The closed-loop page's charts in headless Chromium, offline: an auditor opens a project's
charts; all three are drawn (a canvas each, with pixels on it) from the app's own files, with
no request beyond loopback, no console error and no Content-Security-Policy violation, the
tooltips included; on a phone too, within the screen's width, on the closed-loop page itself.

The API serves on loopback over a ledger (SQLite) fed two weeks of a project's life by the real
processor; nothing here needs the broker. Screenshots go to the test's tmp directory; with
CHARITY_DOCS_SCREENSHOTS=1 the ones docs/audit.md shows are also written to docs/screenshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.contracts import events as ev
from tests.fixtures import factories as f
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, auditor_console, chromium, staff_log_in
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration

ECHARTS = Path(__file__).resolve().parents[2] / "services/api/static/vendor/echarts.min.js"
SHOWN_IN_DOCS = {"01-charts": "audit-charts.png", "02-closed-loop-phone": "audit-charts-phone.png"}
# Collects what the page's Content-Security-Policy refused, before any script of the page runs.
CSP_WATCH = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
# Resolves once the browser has drawn two more frames (the tooltip's, and one after it).
NEXT_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
# Each chart's canvases: their size, and how many of their pixels are not transparent.
DRAWN = """box => [...box.querySelectorAll('canvas')].map(c => {
  const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
  return [c.width, c.height, inked];
})"""


def two_weeks() -> list[ev.Event]:
    """Gifts online, by QR code at two venues, cash boxes and charity sales over 14 days; a
    refund; two disbursements paid and a third held."""
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    events: list[ev.Event] = []

    def on(day: int, hour: int, event: ev.Event) -> None:
        events.append(replace(event, occurred_at=start + timedelta(days=day, hours=hour)))

    for day in range(14):
        for n in range(1 + day % 4):
            on(day, n, f.confirmed("meals", 5_000 + 2_500 * n + 700 * day, 30, donation_id=f"w{day}-{n}"))
        on(day, 5, f.confirmed("meals", 10_000 + 1_000 * (day % 5), 60, channel="qr", venue_id="hall-1"))
        if day % 2:
            on(day, 6, f.confirmed("meals", 8_800, 50, channel="qr", venue_id="botanic-garden"))
        if day % 7 == 6:
            on(day, 8, f.offline("meals", 32_050, venue_id="hall-1"))
            on(day, 9, f.offline("meals", 12_000, "charity_sale", venue_id="botanic-garden", item="二手书"))
    on(9, 10, f.refunded("meals", "w3-0", 2_000))
    d = f.disbursement
    for n, (payee, amount, paid) in enumerate(
        [("乐龄助餐点", 150_000, True), ("米面粮油店", 60_000, True), ("社区厨房", 40_000, False)]
    ):
        ref = f"d{n}"
        on(10 + n, 1, d(ev.DisbursementRequested, "meals", ref, "wang.min", amount_fen=amount, payee=payee))
        on(10 + n, 2, d(ev.DisbursementApproved, "meals", ref, "fin-a"))
        if paid:
            on(11 + n, 3, d(ev.DisbursementPaid, "meals", ref, "fin-a"))
    return events


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not ECHARTS.exists():
        pytest.fail("Apache ECharts is not vendored: run `make vendor`")
    directory = tmp_path_factory.mktemp("charts-browser")
    with auditor_console(directory, two_weeks()) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def watched(browser: Any) -> LoopbackOnly:
    """A loopback-only page that also keeps what the Content-Security-Policy refused."""
    offline = LoopbackOnly(browser)
    offline.context.add_init_script(CSP_WATCH)
    return offline


def charts_drawn(page: Any) -> dict[str, list[list[int]]]:
    """Waits until the page's script has drawn every chart; each one's canvases."""
    eventually(
        lambda: page.evaluate("() => document.querySelectorAll('.chart[data-rendered=\"1\"]').length") == 3,
        what="the three charts drawn",
    )
    return {
        name: page.eval_on_selector(f'.chart[data-chart="{name}"]', DRAWN)
        for name in ("cumulative", "gifts", "flow")
    }


def hover_every_chart(page: Any) -> None:
    """The tooltips, which ECharts draws on the canvas here (an HTML one would need inline style)."""
    for name in ("cumulative", "gifts", "flow"):
        box = page.locator(f'.chart[data-chart="{name}"]').bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5)
        page.evaluate(NEXT_FRAMES)


def test_an_auditor_sees_the_three_charts_drawn_offline_under_the_policy(
    api_url: str, browser: Any, tmp_path: Path
) -> None:
    shots, offline = Shots(tmp_path, SHOWN_IN_DOCS), watched(browser)
    page = staff_log_in(offline.page, api_url, "audrey")
    answer = page.goto(f"{api_url}/staff/audit/projects/meals/charts")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    drawn = charts_drawn(page)
    for name, canvases in drawn.items():
        assert canvases, f"{name}: no canvas"
        width, height, inked = canvases[0]
        assert width > 300 and height > 200, (name, canvases)
        assert inked > width * height // 50, f"{name}: the canvas is (nearly) blank: {canvases}"
    shots.take(page, "01-charts")
    hover_every_chart(page)
    page.click("#chart-gifts details.chart-table > summary")
    assert page.locator("#chart-gifts details.chart-table table tbody tr").count() > 14
    assert page.evaluate("window.cspViolations") == []
    assert offline.errors == [] and offline.blocked == []


def test_on_a_phone_the_closed_loop_page_shows_them_within_the_screen(
    api_url: str, browser: Any, tmp_path: Path
) -> None:
    shots, offline = Shots(tmp_path, SHOWN_IN_DOCS), watched(browser)
    offline.page.set_viewport_size(PHONE)
    page = staff_log_in(offline.page, api_url, "audrey")
    page.goto(f"{api_url}/staff/audit/projects/meals")
    drawn = charts_drawn(page)
    assert all(canvases and canvases[0][2] > 0 for canvases in drawn.values()), drawn
    hover_every_chart(page)
    page.locator("#chart-flow").scroll_into_view_if_needed()
    shots.take(page, "02-closed-loop-phone", full_page=False)
    assert page.evaluate("window.cspViolations") == []
    assert offline.errors == [] and offline.blocked == []
