"""The journal as an accountant reads it: a row per posting line, debit and credit in yuan.

Pure: lines in, cells and CSV bytes out; no database, no files.

Sign convention: a posting's amount is positive when money flows into the account
(domain/accounts.py); that is its **debit**, and money flowing out is its **credit**.
The project's own accounts (fund, held, suspense) are then debit-balance accounts like
the money they hold, the accounts money comes in through (a provider's clearing account,
a cash box, charity sales) credit-balance accounts like income, and the accounts it leaves
through (payouts, fees, refunds) debit-balance accounts like costs. Every entry's debits
equal its credits.

An entry that moved no money (a project's lifecycle step, a report, a rejected event)
is one row with no account and 0.00 on both sides, so every entry of the period, and
its hashes, is in the export.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import NamedTuple

# The federation's calendar and clock: China Standard Time (no daylight saving since 1991).
CHINA = timezone(timedelta(hours=8), "CST")
BOM = "\ufeff"  # so spreadsheet programs read the CSV as UTF-8 and show Chinese correctly
CSV_FLUSH_ROWS = 1_000


class JournalLine(NamedTuple):
    """One posting of an entry, or the entry alone (leg None) when it has no postings."""

    seq: int
    entry_id: str
    project_id: str
    kind: str
    effective_at: datetime
    recorded_at: datetime
    decision: str
    reason: str
    prev_hash: str
    entry_hash: str
    leg: int | None
    account: str | None
    currency: str | None
    amount_fen: int | None
    actor: str = ""  # who caused the event, as it names them
    channel: str = ""  # where money that came in came from: a channel's key (domain/channels.py)


# Each column: its key and its heading in both languages (the CSV's header row says "中文 · key").
COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "序号"),
    ("effective_at", "业务时间（北京时间）"),
    ("recorded_at", "记账时间（北京时间）"),
    ("project_id", "项目"),
    ("kind", "事件类型"),
    ("decision", "账本决定"),
    ("reason", "原因"),
    ("actor", "经办人"),
    ("channel", "渠道"),
    ("leg", "行次"),
    ("account_code", "科目代码"),
    ("account", "账户"),
    ("account_name_zh", "科目名称"),
    ("account_name_en", "科目名称（英文）"),
    ("debit", "借方（元）"),
    ("credit", "贷方（元）"),
    ("currency", "币种"),
    ("amount_fen", "金额（分，流入为正）"),
    ("entry_id", "分录编号"),
    ("entry_hash", "分录哈希"),
    ("prev_hash", "前一分录哈希"),
)
HEADER = tuple(f"{zh} · {key}" for key, zh in COLUMNS)
DEBIT, CREDIT, AMOUNT = (
    next(i for i, (key, _) in enumerate(COLUMNS) if key == k) for k in ("debit", "credit", "amount_fen")
)
# A text cell starting with one of these would be a formula to a spreadsheet program; the
# columns whose text is not the ledger's own codes, ids, times, amounts or hashes are checked.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FREE_TEXT = tuple(
    i for i, (key, _) in enumerate(COLUMNS) if key in ("project_id", "reason", "actor", "account")
)


@dataclass(frozen=True)
class ChartAccount:
    code: str
    name_zh: str
    name_en: str


# The ledger's accounts by kind (the first part of the account's name, and its last for a
# project's accounts), coded by class as the non-profit chart of accounts numbers them:
# 1 money held, 4 income, 5 costs.
CHART: dict[str, ChartAccount] = {
    "fund": ChartAccount("1101", "项目资金（可用）", "Project fund, available"),
    "held": ChartAccount("1102", "项目资金（已核准待拨付）", "Project fund, held for approved disbursements"),
    "suspense": ChartAccount("1201", "暂挂款项（待退还或转入）", "Money in suspense, to refund or redirect"),
    "clearing": ChartAccount("4101", "网络捐赠收入（支付渠道）", "Online gifts, through the provider"),
    "box": ChartAccount("4102", "募捐箱收入", "Cash-box gifts"),
    "sales": ChartAccount("4103", "义卖收入", "Charity sales"),
    "refunds": ChartAccount("4109", "退还捐赠（冲减收入）", "Gifts refunded (less income)"),
    "payout": ChartAccount("5101", "项目拨付", "Disbursements paid out"),
    "fees": ChartAccount("5301", "支付手续费", "Payment provider fees"),
}
OTHER = ChartAccount("9999", "其他", "Other")


@functools.lru_cache(maxsize=4096)
def chart_account(account: str) -> ChartAccount:
    """The code and names of a ledger account (project:p:fund, clearing:wechatpay, cash:v:box, …)."""
    parts = account.split(":")
    kind = parts[-1] if parts[0] in ("project", "cash") else parts[0]
    return CHART.get(kind, OTHER)


def yuan(fen: int) -> str:
    """Integer fen as yuan with exactly two decimals, by integer arithmetic: 9940 → '99.40'."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"


def china_time(moment: datetime) -> str:
    """ISO 8601 in China time, to the millisecond the ledger keeps: 2026-12-06T20:00:00.000+08:00."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite gives back naive UTC
    return aware.astimezone(CHINA).isoformat(timespec="milliseconds")


def cells(line: JournalLine, times: tuple[str, str]) -> list[str | int]:
    """The row of one line; `times` are its entry's effective and recorded times as text."""
    amount = line.amount_fen or 0
    code = name_zh = name_en = ""
    if line.account is not None:
        chart = chart_account(line.account)
        code, name_zh, name_en = chart.code, chart.name_zh, chart.name_en
    return [
        line.seq,
        times[0],
        times[1],
        line.project_id,
        line.kind,
        line.decision,
        line.reason,
        line.actor,
        line.channel,
        "" if line.leg is None else line.leg,
        code,
        line.account or "",
        name_zh,
        name_en,
        yuan(max(amount, 0)),
        yuan(max(-amount, 0)),
        line.currency or "",
        amount,
        line.entry_id,
        line.entry_hash,
        line.prev_hash,
    ]


def rows(lines: Iterable[JournalLine]) -> Iterator[list[str | int]]:
    """Each line's row; an entry's times are formatted once for all its postings."""
    seq, times = None, ("", "")
    for line in lines:
        if line.seq != seq:
            seq, times = line.seq, (china_time(line.effective_at), china_time(line.recorded_at))
        yield cells(line, times)


def as_text(cell: str | int) -> str | int:
    """A CSV cell of free text that a spreadsheet program would run as a formula (=, +, -, @, a tab
    or a carriage return first), quoted with a leading apostrophe; anything else as it is."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return f"'{cell}"
    return cell


def csv_chunks(lines: Iterable[JournalLine]) -> Iterator[bytes]:
    """The export as UTF-8 CSV with a byte-order mark, in chunks of CSV_FLUSH_ROWS rows. Free text a
    spreadsheet program would run as a formula is quoted with a leading apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(HEADER)
    for count, row in enumerate(rows(lines), 1):
        for column in _FREE_TEXT:
            row[column] = as_text(row[column])
        writer.writerow(row)
        if count % CSV_FLUSH_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@dataclass(frozen=True)
class Period:
    """Calendar days in China time, both included; None: unbounded on that side."""

    first: date | None = None
    last: date | None = None

    @property
    def start(self) -> datetime | None:
        """The first instant of the period."""
        return None if self.first is None else datetime.combine(self.first, time(), tzinfo=CHINA)

    @property
    def end(self) -> datetime | None:
        """The first instant after the period."""
        return None if self.last is None else datetime.combine(self.last + timedelta(days=1), time(), CHINA)

    def label(self) -> str:
        """For file names: 2026-01-01_2026-12-31, or 'all' for all time."""
        if self.first is None and self.last is None:
            return "all"
        return f"{self.first or 'start'}_{self.last or 'now'}"


ALL_TIME = Period()


def parse_period(first: str | None, last: str | None) -> tuple[Period | None, dict[str, str]]:
    """A period from the dates typed (YYYY-MM-DD, either may be empty), or each field's problem."""
    problems: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for field, text in (("from", first), ("to", last)):
        text = (text or "").strip()
        try:
            days[field] = date.fromisoformat(text) if text else None
        except ValueError:
            problems[field] = (
                f"不是日期：{text[:40]!r}，请写成 2026-01-31 · not a date, write it as 2026-01-31"
            )
    start, end = days.get("from"), days.get("to")
    if start is not None and end is not None and end < start:
        problems["to"] = "结束日期早于开始日期 · the last day is before the first"
    if problems:
        return None, problems
    return Period(start, end), {}
