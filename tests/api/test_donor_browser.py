"""A donor's whole visit in headless Chromium on a phone: from the venue screen's QR code to a
verified receipt, and the gift back on the screen and in the project's total.

Everything is real and on loopback: broker, ledger (SQLite), the WeChat Pay sandbox, the API
and a display gateway on the same topics. The QR code is read from pixels the browser drew,
as a phone's camera would. The browser may reach loopback only; any other request is aborted
and fails the test.

Screenshots of every step go to the test's tmp directory. With CHARITY_DOCS_SCREENSHOTS=1 the
ones docs/donors.md shows are also written to docs/screenshots/donor-*.png.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from services.display.main import Gateway
from services.display.options import DisplayOptions
from services.display.venues import load_catalogue
from services.donors.adapters import tables as donor_tables
from services.platform.free_ports import free_ports
from services.verifier.receipt import main as verifier_main
from services.verifier.receipt import verify_receipt
from tests.api.test_giving import open_project
from tests.display.conftest import wait_ready
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, chromium
from tests.fixtures.giving import GivingSystem
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration

REFUSED = "the server responded with a status of 422 (Unprocessable Entity)"
VENUE = "meals-stall"
PROJECT = "meals"
FOR_DOCS = {
    "03b-donate-form-filled": "donor-donate-form.png",
    "04-sandbox-pay": "donor-sandbox-pay.png",
    "06-receipt-verified": "donor-receipt-verified.png",
    "08-project-page": "donor-project-page.png",
    "09-venue-screen": "donor-venue-screen.png",
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # Overrides the shared fixture: the visit is the same on either database; SQLite is enough.
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def gateway(giving: GivingSystem, tmp_path: Path) -> Iterator[Gateway]:
    """A display gateway on the giving system's topics with a venue of one project, its QR code
    pointing at the API."""
    venues = tmp_path / "venues.json"
    venue = {
        "id": VENUE,
        "title": {"zh": "乐龄助餐义卖摊", "en": "Meals stall"},
        "projects": [PROJECT],
        "theme": "community",
        "feed": {"show_messages": True},
    }
    catalogue = {"venues": [venue], "moderation": {"mode": "wordlist", "blocked_words": ["坏词"]}}
    venues.write_text(json.dumps(catalogue, ensure_ascii=False), encoding="utf-8")
    options = DisplayOptions(
        venues_path=venues, decisions_path=tmp_path / "moderation-decisions.jsonl", heartbeat_s=15.0
    )
    started = Gateway(giving.settings, options, load_catalogue(venues), port=free_ports(1)[0])
    started.start_in_thread()
    wait_ready(started.url)
    yield started
    started.stop()


@pytest.fixture
def tabs() -> Iterator[Callable[[], LoopbackOnly]]:
    """Pages in headless Chromium that reach loopback only (1280×720, zh-CN); afterwards, none
    may have asked for anything beyond loopback or met an error."""
    opened: list[LoopbackOnly] = []
    with chromium() as browser:

        def tab() -> LoopbackOnly:
            opened.append(LoopbackOnly(browser))
            return opened[-1]

        yield tab
    for each in opened:
        assert each.blocked == [], "a page asked for something beyond loopback"
        assert each.errors == []


def decode_qr(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as image:
        return [found.text for found in zxingcpp.read_barcodes(image.convert("L"))]


def pledges_written(giving: GivingSystem) -> int:
    with giving.ledger.app.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(donor_tables.pledges)) or 0)


def receipt_json(giving: GivingSystem, number: str, code: str) -> dict[str, Any]:
    answer = giving.api.get("/api/donor-receipts", params={"receipt_no": number, "code": code})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_donor_gives_from_the_venue_qr_code_to_a_verified_receipt(
    giving: GivingSystem, gateway: Gateway, tabs: Callable[[], LoopbackOnly], tmp_path: Path
) -> None:
    shots = Shots(tmp_path, FOR_DOCS)
    api = giving.settings.public_base_url
    open_project(giving.api, PROJECT)

    # The venue screen, live, and its QR code as the screen draws it.
    screen = tabs().page
    screen.goto(f"{gateway.url}/screen/{VENUE}")
    screen.wait_for_function("document.body.dataset.state === 'live'", timeout=15_000)
    screen.wait_for_function("document.querySelector('figure.qr img').naturalWidth > 0")
    expected = f"{api}/donate?project={PROJECT}&venue={VENUE}"
    assert decode_qr(screen.locator("figure.qr img").screenshot()) == [expected]

    phone_tab = tabs()
    phone = phone_tab.page
    phone.set_viewport_size(PHONE)
    # The SVG on its own, as a phone that opened the image would draw it.
    answer = phone.goto(f"{gateway.url}/screen/{VENUE}/qr.svg")
    assert answer is not None and answer.headers["content-type"].startswith("image/svg+xml")
    decoded = decode_qr(phone.screenshot())
    assert decoded == [expected]

    # Scanned: the donate form of the venue's project.
    phone.goto(decoded[0])
    assert "乐龄助餐" in phone.text_content("h2")
    assert phone.input_value("input[name=venue]") == VENUE
    assert phone.input_value("input[name=project]") == PROJECT
    shots.take(phone, "01-donate-form")

    # English first after the switch; the project and venue stay chosen; and back.
    phone.click("header .lang a")
    assert phone.evaluate("document.documentElement.lang") == "en"
    assert phone.text_content("h2 span:first-child") == "Give"
    assert phone.input_value("input[name=venue]") == VENUE
    shots.take(phone, "02-donate-form-en")
    phone.click("header .lang a")
    assert phone.evaluate("document.documentElement.lang") == "zh-CN"
    assert phone.input_value("input[name=project]") == PROJECT

    # Amounts a person might type that are not amounts: the form again, with the reason.
    for typed, reason in (("５０", "金额格式不正确"), ("1e3", "金额格式不正确"), ("50.055", "两位小数")):
        phone.fill("input[name=amount]", typed)
        phone.fill("input[name=display_name]", "王小明")
        with phone.expect_navigation() as refused:
            phone.click("form.donate button[type=submit]")
        assert refused.value.status == 422
        assert reason in phone.text_content("p.error[role=alert]")
        assert phone.input_value("input[name=amount]") == typed  # what the donor typed is kept
        assert phone.input_value("input[name=display_name]") == "王小明"
    shots.take(phone, "03-donate-form-refused")
    assert pledges_written(giving) == 0
    assert phone_tab.errors == [f"Failed to load resource: {REFUSED}"] * 3  # the console notes each 422
    phone_tab.errors.clear()
    # The form shown after a post has no query; the switch still keeps the venue's project.
    phone.click("header .lang a")
    assert phone.input_value("input[name=venue]") == VENUE
    phone.click("header .lang a")
    assert phone.evaluate("document.documentElement.lang") == "zh-CN"

    # A real gift: 52.5 yuan, name shown masked, with a message.
    phone.check("input[name=preset][value='100']")
    assert phone.input_value("input[name=amount]") == ""  # a preset clears what was typed
    phone.fill("input[name=amount]", "52.5")
    assert not phone.is_checked("input[name=preset][value='100']")  # and typing unchecks the preset
    phone.check("input[name=anonymity][value=masked]")
    phone.fill("input[name=display_name]", "王小明")
    phone.fill("textarea[name=message]", "祝长者安康")
    phone.check("input[name=consent]")
    shots.take(phone, "03b-donate-form-filled")
    phone.click("form.donate button[type=submit]")
    phone.wait_for_url(f"{giving.settings.payment_base_url}/pay/**")
    assert phone.text_content(".amount") == "¥52.50"
    assert pledges_written(giving) == 1
    shots.take(phone, "04-sandbox-pay")

    phone.click("button.pay")
    phone.wait_for_url(f"{api}/donate/return/**")
    phone.wait_for_selector(".receipt-no", timeout=30_000)  # the page refreshes until it is paid
    number, code = (phone.text_content(s) or "" for s in (".receipt-no >> nth=0", ".receipt-no >> nth=1"))
    assert number.startswith("SIP-") and len(code) >= 4
    shots.take(phone, "05-return")

    # No signed tree head covers the gift yet: the receipt says so and asks again by itself
    # until one does (this test's ledger signs only when told to).
    phone.click("a.button[href^='/receipts/']")
    assert "本页会自动刷新" in (phone.text_content("main") or "")
    eventually(lambda: receipt_json(giving, number, code)["in_ledger"], what="the gift in the ledger")
    giving.ledger.app.signer.publish_if_grown()
    phone.wait_for_selector("[data-receipt-verify-state]", timeout=15_000)
    assert phone.get_attribute("[data-receipt-verify]", "data-receipt-verify-state") == "verified"
    assert phone.text_content(".receipt-verdict") == "已验证 Verified"
    assert "¥52.50" in phone.text_content("table.figures")
    shots.take(phone, "06-receipt-verified")

    # The downloaded file holds what the offline check needs.
    with phone.expect_download() as download:
        phone.click("a[download]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"receipt-{number}.json"
    downloaded = saved.read_text(encoding="utf-8")
    bundle = json.loads(downloaded)
    assert bundle["receipt_no"] == number
    offline = verify_receipt(bundle["receipt"], bundle["tree_head"], bundle["public_key"])
    assert offline.ok, offline.reason
    assert verifier_main([str(saved)]) == 0  # the command the page shows
    assert "王" not in downloaded and "祝长者安康" not in downloaded  # the proof holds no person

    # The same check on an altered receipt says so, in red, with the step that failed.
    failed = phone.evaluate(
        """() => {
          const block = document.getElementById("receipt-data");
          const data = JSON.parse(block.textContent);
          data.receipt.entry.body.gross_fen += 10000;
          block.textContent = JSON.stringify(data);
          return ReceiptVerify.verifyElement(document.querySelector("[data-receipt-verify]"));
        }"""
    )
    assert not failed["ok"]
    assert phone.get_attribute("[data-receipt-verify]", "data-receipt-verify-state") == "failed"
    assert (phone.text_content(".receipt-verdict") or "").startswith("验证失败 Verification failed")
    background = "getComputedStyle(document.querySelector('.verify-result')).backgroundColor"
    assert phone.evaluate(background) == "rgb(251, 234, 230)"  # the page's error colour
    shots.take(phone, "06b-receipt-altered")
    phone.reload()
    phone.wait_for_selector("[data-receipt-verify-state=verified]")

    # The English switch on the receipt keeps the code that opens it.
    phone.click("header .lang a")
    assert phone.text_content(".receipt-no") == number
    assert phone.text_content(".card h2 span:first-child") == "Donation receipt"
    phone.wait_for_selector("[data-receipt-verify-state=verified]")
    shots.take(phone, "07-receipt-en")
    phone.click("header .lang a")

    # The project's page and the list show the gift.
    phone.goto(f"{api}/projects/{PROJECT}")
    assert phone.text_content(".card .raised") == "¥52.50"
    shots.take(phone, "08-project-page", full_page=False)  # the figures; the plan follows below
    phone.goto(f"{api}/")
    card = f"[data-project={PROJECT}]"
    assert phone.text_content(f"{card} [data-field=raised]") == "¥52.50"
    assert phone.text_content(f"{card} [data-field=count]") == "1"
    shots.take(phone, "08b-home")

    # Back on the screen, without a reload: the masked name, the amount, the venue's total.
    screen.wait_for_function(
        "document.querySelector('.gift .who') && document.querySelector('.gift .who').textContent === '王**'",
        timeout=15_000,
    )
    gift = screen.text_content(".gift .line") or ""
    assert "¥52.50" in gift and "乐龄助餐" in gift and "小明" not in gift
    assert screen.text_content(".gift .message") == "祝长者安康"
    screen.wait_for_function("document.querySelector('#venue-total').textContent === '¥52.50'")
    # The picture once the gift's arrival highlight has played out.
    screen.wait_for_function(
        "document.querySelector('.gift').getAnimations({subtree: true})"
        ".every((a) => a.playState === 'finished')"
    )
    shots.take(screen, "09-venue-screen", full_page=False)
