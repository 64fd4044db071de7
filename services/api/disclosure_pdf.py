"""A project's disclosure report as a PDF (reportlab), the same sections as the print page.

Chinese is set in reportlab's built-in CID font STSong-Light: nothing is shipped, the PDF
names the font (Adobe-GB1) and the reader supplies its glyphs, as every PDF reader with
Chinese support does (Adobe Reader, macOS Preview, Chrome, Firefox, poppler with a CJK font).
That font has no middle dot nor minus sign: text is set with "/" and "-" in their place.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.ledger.read import DisclosureReport, Money, Published

FONT = "STSong-Light"
CHINA = ZoneInfo("Asia/Shanghai")
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

BODY = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=14)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8, leading=11, textColor=colors.HexColor("#5d6b63"))
TITLE = ParagraphStyle("title", parent=BODY, fontSize=16, leading=22, spaceAfter=4)
HEADING = ParagraphStyle("heading", parent=BODY, fontSize=12, leading=18, spaceBefore=10, spaceAfter=4)

# The plan's fields as the report names them, in the order the law lists them.
PLAN_ROWS = (
    ("organisation", "组织", "Organisation"),
    ("certificate_no", "公开募捐资格证书", "Fundraising certificate"),
    ("filing_no", "备案编号", "Filing number"),
    ("purpose", "募捐目的", "Purpose"),
    ("beneficiaries", "受益人", "Beneficiaries"),
    ("use_of_funds", "募得款物用途", "Use of funds"),
    ("area", "募捐区域", "Area"),
    ("starts_on", "起始日期", "Starts on"),
    ("ends_on", "终止日期", "Ends on"),
    ("cost_cap_bp", "管理费用上限", "Cost cap"),
    ("leftover_handling", "剩余财产处理", "Leftover handling"),
)
IN_LABELS = {
    "online_web": ("网上捐赠", "online gifts"),
    "online_qr": ("场地扫码捐赠", "QR gifts at venues"),
    "cash_box": ("募捐箱", "cash boxes"),
    "charity_sale": ("义卖", "charity sales"),
    "redirected_in": ("转入（暂挂资金）", "redirected in from suspense"),
    "other_in": ("其他收入", "other money in"),
}
OUT_LABELS = {
    "refunds": ("退款", "refunds"),
    "disbursed": ("已支付的支出", "disbursements paid"),
    "leftover": ("结项剩余资金转出", "leftover at closure"),
    "other_out": ("其他支出", "other money out"),
}


def china_time(instant: datetime) -> str:
    """An instant as the report (and the pages) show it: China time, to the minute."""
    return instant.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def both(zh: str, en: str) -> str:
    return f"{zh} / {en}"


def plan_value(report: DisclosureReport, key: str) -> str:
    value = report.plan.get(key)
    if key == "cost_cap_bp" and value is not None:
        return f"{int(value) / 100:g}%"
    return "" if value is None else str(value)


# What STSong-Light has no glyph for, and what stands in for it.
SUBSTITUTES = str.maketrans({"·": "/", "−": "-", "≠": "!="})


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text.translate(SUBSTITUTES)).replace("\n", "<br/>"), style)


def _table(rows: Sequence[Sequence[str]], widths: Sequence[float], amount_columns: int = 1) -> Table:
    right = ParagraphStyle("right", parent=BODY, alignment=2)
    first_amount = len(widths) - amount_columns
    table = Table(
        [[_p(cell, right if i >= first_amount else BODY) for i, cell in enumerate(row)] for row in rows],
        colWidths=list(widths),
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cfd8d2")),
            ]
        )
    )
    return table


def disclosure_pdf(report: DisclosureReport) -> bytes:
    """The report as PDF bytes (A4)."""
    figures = report.figures

    def yuan(fen: int) -> str:
        return Money(fen, report.currency).format_yuan()

    name = str(report.plan.get("name", report.project_id))
    as_of = china_time(report.as_of)
    story: list[Flowable] = [
        _p(both("慈善募捐信息公开报告", "Disclosure report"), TITLE),
        _p(f"{name} ({report.project_id})", HEADING),
        _p(both(f"截至 {as_of}（北京时间）", f"as of {as_of} China time") + f"; #{figures.last_seq}", SMALL),
        _p(both("募捐方案", "The plan"), HEADING),
        _table(
            [(both(zh, en), plan_value(report, key)) for key, zh, en in PLAN_ROWS if plan_value(report, key)],
            (55 * mm, 115 * mm),
            0,
        ),
        _p(both("募得款物", "Money raised"), HEADING),
        _table(
            [
                *((both(*IN_LABELS[k]), yuan(v)) for k, v in figures.money_in.items() if v),
                (both("募得合计", "Raised in all"), yuan(report.raised_fen)),
                (
                    both("网上捐赠总额（含手续费）", "online gifts before fees"),
                    yuan(figures.gross_online_fen),
                ),
                (both("支付手续费", "payment fees"), yuan(figures.fees_fen)),
            ],
            (120 * mm, 50 * mm),
        ),
        _p(both("款物使用", "Use of the money"), HEADING),
        _table(
            [
                *((both(*OUT_LABELS[k]), yuan(v)) for k, v in figures.money_out.items() if v),
                *(
                    (both("支付给", "paid to") + f": {payee}", yuan(fen))
                    for payee, fen in figures.disbursed_by_payee
                ),
            ]
            or [(both("尚无支出", "nothing spent yet"), "")],
            (120 * mm, 50 * mm),
        ),
        _p(both("结余", "Balance"), HEADING),
        _table(
            [
                (both("结余", "Balance"), yuan(figures.closing_fen)),
                (
                    both("其中已批准待支付", "of which held for approved disbursements"),
                    yuan(figures.closing_held_fen),
                ),
                (
                    both("核对", "Reconciliation"),
                    ("= " if figures.reconciles else "≠ ")
                    + both("收入 − 支出", "in − out")
                    + f": {yuan(figures.total_in_fen - figures.total_out_fen)}",
                ),
            ],
            (100 * mm, 70 * mm),
        ),
        _p(both("项目进展", "Progress"), HEADING),
        *_published(report.progress, both("尚无进展报告", "no progress report yet")),
        _p(both("更正", "Corrections"), HEADING),
        *_published(report.corrections, both("无更正", "no corrections")),
        Spacer(1, 6 * mm),
        _p(
            both(
                "本报告的每一笔数字都来自可验证的账本，# 后为账本序号。",
                "Every figure comes from the verifiable ledger; # numbers are its entries.",
            ),
            SMALL,
        ),
    ]
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{name} disclosure report",
        author=str(report.plan.get("organisation", "")),
    )
    document.build(story)
    return out.getvalue()


def _published(items: Sequence[Published], none: str) -> list[Flowable]:
    rows = []
    for item in items:
        when = china_time(item.effective_at)[:10]
        corrects = f" (→ #{item.corrects_seq})" if item.corrects_seq is not None else ""
        rows.append((f"#{item.seq} {when}", item.text + corrects))
    if not rows:
        return [_p(none, SMALL)]
    return [_table(rows, (35 * mm, 135 * mm), 0)]
