"""The journal export's formatting: yuan from fen, account codes, rows, CSV bytes and periods."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.read.export_format import (
    BOM,
    CSV_FLUSH_ROWS,
    HEADER,
    JournalLine,
    Period,
    chart_account,
    china_time,
    csv_chunks,
    parse_period,
    yuan,
)


def line(seq: int, leg: int | None, account: str | None, amount: int | None, **kw: object) -> JournalLine:
    fields: dict[str, object] = {
        "seq": seq,
        "entry_id": f"e-{seq}",
        "project_id": "meals",
        "kind": "DonationConfirmed",
        "effective_at": datetime(2026, 3, 1, 15, 59, 59, 999000),  # naive UTC, as SQLite gives it back
        "recorded_at": datetime(2026, 3, 1, 16, 0, tzinfo=UTC),
        "decision": "posted",
        "reason": "",
        "prev_hash": "0" * 64,
        "entry_hash": "1" * 64,
        "leg": leg,
        "account": account,
        "currency": None if account is None else "CNY",
        "amount_fen": amount,
    }
    fields.update(kw)
    return JournalLine(**fields)  # type: ignore[arg-type]


def read(chunks: list[bytes]) -> list[dict[str, str]]:
    text = b"".join(chunks).decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (7, "0.07"), (9940, "99.40"), (-250, "-2.50"), (10**15, "10000000000000.00")],
)
def test_yuan_has_exactly_two_decimals(fen: int, text: str) -> None:
    assert yuan(fen) == text


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_yuan_is_the_exact_amount(fen: int) -> None:
    whole, _, cents = yuan(fen).lstrip("-").partition(".")
    assert len(cents) == 2 and (int(whole) * 100 + int(cents)) * (-1 if fen < 0 else 1) == fen


@pytest.mark.parametrize(
    ("account", "code"),
    [
        ("project:meals:fund", "1101"),
        ("project:meals:held", "1102"),
        ("suspense:meals", "1201"),
        ("clearing:wechatpay", "4101"),
        ("cash:botanic-garden:box", "4102"),
        ("cash:botanic-garden:sales", "4103"),
        ("refunds", "4109"),
        ("payout", "5101"),
        ("fees:wechatpay", "5301"),
        ("something:new", "9999"),
    ],
)
def test_each_ledger_account_has_a_code(account: str, code: str) -> None:
    assert chart_account(account).code == code


def test_times_are_china_time_with_their_offset() -> None:
    assert china_time(datetime(2026, 3, 1, 15, 59, 59, 999000)) == "2026-03-01T23:59:59.999+08:00"
    assert china_time(datetime(2026, 3, 1, 16, 0, tzinfo=UTC)) == "2026-03-02T00:00:00.000+08:00"


def test_a_posting_is_a_debit_when_money_flows_in_and_a_credit_when_it_flows_out() -> None:
    rows = read(
        list(csv_chunks([line(4, 0, "clearing:sandbox", -1000), line(4, 1, "project:meals:fund", 1000)]))
    )
    assert [(r["借方（元） · debit"], r["贷方（元） · credit"]) for r in rows] == [
        ("0.00", "10.00"),
        ("10.00", "0.00"),
    ]
    assert [r["科目代码 · account_code"] for r in rows] == ["4101", "1101"]
    assert rows[1]["科目名称 · account_name_zh"] == "项目资金（可用）"
    assert rows[0]["业务时间（北京时间） · effective_at"] == "2026-03-01T23:59:59.999+08:00"
    assert rows[0]["金额（分，流入为正） · amount_fen"] == "-1000"


def test_who_and_which_channel_are_columns_of_their_own() -> None:
    (row,) = read(
        list(csv_chunks([line(1, 0, "project:meals:fund", 5, actor="sandbox", channel="qr:hall-1")]))
    )
    assert (row["经办人 · actor"], row["渠道 · channel"]) == ("sandbox", "qr:hall-1")


def test_an_entry_without_postings_is_one_row_of_zeroes() -> None:
    rejected = line(5, None, None, None, decision="rejected", reason="donation a was already confirmed")
    (row,) = read(list(csv_chunks([rejected])))
    assert (
        row["账本决定 · decision"] == "rejected"
        and row["原因 · reason"] == "donation a was already confirmed"
    )
    assert (
        row["借方（元） · debit"],
        row["贷方（元） · credit"],
        row["账户 · account"],
        row["行次 · leg"],
    ) == (
        "0.00",
        "0.00",
        "",
        "",
    )


def test_the_csv_starts_with_a_bom_and_the_header_names_both_languages() -> None:
    text = b"".join(csv_chunks([])).decode()
    assert text == BOM + ",".join(HEADER) + "\r\n"
    assert HEADER[0] == "序号 · seq"


def test_a_long_export_comes_in_chunks() -> None:
    lines = [line(n, 0, "project:meals:fund", 0) for n in range(1, 2 * CSV_FLUSH_ROWS + 2)]
    chunks = list(csv_chunks(iter(lines)))
    assert len(chunks) == 3
    assert len(read(chunks)) == len(lines)


def test_text_a_spreadsheet_would_run_as_a_formula_is_quoted() -> None:
    (row,) = read(list(csv_chunks([line(1, None, None, None, reason="=HYPERLINK(1)")])))
    assert row["原因 · reason"] == "'=HYPERLINK(1)"


def test_a_period_is_of_china_calendar_days_both_included() -> None:
    period, problems = parse_period("2026-01-01", "2026-12-31")
    assert problems == {} and period == Period(date(2026, 1, 1), date(2026, 12, 31))
    assert period.start == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert period.label() == "2026-01-01_2026-12-31"
    assert parse_period("", None) == (Period(), {})
    assert Period().label() == "all" and Period(last=date(2026, 6, 30)).label() == "start_2026-06-30"


def test_a_bad_period_names_each_field() -> None:
    period, problems = parse_period("2026-13-01", "yesterday")
    assert period is None and set(problems) == {"from", "to"}
    assert "not a date" in problems["from"]
    period, problems = parse_period("2026-06-30", "2026-06-01")
    assert period is None and list(problems) == ["to"] and "before the first" in problems["to"]
