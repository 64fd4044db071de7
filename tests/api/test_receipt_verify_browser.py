"""receipt-verify.js, the donor's receipt check in the browser, in headless Chromium.

The receipts are real: the batch processor journals a few entries into a SQLite
ledger, the tree-head signer signs a head with the ledger's Ed25519 key, and the
read side serves each receipt as GET /api/receipts/{entry_id} does. The page and
services/api/static are served from loopback; any other request is aborted and
recorded. Every case also goes to the standalone verifier
(services/verifier/receipt.py), and the two must agree.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Error as PlaywrightError

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.signing import (
    key_id,
    load_or_create_signing_key,
    public_key_pem,
    sign_tree_head,
)
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.merkle import TreeHead
from services.ledger.read import Transparency
from services.ledger.service.processor import BatchProcessor
from services.platform.free_ports import free_ports
from services.platform.http_thread import serve_in_thread
from services.verifier.receipt import verify_receipt
from tests.fixtures import factories as f
from tests.fixtures.browser import LoopbackOnly, chromium
from tests.fixtures.ledger import eventually
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed

STATIC_DIR = Path(__file__).resolve().parents[2] / "services" / "api" / "static"
# Quotes, a backslash, a character beyond the BMP, a tab and a line feed: what a home-made
# serialiser gets wrong first.
TRICKY = '他说 "加油" \\ 🌱\t1\n第二行'
LOADER = """<!doctype html><meta charset="utf-8"><title>receipt check</title>
<script src="/static/receipt-verify.js"></script>"""


@dataclass
class Receipts:
    gift: dict[str, Any]  # the receipt of a gift with a receipt number
    progress: dict[str, Any]  # the receipt of a progress report with TRICKY text
    pem: str
    key: Ed25519PrivateKey


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # Overrides the shared fixture: a browser check needs no second database engine.
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def receipts(store: LedgerStore, tmp_path: Path) -> Receipts:
    processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
    gift = f.confirmed("p1", 12_345, 74, receipt_no="SIP-2026-0001234")
    progress = f.lifecycle(ev.ProgressReported, "p1", summary=TRICKY)
    feed(processor, f.opened_project("p1"))
    feed(processor, [gift, f.confirmed("p1", 500, 3)], start=3)
    feed(processor, [progress], start=5)
    key = load_or_create_signing_key(tmp_path / "key.pem")
    assert TreeHeadSigner(store.engine, key, RecordingOutput(), Topics("")).publish_if_grown() is not None
    transparency = Transparency(store.engine)
    gift_receipt, progress_receipt = (
        transparency.receipt(gift.event_id),
        transparency.receipt(progress.event_id),
    )
    pem = transparency.current_public_key()
    assert gift_receipt is not None and progress_receipt is not None and pem is not None
    return Receipts(gift_receipt, progress_receipt, pem, key)


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, dict[str, str]]]:
    """The static directory at /static, as the API mounts it, and test pages at /pages/<name>."""
    pages = {"loader": LOADER}
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/pages/{name}", response_class=HTMLResponse)
    def page(name: str) -> HTMLResponse:
        # As strict as the API's pages for scripts, and no connections at all: the check
        # needs nothing but what the page holds.
        policy = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'none'"
        return HTMLResponse(pages[name], headers={"Content-Security-Policy": policy})

    port = free_ports(1)[0]
    server = serve_in_thread(app, "127.0.0.1", port)
    eventually(lambda: server.started, 30, "the page server listening")
    yield f"http://127.0.0.1:{port}", pages
    server.should_exit = True
    eventually(lambda: _closed(port), 30, "the page server stopped")


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def offline(browser: Any) -> Iterator[LoopbackOnly]:
    page = LoopbackOnly(browser)
    yield page
    # Nothing the check needs lies beyond loopback, and nothing went wrong on the page.
    assert page.blocked == []
    assert page.errors == []
    page.context.close()


class InBrowser:
    """receipt-verify.js's functions, called in a page that imported the module."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def verify(self, receipt: dict[str, Any], head: dict[str, Any] | None, keys: Any) -> Any:
        return self.page.evaluate(
            "([receipt, head, keys]) => window.ReceiptVerify.verifyReceipt(receipt, head, keys)",
            [receipt, head, keys],
        )

    def canonical(self, entry: dict[str, Any]) -> str:
        return str(self.page.evaluate("(entry) => window.ReceiptVerify.canonicalJson(entry)", entry))


@pytest.fixture
def in_browser(site: tuple[str, dict[str, str]], offline: LoopbackOnly) -> InBrowser:
    origin, _ = site
    offline.page.goto(f"{origin}/pages/loader")
    offline.page.wait_for_function("() => window.ReceiptVerify !== undefined")
    return InBrowser(offline.page)


def signed_by(key: Ed25519PrivateKey, head: dict[str, Any], *, name_the_key: bool) -> dict[str, Any]:
    """The same head, signed by another key; naming that key, or still naming the ledger's."""
    tree_head = TreeHead(
        size=head["tree_size"], root=bytes.fromhex(head["root_hash"]), timestamp_ms=head["timestamp_ms"]
    )
    forged = {**head, "signature": base64.b64encode(sign_tree_head(key, tree_head)).decode()}
    return {**forged, "key_id": key_id(key)} if name_the_key else forged


def _amount_raised(receipt: dict[str, Any], *, in_canonical_too: bool) -> None:
    receipt["entry"]["body"]["gross_fen"] += 100_00
    if in_canonical_too:  # a forger who keeps the two copies in step
        receipt["canonical"] = receipt["canonical"].replace('"gross_fen":12345', '"gross_fen":22345')


def _proof_node_flipped(receipt: dict[str, Any]) -> None:
    node = bytearray.fromhex(receipt["inclusion_proof"][1])
    node[0] ^= 0x01
    receipt["inclusion_proof"][1] = node.hex()


def _no_canonical_copy_and_amount_raised(receipt: dict[str, Any]) -> None:
    receipt.pop("canonical")
    _amount_raised(receipt, in_canonical_too=False)


# name: (what is done to the gift's receipt, which head it is checked against, the step that fails)
CASES: dict[str, tuple[Callable[[dict[str, Any]], object], str, str | None]] = {
    "genuine": (lambda r: None, "genuine", None),
    "saved before receipts carried canonical": (lambda r: r.pop("canonical"), "genuine", None),
    "amount raised in both copies": (
        lambda r: _amount_raised(r, in_canonical_too=True),
        "genuine",
        "leaf_hash",
    ),
    "amount raised in the entry shown": (
        lambda r: _amount_raised(r, in_canonical_too=False),
        "genuine",
        "entry",
    ),
    "amount raised, no canonical copy": (_no_canonical_copy_and_amount_raised, "genuine", "leaf_hash"),
    "proof node flipped": (_proof_node_flipped, "genuine", "inclusion"),
    "proof node appended": (lambda r: r["inclusion_proof"].append(r["leaf_hash"]), "genuine", "inclusion"),
    "leaf index moved": (lambda r: r.update(leaf_index=r["leaf_index"] - 1), "genuine", "inclusion"),
    "head signed by another key": (lambda r: None, "other key, named", "signature"),
    "head signed by another key, naming the ledger's": (lambda r: None, "other key, unnamed", "signature"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_browser_and_the_python_verifier_agree(
    case: str, receipts: Receipts, in_browser: InBrowser
) -> None:
    damage, which_head, failing_step = CASES[case]
    receipt = copy.deepcopy(receipts.gift)
    damage(receipt)
    other = Ed25519PrivateKey.generate()
    head = {
        "genuine": receipt["tree_head"],
        "other key, named": signed_by(other, receipt["tree_head"], name_the_key=True),
        "other key, unnamed": signed_by(other, receipt["tree_head"], name_the_key=False),
    }[which_head]

    result = in_browser.verify(receipt, head, receipts.pem)
    in_python = verify_receipt(receipt, head, receipts.pem)

    failed = [s["name"] for s in result["steps"] if not s["ok"]]
    assert [s["name"] for s in result["steps"]] == ["input", "signature", "entry", "leaf_hash", "inclusion"]
    if failing_step is None:
        assert result["ok"] and failed == [], result
        assert result["entry"]["body"]["receipt_no"] == "SIP-2026-0001234"
        assert in_python.ok, in_python.reason
    else:
        assert not result["ok"] and failed[0] == failing_step, result
        assert not in_python.ok
        assert result["entry"] is None


def test_text_that_needs_escaping_verifies_from_either_copy(
    receipts: Receipts, in_browser: InBrowser
) -> None:
    receipt = receipts.progress
    assert receipt["entry"]["body"]["summary"] == TRICKY
    # The browser's fallback writes, character for character, what the ledger hashed.
    assert in_browser.canonical(receipt["entry"]) == receipt["canonical"]
    assert in_browser.verify(receipt, None, receipts.pem)["ok"]  # None: the receipt's own head
    older = {k: v for k, v in receipt.items() if k != "canonical"}
    assert in_browser.verify(older, None, receipts.pem)["ok"]
    assert verify_receipt(older, older["tree_head"], receipts.pem).ok


def test_the_key_list_the_api_serves_picks_the_heads_key(receipts: Receipts, in_browser: InBrowser) -> None:
    another = Ed25519PrivateKey.generate()
    keys = [
        {"key_id": key_id(another), "public_key": public_key_pem(another)},
        {"key_id": key_id(receipts.key), "public_key": receipts.pem},
    ]
    assert in_browser.verify(receipts.gift, None, keys)["ok"]
    assert not in_browser.verify(receipts.gift, None, keys[:1])["ok"]


def _page(title: str, element: str) -> str:
    return f"""<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{title}</title>
<style>
  body {{ font-family: "Noto Sans CJK SC", sans-serif; margin: 40px; color: #1d2b36; }}
  [data-receipt-verify] {{ border: 2px solid #aab; border-radius: 8px; padding: 16px 24px; }}
  [data-receipt-verify-state="verified"] {{ border-color: #2e7d32; }}
  [data-receipt-verify-state="failed"] {{ border-color: #c62828; }}
  .receipt-verdict {{ font-size: 28px; font-weight: bold; }}
  .receipt-steps {{ font-size: 15px; line-height: 1.6; }}
</style>
<h1>{title}</h1>
{element}
<script src="/static/receipt-verify.js"></script>
</html>"""


def test_a_page_shows_the_verdict_chinese_first(
    receipts: Receipts, site: tuple[str, dict[str, str]], offline: LoopbackOnly, tmp_path: Path
) -> None:
    origin, pages = site
    # As the receipt page puts it: the receipt (with its own head) and the key that
    # signed the head, as /api/transparency/public-keys lists it.
    key = {"key_id": receipts.gift["tree_head"]["key_id"], "algorithm": "Ed25519", "public_key": receipts.pem}
    # In a JSON script block, "<" is escaped so that no text can end the script early.
    block = json.dumps({"receipt": receipts.gift, "public_key": key}, ensure_ascii=False).replace(
        "<", "\\u003c"
    )
    pages["genuine"] = _page(
        "捐赠收据验证 Receipt check",
        f'<div data-receipt-verify><script type="application/json">{block}</script>'
        "<div data-receipt-verify-result>正在验证… Verifying…</div></div>",
    )
    forged = copy.deepcopy(receipts.gift)
    _proof_node_flipped(forged)
    attributes = " ".join(
        f'data-{name}="{html.escape(value, quote=True)}"'
        for name, value in [("receipt", json.dumps(forged)), ("public-key", receipts.pem)]
    )
    pages["forged"] = _page("捐赠收据验证 Receipt check", f"<div data-receipt-verify {attributes}></div>")

    offline.page.goto(f"{origin}/pages/genuine")
    offline.page.wait_for_selector("[data-receipt-verify-state]")
    assert offline.page.get_attribute("[data-receipt-verify]", "data-receipt-verify-state") == "verified"
    verdict = offline.page.inner_text(".receipt-verdict")
    assert verdict == "已验证 Verified"
    assert offline.page.locator(".receipt-steps li[data-ok=true]").count() == 5
    shot = tmp_path / "receipt-verified.png"
    offline.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    offline.page.goto(f"{origin}/pages/forged")
    offline.page.wait_for_selector("[data-receipt-verify-state]")
    assert offline.page.get_attribute("[data-receipt-verify]", "data-receipt-verify-state") == "failed"
    assert (
        offline.page.inner_text(".receipt-verdict")
        == "验证失败 Verification failed: 包含证明 Inclusion proof"
    )
    assert offline.page.get_attribute("[data-receipt-verify]", "data-failed-step") == "inclusion"
    offline.page.screenshot(path=str(tmp_path / "receipt-failed.png"), full_page=True)


def test_requests_beyond_loopback_are_blocked(offline: LoopbackOnly) -> None:
    # The guard the other tests rely on. (Their pages' policy forbids connections too;
    # a navigation is not subject to it, so this one reaches the guard.)
    with pytest.raises(PlaywrightError, match="ERR_INTERNET_DISCONNECTED"):
        offline.page.goto("https://example.org/key.pem")
    assert offline.blocked == ["https://example.org/key.pem"]
    offline.blocked.clear()  # seen; the fixture's own check is for the other tests
