"""The venue screen in headless Chromium: live changes without a reload, reconnecting and recovery.

Screenshots (1920×1080) go to docs/screenshots/ so that a change to the page's look
shows up in review.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.display.conftest import GatewayFactory
from tests.fixtures.browser import DOCS_SHOTS, chromium
from tests.fixtures.fake_ledger import LedgerEcho
from tests.fixtures.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.integration

SHOTS = DOCS_SHOTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1920, "height": 1080}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    page = context.new_page()
    yield page
    context.close()


def seed_demo(echo: LedgerEcho) -> None:
    """Figures and gifts that look like an afternoon at the venue."""
    echo.set_totals("charity-plants", 31_245_00, 412, offline_fen=18_730_00)
    echo.set_totals("elderly-meals", 126_880_50, 1_893)
    echo.set_totals("child-protection", 187_340_00, 2_210)
    echo.set_totals("community-embedded", 64_120_00, 801)
    echo.set_totals("veterans-care", 45_600_00, 377)
    echo.gift("elderly-meals", 200_00, shown_name="陈**")
    echo.gift(
        "charity-plants",
        35_00,
        kind="charity_sale",
        channel="venue",
        venue_id="botanic-garden",
        item="多肉盆栽",
    )
    echo.gift("child-protection", 100_00, shown_name="爱心人士")
    echo.gift("charity-plants", 128_50, kind="cash_box", channel="venue", venue_id="botanic-garden")
    echo.gift("elderly-meals", 66_00, shown_name="刘**", message="愿长者吃得暖、吃得好")
    echo.gift("child-protection", 500_00, shown_name="Z**")
    echo.flush()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=False)
    return path


def test_a_gift_shows_without_a_reload_and_the_screen_recovers_from_a_cut(
    start_gateway: GatewayFactory, echo: LedgerEcho, page: Any
) -> None:
    seed_demo(echo)
    gateway = start_gateway()
    proxy = CuttableProxy(gateway.port)
    try:
        page.goto(f"{proxy.url}/screen/botanic-garden")
        page.wait_for_function("document.body.dataset.state === 'live'", timeout=10_000)
        page.wait_for_function("document.querySelectorAll('.gift').length >= 5")
        page.evaluate("window.__sameDocument = true")
        total_before = page.text_content("#venue-total")
        assert total_before == "¥346,495.00"  # 31,245 + 126,880.50 + 187,340 + the six gifts
        page.wait_for_timeout(3500)  # let the arrival highlights fade
        shot(page, "display-botanic-garden.png")

        echo.gift("elderly-meals", 50_00, shown_name="王**")
        echo.flush()
        newest_name = (
            "document.querySelector('.gift .who') && document.querySelector('.gift .who').textContent"
        )
        page.wait_for_function(f"{newest_name} === '王**'", timeout=2_000)
        first_gift = page.text_content(".gift .line")
        assert "王**" in first_gift and "捐赠" in first_gift and "¥50.00" in first_gift
        assert "乐龄助餐" in first_gift
        assert page.text_content("#venue-total") == "¥346,545.00"
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
        page.wait_for_timeout(400)
        shot(page, "display-new-gift.png")

        proxy.cut()
        page.wait_for_function("document.body.dataset.state === 'reconnecting'", timeout=10_000)
        assert page.is_visible("#banner")
        assert "正在重新连接" in page.text_content("#status-zh")
        assert page.text_content("#venue-total") == "¥346,545.00"  # last known figure stays
        shot(page, "display-reconnecting.png")

        echo.gift(
            "charity-plants",
            88_00,
            kind="charity_sale",
            channel="venue",
            venue_id="botanic-garden",
            item="绿萝",
        )
        echo.flush()
        proxy.restore()
        page.wait_for_function("document.body.dataset.state === 'live'", timeout=40_000)
        page.wait_for_function("document.querySelector('#venue-total').textContent === '¥346,633.00'")
        assert page.is_hidden("#banner")
        assert page.evaluate("window.__sameDocument") is True
        sale = page.text_content(".gift .line")
        assert "义卖" in sale and "绿萝" in sale and "¥88.00" in sale
        page.wait_for_timeout(900)  # the new gift has slid in and still glows
        shot(page, "display-recovered.png")
    finally:
        proxy.close()


def test_the_screen_survives_a_gateway_restart_and_never_shows_a_wrong_total(
    start_gateway: GatewayFactory, echo: LedgerEcho, page: Any
) -> None:
    seed_demo(echo)
    first = start_gateway()
    proxy = CuttableProxy(first.port)
    try:
        page.goto(f"{proxy.url}/screen/event-hall")
        page.wait_for_function("document.body.dataset.state === 'live'", timeout=10_000)
        page.evaluate("window.__sameDocument = true")
        # Record every total the page ever shows from here on.
        page.evaluate(
            """window.__totals = [];
            const total = document.querySelector('#venue-total');
            new MutationObserver(() => window.__totals.push(total.textContent))
              .observe(total, {childList: true, characterData: true, subtree: true});"""
        )
        page.wait_for_timeout(3500)
        shot(page, "display-event-hall.png")
        first.stop()
        page.wait_for_function("document.body.dataset.state === 'reconnecting'", timeout=10_000)
        echo.gift("veterans-care", 1_000_00, shown_name="孙**")
        echo.flush()
        second = start_gateway()
        proxy.retarget(second.port)
        page.wait_for_function("document.body.dataset.state === 'live'", timeout=40_000)
        page.wait_for_function("document.querySelector('#venue-total').textContent === '¥457,215.00'")
        assert page.evaluate("window.__sameDocument") is True
        shown = page.evaluate("window.__totals")
        assert set(shown) <= {"¥456,215.00", "¥457,215.00"}, shown  # before and after, nothing else
    finally:
        proxy.close()


@pytest.mark.parametrize("venue", ["community-centre"])
def test_other_themes_and_the_unknown_venue_page(
    start_gateway: GatewayFactory, echo: LedgerEcho, page: Any, venue: str
) -> None:
    seed_demo(echo)
    gateway = start_gateway()
    page.goto(f"{gateway.url}/screen/{venue}")
    page.wait_for_function("document.body.dataset.state === 'live'", timeout=10_000)
    page.wait_for_timeout(3500)
    shot(page, f"display-{venue}.png")
    response = page.goto(f"{gateway.url}/screen/no-such-venue")
    assert response.status == 404
    assert "未找到场馆屏幕" in page.text_content("h1")
    shot(page, "display-unknown-venue.png")
