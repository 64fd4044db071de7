"""A donor's year-end statement, from the receipts they hold, and the guard against guessing codes.

Gifts are not linked to a person: each pledge has its own donor_ref, the provider's payer
id is not kept, and the donate form asks for no contact. So "a donor's statement" is the
gifts of the receipts the donor holds: they name each receipt by its number and code (staff
by its number alone), and the statement lists those paid in the year, with the project,
the amount, what was refunded and the total. Nothing else about the donor is shown, and a
receipt whose number and code do not match opens nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from services.api.errors import Problem
from services.donors.adapters.store import DonorStore
from services.donors.domain.receipts import RECEIPT_NO, codes_match
from services.ledger.read import LedgerQueries

CHINA = ZoneInfo("Asia/Shanghai")
MAX_RECEIPTS = 20  # on one statement
WRONG = ".code"  # the end of a problem's field when the number and code do not match
NOT_YOURS = ".project"  # … when the gift is to a project the asker may not see
UNCHECKED = ".unchecked"  # … when the asker's wrong tries reached the limit before this line


@dataclass(frozen=True)
class AskedReceipt:
    receipt_no: str
    code: str | None  # None when staff ask


@dataclass(frozen=True)
class StatementGift:
    receipt_no: str
    project_id: str
    project_name: str
    paid_at: datetime  # the journal entry's effective time, in China's time zone
    currency: str
    gross_fen: int
    refunded_fen: int  # to the statement's date
    in_suspense: bool  # the project could not take it: held for refund or redirection

    @property
    def net_fen(self) -> int:
        return self.gross_fen - self.refunded_fen


@dataclass
class DonorStatement:
    year: int
    gifts: list[StatementGift] = field(default_factory=list)
    other_years: list[str] = field(default_factory=list)  # receipts asked for, paid in another year

    def totals(self) -> dict[str, tuple[int, int, int]]:
        """Per currency: given, refunded, net."""
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for g in self.gifts:
            row = sums[g.currency]
            row[0] += g.gross_fen
            row[1] += g.refunded_fen
            row[2] += g.net_fen
        return {currency: (a, b, c) for currency, (a, b, c) in sorted(sums.items())}


def parse_receipts(text: str, *, with_codes: bool) -> tuple[list[AskedReceipt], list[Problem]]:
    """One receipt a line: `NUMBER CODE` (or `NUMBER` for staff); each bad line named."""
    asked: list[AskedReceipt] = []
    problems: list[Problem] = []
    lines = [line.split() for line in text.replace(",", " ").splitlines() if line.strip()]
    if not lines:
        return [], [Problem(field="receipts", problem="请至少填写一张收据 · name at least one receipt")]
    if len(lines) > MAX_RECEIPTS:
        too_many = f"一次最多 {MAX_RECEIPTS} 张收据 · at most {MAX_RECEIPTS} receipts at a time"
        return [], [Problem(field="receipts", problem=too_many)]
    for n, parts in enumerate(lines, 1):
        number = parts[0].upper()
        wanted = 2 if with_codes else 1
        if RECEIPT_NO.fullmatch(number) is None or len(parts) != wanted:
            shape = "编号 验证码 · NUMBER CODE" if with_codes else "编号 · NUMBER"
            problems.append(
                Problem(field=f"receipts.{n}", problem=f"第 {n} 行应为 {shape} · line {n} is not {shape}")
            )
            continue
        asked.append(AskedReceipt(number, parts[1] if with_codes else None))
    return asked, problems


def parse_request(
    receipts: str, year: str, *, with_codes: bool
) -> tuple[list[AskedReceipt], int, list[Problem]]:
    """The statement form's receipts and year, or each field's problem."""
    asked, problems = parse_receipts(receipts, with_codes=with_codes)
    if not (year.isdigit() and len(year) == 4):
        problems.append(Problem(field="year", problem="年份应为四位数字 · the year is four digits"))
        return asked, 0, problems
    return asked, int(year), problems


def donor_statement(
    store: DonorStore,
    queries: LedgerQueries,
    asked: Sequence[AskedReceipt],
    year: int,
    may_see: Callable[[str], bool] = lambda project_id: True,
    max_wrong: int | None = None,
) -> tuple[DonorStatement, list[Problem]]:
    """The statement of `year` for these receipts, or each receipt's problem: a wrong number or
    code (the same words either way), a project the asker may not see, a gift not in the ledger
    yet; once `max_wrong` were wrong, the lines after are not checked. With any problem the
    caller shows the problems, not the statement."""
    statement = DonorStatement(year)
    problems: list[Problem] = []
    names: dict[str, str] = {}
    wrongs = 0
    for receipt in dict.fromkeys(asked):  # a receipt named twice counts once
        where = f"receipts.{receipt.receipt_no}"
        if max_wrong is not None and wrongs >= max_wrong:
            unchecked = "未核对：错误次数过多，请稍后再试 · not checked: too many wrong numbers or codes"
            problems.append(
                Problem(field=f"{where}{UNCHECKED}", problem=f"{receipt.receipt_no}: {unchecked}")
            )
            continue
        pledge = store.pledge_by_receipt(receipt.receipt_no)
        if pledge is None or (
            receipt.code is not None and not codes_match(receipt.code, pledge.verification_code)
        ):
            wrongs += 1
            wrong = "收据编号或验证码不对 · no receipt with this number and code"
            problems.append(Problem(field=f"{where}{WRONG}", problem=f"{receipt.receipt_no}: {wrong}"))
            continue
        if not may_see(pledge.project_id):
            not_yours = "不是您负责的项目 · a gift to a project you do not run"
            problems.append(
                Problem(field=f"{where}{NOT_YOURS}", problem=f"{receipt.receipt_no}: {not_yours}")
            )
            continue
        gift = queries.gift(pledge.donation_id)
        if gift is None:
            pending = "尚未记入账本，请稍后再试 · not in the ledger yet; try again shortly"
            problems.append(Problem(field=where, problem=f"{receipt.receipt_no}: {pending}"))
            continue
        paid_at = datetime.fromisoformat(gift["effective_at"]).astimezone(CHINA)
        if paid_at.year != year:
            statement.other_years.append(receipt.receipt_no)
            continue
        if pledge.project_id not in names:
            project = queries.project(pledge.project_id)
            names[pledge.project_id] = str(project.plan.get("name", pledge.project_id)) if project else ""
        statement.gifts.append(
            StatementGift(
                receipt_no=receipt.receipt_no,
                project_id=pledge.project_id,
                project_name=names[pledge.project_id] or pledge.project_id,
                paid_at=paid_at,
                currency=gift["currency"],
                gross_fen=int(gift["gross_fen"]),
                refunded_fen=int(gift["refunded_fen"]),
                in_suspense=gift["decision"] == "suspense",
            )
        )
    statement.gifts.sort(key=lambda g: (g.paid_at, g.receipt_no))
    return statement, problems


class LookupGuard:
    """Wrong receipt numbers and codes per client (a keyed hash of its address) within a window:
    past the limit, lookups are refused until the window has moved on. With 40-bit codes, a few
    tries every quarter of an hour make guessing one hopeless. Kept in this process's memory:
    each API process counts its own (docs/donors.md)."""

    def __init__(
        self, max_failures: int = 10, window_s: float = 900, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self.max_clients = 10_000  # remembered before the stale ones are swept

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self.clock() - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def retry_after_s(self, client: str) -> int:
        """0 if the client may look up now; otherwise the seconds until it may."""
        failures = self._recent(client)
        if len(failures) < self.max_failures:
            return 0
        return max(1, int(failures[0] + self.window_s - self.clock()) + 1)

    def reserve(self, client: str, wanted: int) -> int:
        """How many of `wanted` codes the client may have checked now (0: none), each counted
        as a failure until `settle` gives back those that were not wrong: requests arriving
        together cannot between them check more than the limit leaves."""
        allowed = max(0, min(wanted, self.max_failures - len(self._recent(client))))
        self.failed(client, allowed)
        return allowed

    def settle(self, client: str, reserved: int, wrong: int) -> None:
        """The reservation's outcome: the tries that were not wrong are given back."""
        failures = self._failures.get(client)
        if failures is None:
            return
        for _ in range(min(max(reserved - wrong, 0), len(failures))):
            failures.pop()
        if not failures:
            del self._failures[client]

    def failed(self, client: str, count: int = 1) -> None:
        if count and len(self._failures) >= self.max_clients:
            # Clients that never came back are forgotten once their window has passed.
            for stale in list(self._failures):
                self._recent(stale)
        failures = self._failures.setdefault(client, deque())
        failures.extend([self.clock()] * count)
