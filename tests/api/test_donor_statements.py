"""A donor's year-end statement: public (each receipt's number and code) and from staff (numbers
alone, logged), on a ledger and donor store holding the test's own gifts. The totals equal the
test's sums to the fen; a wrong code is a 404 naming the receipt and shows nothing; wrong codes
from one client soon meet a 429; a manager sees only their own projects' gifts."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api.donor_statements import LookupGuard
from services.contracts import events as ev
from services.donors.adapters.store import DonorDetails, DonorStore
from services.donors.domain.pledges import Pledge
from services.ledger.adapters.store import LedgerStore
from services.ledger.domain.money import Money
from services.platform.db import make_engine
from services.staff.domain.roles import Role
from tests.fixtures import factories as f
from tests.fixtures.donor_payments import mark_paid
from tests.fixtures.staff import StaffApp, csrf_of, log_in, staff_app


@dataclasses.dataclass(frozen=True)
class Gift:
    project_id: str
    gross_fen: int
    paid_at: datetime
    refunded_fen: int = 0


GIFTS = [
    Gift("meals", 5_000, datetime(2026, 1, 3, 4, tzinfo=UTC)),
    Gift("meals", 12_345, datetime(2026, 6, 1, 8, tzinfo=UTC), refunded_fen=2_345),
    Gift("books", 800, datetime(2026, 12, 31, 15, 59, tzinfo=UTC)),  # 23:59 on 31 Dec in China
    Gift("meals", 999, datetime(2026, 12, 31, 16, 0, tzinfo=UTC)),  # 1 Jan 2027 in China
    Gift("meals", 777, datetime(2025, 12, 1, tzinfo=UTC)),
]
IN_2026 = GIFTS[:3]


@dataclasses.dataclass
class Receipts:
    app: StaffApp
    held: list[tuple[str, str]]  # (number, code) of each gift in GIFTS' order


def _paid(store: DonorStore, gift: Gift, n: int) -> Pledge:
    pledge = f.a_pledge(project_id=gift.project_id, amount_fen=gift.gross_fen, verification_code=f"AB{n:06d}")
    store.create_pledge(pledge, DonorDetails.new("王小明", None), client_hash="c", idempotency=None, now_ms=1)
    paid_ms = int(gift.paid_at.timestamp() * 1000)
    return mark_paid(store, pledge.donation_id, f"ch-{n}", paid_ms, 0, "SIP", gift.paid_at.year)


def donor_seed(db_url: str) -> tuple[list[ev.Event], list[tuple[str, str]]]:
    """GIFTS paid in the donor store at db_url (migrated here) and the events that confirm them
    (and refund what they say) for the ledger; with each receipt's (number, code)."""
    LedgerStore(make_engine(db_url)).migrate()
    store = DonorStore(make_engine(db_url))
    paid = [_paid(store, gift, n) for n, gift in enumerate(GIFTS)]
    seed = [f.lifecycle(ev.ProjectApproved, "books"), f.lifecycle(ev.FundraisingOpened, "books")]
    for gift, pledge in zip(GIFTS, paid, strict=True):
        confirmed = f.confirmed(
            gift.project_id, gift.gross_fen, 0, donation_id=pledge.donation_id, receipt_no=pledge.receipt_no
        )
        seed.append(dataclasses.replace(confirmed, occurred_at=gift.paid_at))
        if gift.refunded_fen:
            seed.append(f.refunded(gift.project_id, pledge.donation_id, gift.refunded_fen))
    return seed, [(str(p.receipt_no), p.verification_code) for p in paid]


@pytest.fixture
def receipts(tmp_path: Path, db_url: str) -> Iterator[Receipts]:
    seed, held = donor_seed(db_url)
    with staff_app(tmp_path, db_url, seed=seed) as app:
        app.add("aud", Role.AUDITOR)
        app.add("min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        app.add("fin", Role.FINANCE_OFFICER)
        yield Receipts(app, held)


def yuan(fen: int) -> str:
    return Money(fen, "CNY").format_yuan()


def ask(client: TestClient, lines: list[str], year: str = "2026") -> httpx.Response:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/statements").text)
    assert found is not None, "the form has a CSRF token"
    token = found.group(1)
    form = {"csrf_token": token, "receipts": "\n".join(lines), "year": year}
    answer: httpx.Response = client.post("/statements", data=form)
    return answer


def totals(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="([a-z]+)">([^<]+)<', page))


def test_a_donor_gets_the_years_gifts_of_the_receipts_they_hold(receipts: Receipts) -> None:
    client = TestClient(receipts.app.client.app)
    page = ask(client, [f"{no} {code.lower()}" for no, code in receipts.held])
    assert page.status_code == 200, page.text
    text = page.text
    assert totals(text) == {
        "given": yuan(sum(g.gross_fen for g in IN_2026)),
        "refunded": yuan(sum(g.refunded_fen for g in IN_2026)),
        "net": yuan(sum(g.gross_fen - g.refunded_fen for g in IN_2026)),
    }
    listed, other_years = text.split('class="card statement"')[1].split("Paid in another year")
    for (no, _), gift in zip(receipts.held, GIFTS, strict=True):
        assert (no in listed) == (gift in IN_2026), no
        assert (no in other_years) == (gift not in IN_2026), no
    assert "项目 meals" in text and "项目 books" in text
    assert "王小明" not in text and "ch-" not in text  # nothing about the donor but the gifts
    assert not any(code in text for _, code in receipts.held)  # codes are not shown back


def test_a_wrong_code_is_a_404_naming_the_receipt_and_shows_no_gift(receipts: Receipts) -> None:
    client = TestClient(receipts.app.client.app)
    (good, code), (other, _) = receipts.held[:2]
    page = ask(client, [f"{good} {code}", f"{other} WRONGCOD"])
    assert page.status_code == 404
    text = page.text
    assert f"{other}: 收据编号或验证码不对 · no receipt with this number and code" in text
    assert "data-total" not in text and yuan(GIFTS[0].gross_fen) not in text
    unknown = ask(client, [f"SIP-2026-9999999 {code}"])
    assert unknown.status_code == 404 and "SIP-2026-9999999: 收据编号或验证码不对" in unknown.text
    malformed = ask(client, ["SIP-2026-0000001"], year="26")
    assert malformed.status_code == 422
    assert "line 1 is not" in malformed.text and "the year is four digits" in malformed.text


def test_wrong_codes_from_one_client_are_refused_for_a_while(receipts: Receipts) -> None:
    client = TestClient(receipts.app.client.app)
    no, code = receipts.held[0]
    answers = [ask(client, [f"{no} GUESS{n:03d}"]).status_code for n in range(11)]
    assert answers == [404] * 10 + [429]
    refused = ask(client, [f"{no} {code}"])  # the right code too, until the window moves on
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many wrong numbers or codes" in refused.text
    guard = receipts.app.client.app.state.lookup_guard  # type: ignore[attr-defined]
    guard.clock = lambda: time.monotonic() + guard.window_s  # the window moved on
    assert ask(client, [f"{no} {code}"]).status_code == 200


def staff_statement(client: TestClient, numbers: list[str]) -> httpx.Response:
    token = csrf_of(client.get("/staff/audit/donor-statement").text)
    form = {"csrf": token, "receipts": "\n".join(numbers), "year": "2026"}
    answer: httpx.Response = client.post("/staff/audit/donor-statement", data=form)
    return answer


def test_staff_make_a_statement_from_numbers_and_each_is_logged(receipts: Receipts) -> None:
    client = TestClient(receipts.app.client.app)
    log_in(client, "aud")
    numbers = [no for no, _ in receipts.held]
    page = staff_statement(client, numbers)
    assert page.status_code == 200
    assert totals(page.text)["net"] == yuan(sum(g.gross_fen - g.refunded_fen for g in IN_2026))
    [logged] = [r for r in receipts.app.store.access_log(limit=5) if r.action == "personal_data"]
    assert logged.actor == "aud" and logged.decision == "allowed"
    assert logged.detail == f"donor statement 2026: {' '.join(numbers)}"


def test_a_manager_sees_only_their_projects_gifts(receipts: Receipts) -> None:
    client = TestClient(receipts.app.client.app)
    log_in(client, "min")
    meals = [no for (no, _), g in zip(receipts.held, GIFTS, strict=True) if g.project_id == "meals"]
    assert staff_statement(client, meals).status_code == 200
    books = receipts.held[2][0]
    refused = staff_statement(client, [*meals, books])
    assert refused.status_code == 403 and f"{books}: 不是您负责的项目" in refused.text
    assert "data-total" not in refused.text
    finance = TestClient(receipts.app.client.app)
    log_in(finance, "fin")
    assert finance.get("/staff/audit/donor-statement").status_code == 403


def test_the_guard_forgets_clients_whose_window_has_passed() -> None:
    now = [0.0]
    guard = LookupGuard(max_failures=2, window_s=10, clock=lambda: now[0])
    guard.max_clients = 3
    for client in ("a", "b", "c"):
        guard.failed(client, 2)
    assert guard.retry_after_s("a") == 11
    now[0] = 10.5
    guard.failed("d")
    assert guard.retry_after_s("a") == 0 and len(guard._failures) == 1


def test_one_request_cannot_check_more_codes_than_the_limit_leaves(receipts: Receipts) -> None:
    """Nine wrong codes, then a form of five wrong lines: one more is checked (the tenth), the
    other four are named as not checked, and the client is at the limit, not past it."""
    client = TestClient(receipts.app.client.app)
    no, code = receipts.held[0]
    assert [ask(client, [f"{no} GUESS{n:03d}"]).status_code for n in range(9)] == [404] * 9
    page = ask(client, [f"{other} GUESS999" for other, _ in receipts.held])  # five lines
    assert page.status_code == 404
    assert page.text.count("收据编号或验证码不对") == 1 and page.text.count("not checked") == 4
    guard = receipts.app.client.app.state.lookup_guard  # type: ignore[attr-defined]
    assert [len(failures) for failures in guard._failures.values()] == [guard.max_failures]
    assert ask(client, [f"{no} {code}"]).status_code == 429


def test_codes_checked_at_the_same_moment_are_counted_before_they_are_checked() -> None:
    """A reservation counts as failures until settled, so requests at the same moment cannot
    together check more codes than the limit; the ones that matched are given back."""
    guard = LookupGuard(max_failures=10, window_s=900, clock=lambda: 0.0)
    assert guard.reserve("a", 20) == 10  # a form of twenty: ten may be checked now
    assert guard.reserve("a", 5) == 0  # another at the same moment: none
    guard.settle("a", reserved=10, wrong=0)  # all ten matched
    assert guard.retry_after_s("a") == 0 and guard.reserve("a", 3) == 3
    guard.settle("a", reserved=3, wrong=3)
    assert guard.reserve("a", 20) == 7
